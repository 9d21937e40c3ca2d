"""The vectorized bar engine: DuckDB over the segment files, equal to ``bars_ref``.

:func:`build_bars_sql` returns exactly what :func:`~buff_dataplane.pipeline.bars_ref.
build_bars_ref` returns for the same files (``core/bars.py`` is the specification), without
a Python object per trade. DuckDB reads the segments directly and may spill to a temporary
directory, so a log larger than memory can be built (``memory_limit`` / ``threads``).

Extraction. One scan splits each payload on ``,`` and reads the fields of the Binance
trade shapes at their fixed places (keys in wire order)::

    aggTrade, USD-M   e E a s p q f l T m
    aggTrade, spot    e E s a p q f l T m M
    trade, USD-M      e E T s t p q X m
    trade, spot       e E s t p q T m M
    REST aggTrades    a p q f l T m [M]    (a back-fill item: no e, never wrapped)

bare or in the combined-stream wrapper (the first row of each segment picks the shapes
and symbols the scan looks for). A row is taken from this fast path only if the payload
is byte for byte the text rebuilt from the values read, integers rendered back (so no
leading zero, sign, exponent or blank passes; ``T`` is the stored exchange time, proven
by the same rebuild), its money is plain decimal text with at most 10 fractional digits
and positive, its times and ids are in the parser's ranges, and its symbol is one the
venue's symbol table maps. Other rows get a second pass with every shape and symbol,
and what is left is read by the venue parser itself, so nothing is dropped or read
differently from the reference; a value ``DECIMAL(38,10)`` cannot hold exactly raises
StorageError naming segment and seq. A payload holding several trades (a venue's batch)
gives one row per trade; trade ids beyond 64 bits (Bybit's UUIDs) are refused here, and
such venues' bars come from the reference engine.

Bars. Money is ``DECIMAL(38,10)``, products ``DECIMAL(38,20)``; DuckDB raises on any
overflow (turned into StorageError), so sums are exact or fail. Late classification,
duplicates and conflicts, trade-id gaps (one window pass in id order) and the per-bucket
aggregates are SQL; each bar's payload digest hashes the 32-byte payload hashes streamed
in ``(ts, ingest_seq, index in message)`` order. The schedule, statuses and the carried
close are a short Python loop over the bars. Every result is ordered explicitly and every
sum is exact, so nothing depends on the thread count.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import re
import tempfile
from collections.abc import Iterator, Sequence
from decimal import Context, Decimal, Inexact, InvalidOperation
from pathlib import Path
from typing import Any, NamedTuple

import duckdb
import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from buff_dataplane.core.bars import Bar, BuildResult, LateCandidate, empty_bar, timeframe_ms
from buff_dataplane.core.day_bars import DAY_MS, DayPart, IdRun
from buff_dataplane.core.decimals import canonical_decimal
from buff_dataplane.core.errors import PayloadRejected, StorageError, ValidationError
from buff_dataplane.core.events import MAX_TS_MS, MIN_TS_MS
from buff_dataplane.feeds.base import Parser
from buff_dataplane.feeds.registry import parser_for

__all__ = ["build_bars_sql", "build_day_sql"]

MONEY_SCALE = 10
_SYMBOL_RE = re.compile(r"[A-Z0-9]{1,64}")

# --- extraction: the fast path ------------------------------------------------------------

_INT, _DEC, _SYM, _WORD, _BOOL = "int", "dec", "sym", "word", "bool"


class _Shape(NamedTuple):
    code: int
    event: str | None  # the "e" of the message; None for the REST aggTrades item
    fields: tuple[tuple[str, str], ...]  # (key, kind) in wire order, after "e"


_XM = (("X", _WORD), ("m", _BOOL))
_MM = (("m", _BOOL), ("M", _BOOL))
_AGG = (("p", _DEC), ("q", _DEC), ("f", _INT), ("l", _INT), ("T", _INT), ("m", _BOOL))
_SHAPES = (
    _Shape(1, "aggTrade", (("E", _INT), ("a", _INT), ("s", _SYM), *_AGG)),
    _Shape(2, "aggTrade", (("E", _INT), ("s", _SYM), ("a", _INT), *_AGG, ("M", _BOOL))),
    _Shape(
        3,
        "trade",
        (("E", _INT), ("T", _INT), ("s", _SYM), ("t", _INT), ("p", _DEC), ("q", _DEC), *_XM),
    ),
    _Shape(
        4,
        "trade",
        (("E", _INT), ("s", _SYM), ("t", _INT), ("p", _DEC), ("q", _DEC), ("T", _INT), *_MM),
    ),
    _Shape(5, None, (("a", _INT), *_AGG)),
    _Shape(6, None, (("a", _INT), *_AGG, ("M", _BOOL))),
)
# Output column of each wire key ("a" and "t" are both the trade id; "T" is not read
# from the payload but proven equal to the stored exchange time, see _extract_sql).
_COLUMN = {"E": "ev_e", "a": "tid", "t": "tid", "s": "sym", "p": "p_t", "q": "q_t"}
_COLUMN |= {"f": "f", "l": "l", "T": "ts", "m": "m", "M": "mm", "X": "x_t"}


def _pieces(shape: _Shape) -> int:
    return len(shape.fields) + (shape.event is not None)


def _position(shape: _Shape, key: str) -> int:
    """1-based position of ``key``'s piece among the body's comma-separated pieces."""
    keys = [k for k, _ in shape.fields]
    return keys.index(key) + 1 + (shape.event is not None)


def _discriminator(shape: _Shape) -> str:
    """SQL telling ``shape`` apart by its piece count and, if shared, its third key."""
    n = _pieces(shape)
    same = [s for s in _SHAPES if _pieces(s) == n]
    if len(same) == 1:
        return f"nb = {n}"
    third = (["e"] if shape.event else []) + [k for k, _ in shape.fields]
    return f"nb = {n} AND starts_with(x[o + 3], '\"{third[2]}\":')"


def _token(shape: _Shape, key: str, kind: str) -> str:
    pos = _position(shape, key)
    piece = f"x[o + {pos}]"
    skip = len(f'"{key}":') + (1 if pos == 1 else 0)  # the REST item's first piece has "{"
    if kind == _INT:
        return f"substr({piece}, {skip + 1})"
    if kind == _BOOL:
        return f"starts_with({piece}, '\"{key}\":true')"
    return f"substr({piece}, {skip + 2}, length({piece}) - {skip + 2})"  # strip the quotes


def _rebuild(shape: _Shape) -> str:
    """SQL text of the payload rebuilt from the values read."""
    parts: list[str] = []
    if shape.event is not None:
        parts.append(
            '(CASE WHEN o = 1 THEN concat(\'{"stream":"\', lower(sym), '
            f"'@{shape.event}\",\"data\":') ELSE '' END)"
        )
        parts.append(f'\'{{"e":"{shape.event}",\'')
    else:
        parts.append("'{'")
    for i, (key, kind) in enumerate(shape.fields):
        col = _COLUMN[key]
        sep = "," if i else ""
        if kind == _INT:
            parts += [f"'{sep}\"{key}\":'", f"CAST({col} AS VARCHAR)"]
        elif kind == _BOOL:
            parts += [f"'{sep}\"{key}\":'", f"(CASE WHEN {col} THEN 'true' ELSE 'false' END)"]
        else:
            parts += [f'\'{sep}"{key}":"\'', col, "'\"'"]
    parts.append("'}'")
    if shape.event is not None:
        parts.append("(CASE WHEN o = 1 THEN '}' ELSE '' END)")
    # concat() skips NULLs: _checks requires every value read to be non-NULL.
    return f"concat({', '.join(parts)})"


def _checks(shape: _Shape, symbols: Sequence[str]) -> str:
    kinds = dict(shape.fields)
    out = [f"({_rebuild(shape)}) = pay", "tid >= 0", f"ts BETWEEN {MIN_TS_MS} AND {MAX_TS_MS}"]
    out += ["p_ok", "q_ok"]
    if "E" in kinds:
        out.append(f"ev_e BETWEEN {MIN_TS_MS} AND {MAX_TS_MS}")
    if "f" in kinds:
        out.append("f >= 0 AND f <= l")
    if "X" in kinds:
        out.append("x_t <> '' AND NOT x_t GLOB '*[!A-Z_]*'")
    if "s" in kinds:  # symbols already checked by the parser's symbol table
        listed = ", ".join(f"'{sym}'" for sym in symbols if _SYMBOL_RE.fullmatch(sym))
        out.append(f"sym IN ({listed})" if listed else "FALSE")
    return " AND ".join(out)


def _money(tok: str) -> tuple[str, str]:
    """(value, ok) SQL of a money token: plain decimal text, <= 10 fractional digits.

    The pattern is the parser's plain decimal with at most ``MONEY_SCALE`` fractional
    digits, which the cast then reads exactly (more would be rounded: such a row is not
    taken here, and the exact path refuses it unless the extra digits are zeros).
    """
    value = f"TRY_CAST({tok} AS DECIMAL(38,{MONEY_SCALE}))"
    ok = f"regexp_full_match({tok}, '[0-9]{{1,32}}(\\.[0-9]{{1,{MONEY_SCALE}}})?')"
    return value, ok


def _case(branches: dict[int, str], *, only: bool = False) -> str:
    """SQL choosing the branch of the row's shape. With ``only`` (one shape scanned), the
    branch itself: a row of another shape reads garbage, which its ``ok`` refuses."""
    if not branches:
        return "NULL"
    if only and len(branches) == 1:
        return f"({next(iter(branches.values()))})"
    whens = " ".join(f"WHEN {code} THEN {sql}" for code, sql in sorted(branches.items()))
    return f"(CASE shape {whens} END)"


_TOKENS = (  # output column, wire keys, SQL type (None: text)
    ("ev_e", ("E",), "BIGINT"),
    ("tid", ("a", "t"), "BIGINT"),
    ("sym", ("s",), None),
    ("p_t", ("p",), None),
    ("q_t", ("q",), None),
    ("f", ("f",), "BIGINT"),
    ("l", ("l",), "BIGINT"),
    ("m", ("m",), None),
    ("mm", ("M",), None),
    ("x_t", ("X",), None),
)


def _extract_sql(
    source: str,
    symbols: Sequence[str],
    *,
    shapes: Sequence[_Shape] = _SHAPES,
    extra: Sequence[str] = (),
) -> str:
    """SELECT of typed trades from ``source`` (rid, seq, ing, sha, bf, pay, ts).

    ``ts`` is the stored exchange time, a candidate for ``T`` that the rebuilt payload
    proves. ``symbols`` are the venue symbols the fast path may take (each already mapped
    by the venue's symbol table); a row naming another is not ``ok``. ``extra`` adds
    inner columns (``sym``, ``shape``) to the output.
    """
    shape_case = " ".join(f"WHEN {_discriminator(s)} THEN {s.code}" for s in shapes)
    tokens = []
    for col, keys, cast in _TOKENS:
        branches = {s.code: _token(s, k, kind) for s in shapes for k, kind in s.fields if k in keys}
        sql = _case(branches, only=len(shapes) == 1)
        tokens.append(f"{f'TRY_CAST({sql} AS {cast})' if cast else sql} AS {col}")
    p_val, p_ok = _money("p_t")
    q_val, q_ok = _money("q_t")
    checks = _case({s.code: f"({_checks(s, symbols)})" for s in shapes})
    return f"""
    SELECT rid, seq, ing, sha, bf, tid, ts, f, l, price, qty, NOT m AS buy,
           COALESCE({checks}, FALSE) AS ok {"".join(f", {c}" for c in extra)}
    FROM (
      SELECT *, {p_ok} AND price > 0 AS p_ok, {q_ok} AND qty > 0 AS q_ok
      FROM (
        SELECT *, {p_val} AS price, {q_val} AS qty
        FROM (
          SELECT rid, seq, ing, sha, bf, pay, ts, o, shape, {", ".join(tokens)}
          FROM (
            SELECT *, CASE {shape_case} END AS shape
            FROM (
              SELECT *, len(x) - o AS nb
              FROM (
                SELECT *, string_split(pay, ',') AS x,
                       CAST(starts_with(pay, '{{"stream":"') AS INTEGER) AS o
                FROM ({source})
              )
            )
          )
        )
      )
    )
    """


# rid = file index << 40 | row in file << 14 | trade index in the message: ascending rid
# is file, row, then message order. A segment holds at most 50M events (< 2**26, the
# LogConfig range) and a message at most 16384 trades (else StorageError).
_ROW_BITS = 40
_K_BITS = 14
_K_MASK = (1 << _K_BITS) - 1
_INT64 = range(-(1 << 63), 1 << 63)
_BAD_COLUMNS = (
    "source, payload_raw, source = 'rest_backfill' AS bf, TRY(decode(payload_raw)) AS pay"
)


def _raw_source(files_param: str, columns: str = "", where: str = "") -> str:
    """The raw rows of the segments, each with its ``rid``."""
    return f"""
    SELECT (CAST(file_index AS BIGINT) << {_ROW_BITS}) + (file_row_number << {_K_BITS}) AS rid,
           ingest_seq AS seq, event_ts_ingest_ms AS ing, payload_sha256 AS sha,
           event_ts_exchange_ms AS ts,
           {columns or "source = 'rest_backfill' AS bf, TRY(decode(payload_raw)) AS pay"}
    FROM read_parquet({files_param}, file_row_number = true) {where}
    """


# --- extraction: the exact path -----------------------------------------------------------


_EXACT = Context(prec=100, traps=[Inexact, InvalidOperation])
_QUANTUM = Decimal(1).scaleb(-MONEY_SCALE)
_MONEY_LIMIT = Decimal(10) ** (38 - MONEY_SCALE)
_Row = tuple[int, int | None, int | None, Decimal, Decimal, bool, int]  # tid, f, l, p, q, buy, ts


def _trades_of(parser: Parser, payload: bytes, where: str) -> list[_Row]:
    """The trades in ``payload`` as the reference reads them, or StorageError as it raises."""
    try:
        parsed = parser.parse(payload)
    except PayloadRejected as exc:
        raise StorageError(f"{where} holds no trade the parser accepts ({exc.reason})") from exc
    if not parsed.trades:
        raise StorageError(f"{where} is a {parsed.kind}")
    if len(parsed.trades) > _K_MASK + 1:
        raise StorageError(f"{where} holds {len(parsed.trades)} trades (at most {_K_MASK + 1})")
    rows = []
    for t in parsed.trades:
        if t.trade_id not in _INT64:
            raise StorageError(
                f"{where}: trade id {t.trade_id} does not fit 64 bits "
                "(this venue's bars are built by the reference engine)"
            )
        buy = t.taker_side == "buy"
        rows.append((t.trade_id, t.first_trade_id, t.last_trade_id, t.price, t.size, buy, t.ts_ms))
    return rows


def _scaled(value: Decimal, where: str) -> Decimal:
    try:
        exact: Decimal | None = value.quantize(_QUANTUM, context=_EXACT)
    except (Inexact, InvalidOperation):
        exact = None
    if exact is None or abs(exact) >= _MONEY_LIMIT:
        raise StorageError(
            f"{where}: {value} does not fit DECIMAL(38,{MONEY_SCALE}) exactly "
            "(the SQL bar engine never rounds money)"
        )
    return exact


_EV_SCHEMA = pa.schema(
    [
        ("rid", pa.int64()),
        ("seq", pa.int64()),
        ("ing", pa.int64()),
        ("sha", pa.binary()),
        ("bf", pa.bool_()),
        ("tid", pa.int64()),
        ("ts", pa.int64()),
        ("f", pa.int64()),
        ("l", pa.int64()),
        ("price", pa.decimal128(38, MONEY_SCALE)),
        ("qty", pa.decimal128(38, MONEY_SCALE)),
        ("buy", pa.bool_()),
        ("ok", pa.bool_()),
    ]
)


def _parse_exact(parser: Parser, batch: pa.RecordBatch, names: Sequence[str]) -> pa.Table:
    """Rows the fast path did not take, read by the venue parser (as the reference does)."""
    cols: dict[str, list[Any]] = {name: [] for name in _EV_SCHEMA.names}
    for row in batch.to_pylist():
        rid, seq = row["rid"], row["seq"]
        where = f"{names[rid >> _ROW_BITS]}: seq {seq}"
        for k, trade in enumerate(_trades_of(parser, row["payload_raw"], where)):
            tid, first, last, price, size, buy, ts = trade
            values: tuple[Any, ...] = (rid + k, seq, row["ing"], row["sha"])
            values += (row["source"] == "rest_backfill", tid, ts)
            values += (first, last, _scaled(price, where), _scaled(size, where), buy, True)
            for name, value in zip(_EV_SCHEMA.names, values, strict=True):
                cols[name].append(value)
    return pa.table(cols, schema=_EV_SCHEMA)


# --- the bars -----------------------------------------------------------------------------


class _Used(NamedTuple):
    """What follows from a build's used (not late) trades, shared by timeframes alike."""

    rows: int
    ts_min: int | None
    ts_max: int | None
    duplicates: int
    conflicts: list[int]
    conflict_ts: list[int]  # exchange time of every version of a conflicting id
    excluded: str | None  # SELECT of the rids left out of the bars
    spans: list[tuple[int, int]]  # trade-id gaps: merged exchange-time spans


def _ceil(value: int, tf: int) -> int:
    return -(-value // tf) * tf


def _hash_column(col: pa.Array) -> memoryview:
    """The contiguous bytes of a column of 32-byte payload hashes."""
    if col.null_count:
        raise StorageError("payload_sha256 holds nulls")
    try:
        fixed = pc.cast(col, pa.binary(32))
    except pa.ArrowInvalid as exc:
        raise StorageError(f"payload_sha256 is not 32 bytes: {exc}") from exc
    buf = fixed.buffers()[1]
    if buf is None:
        return memoryview(b"")
    start = fixed.offset * 32
    return memoryview(buf)[start : start + 32 * len(fixed)]


def _digests(
    reader: pa.RecordBatchReader, counts: Sequence[int], wanted: Sequence[bool]
) -> list[str]:
    """SHA-256 of each run of ``counts`` hashes in ``reader`` (only runs ``wanted``)."""
    out: list[str] = []
    i, need, h = 0, (counts[0] if counts else 0), hashlib.sha256()
    for batch in reader:
        data = _hash_column(batch.column(0))
        n, pos = len(data) // 32, 0
        while pos < n:
            if i >= len(counts):
                raise StorageError("bar digest: more hashes than trades counted")
            take = min(need, n - pos)
            if wanted[i]:
                h.update(data[32 * pos : 32 * (pos + take)])
            pos, need = pos + take, need - take
            if need == 0:
                out.append(h.hexdigest() if wanted[i] else "")
                i, h = i + 1, hashlib.sha256()
                need = counts[i] if i < len(counts) else 0
    if i != len(counts):
        raise StorageError("bar digest: fewer hashes than trades counted")
    return out


class _Engine:
    """One build: table ``ev`` of typed trade events, then one timeframe at a time."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        paths: Sequence[Path],
        parser: Parser,
        *,
        lateness: int,
        apply_late: bool,
        ids_contiguous: bool,
        ids_cover: bool = False,
    ) -> None:
        self.con = con
        self.files = [str(p) for p in paths]
        self.names = [p.name for p in paths]
        self.parser = parser
        self.lateness = lateness
        self.apply_late = apply_late
        self.ids_contiguous = ids_contiguous
        # The ids a print accounts for (core.venues): its own, or the matches it covers.
        self.id_lo = "COALESCE(f, tid)" if ids_cover else "tid"
        self.id_hi = "COALESCE(l, tid)" if ids_cover else "tid"
        self._used: dict[str, _Used] = {}
        # Trade order (ts, ingest_seq), ties by trade id as the reference's stable sort.
        self.order = self.last_first = f"{{'t': ts, 's': seq, 'k': rid & {_K_MASK}, 'i': tid}}"
        self.sort = f"ts, seq, rid & {_K_MASK}, tid"

    def _one(self, sql: str, params: object = None) -> Any:
        row = self.con.execute(sql, params).fetchone()
        return None if row is None else row[0]

    # -- loading ---------------------------------------------------------------------------

    def load(self) -> None:
        """Table ``ev``: one typed row per trade event of the segments."""
        if not self.files:
            self.con.register("ev_empty", _EV_SCHEMA.empty_table())
            self.con.execute("CREATE TABLE ev AS SELECT * FROM ev_empty")
            return
        symbols, shapes = self._sample()
        sql = _extract_sql(_raw_source("$files"), symbols, shapes=shapes)
        self.con.execute(f"CREATE TABLE ev AS {sql}", {"files": self.files})
        if self._one("SELECT count(*) FROM ev WHERE NOT ok"):
            self._load_exact(symbols)
        self._order_keys()

    def _order_keys(self) -> None:
        """A 128-bit (ts, ingest_seq) sort key when ingest_seq is unique across the rows.

        A segment holds one contiguous, strictly increasing seq range (the writer's
        invariant, checked by verify-log); segments whose ranges do not overlap then
        have unique seqs, so (ts, seq) orders trades totally. Otherwise (a segment given
        twice) the struct key breaks ties by trade id, as the reference does.
        """
        ranges = self.con.execute(
            f"SELECT min(seq), max(seq) FROM ev GROUP BY rid >> {_ROW_BITS} ORDER BY 1"
        ).fetchall()
        if all(a[1] < b[0] for a, b in itertools.pairwise(ranges)):
            self.order = (
                f"(CAST(ts AS HUGEINT) << {64 + _K_BITS}) + (CAST(seq AS HUGEINT) << {_K_BITS})"
                f" + (rid & {_K_MASK})"
            )
            # The reference's max() keeps the first of equal keys; there are none here.
            self.last_first, self.sort = self.order, f"ts, seq, rid & {_K_MASK}"
        else:
            self.last_first = f"{{'t': ts, 's': seq, 'k': rid & {_K_MASK}, 'i': -tid}}"

    def _sample(self) -> tuple[list[str], list[_Shape]]:
        """Symbols and shapes of the first row of each segment, to specialise the scan.

        Rows of another shape or symbol are taken by the second pass (``_load_exact``).
        """
        self.con.execute(
            "CREATE TABLE sample AS "
            + _raw_source("$files", _BAD_COLUMNS, "WHERE file_row_number = 0"),
            {"files": self.files},
        )
        symbols = self._symbols("SELECT * FROM sample", [])
        seen = self._column(
            "SELECT DISTINCT shape FROM "
            f"({_extract_sql('SELECT * FROM sample', symbols, extra=['shape'])}) WHERE ok"
        )
        shapes = [s for s in _SHAPES if s.code in seen] or list(_SHAPES)
        return symbols, shapes

    def _symbols(self, source: str, known: list[str]) -> list[str]:
        """``known`` and the symbols in ``source`` that the venue's symbol table maps."""
        named = _extract_sql(source, [], extra=["sym"])
        found = self._column(f"SELECT DISTINCT sym FROM ({named}) ORDER BY sym")
        new = [s for s in found if s and _SYMBOL_RE.fullmatch(s) and s not in known]
        return known + [s for s in new if self._maps(s)]

    def _maps(self, venue_symbol: str) -> bool:
        try:
            self.parser.to_canonical(venue_symbol)
        except PayloadRejected:
            return False  # the parser refuses these rows: the exact path raises for them
        return True

    def _load_exact(self, symbols: list[str]) -> None:
        """Second pass over the rows the first did not take.

        Rows of a shape or symbol the sample did not see get the fast path again (with
        every shape, and every symbol the symbol table maps); the rest are read by the
        venue parser, as the reference does.
        """
        self.con.execute(
            f"CREATE TABLE bad AS SELECT * FROM ({_raw_source('$files', _BAD_COLUMNS)}) "
            "WHERE rid IN (SELECT rid FROM ev WHERE NOT ok)",
            {"files": self.files},
        )
        self.con.execute("DELETE FROM ev WHERE NOT ok")
        again = _extract_sql("SELECT * FROM bad", self._symbols("SELECT * FROM bad", symbols))
        self.con.execute(f"CREATE TABLE bad_ok AS SELECT * FROM ({again}) WHERE ok")
        self.con.execute("INSERT INTO ev SELECT * FROM bad_ok")
        self.con.execute("DELETE FROM bad WHERE rid IN (SELECT rid FROM bad_ok)")
        reader = (
            self.con.cursor()
            .sql("SELECT rid, seq, ing, sha, source, payload_raw FROM bad ORDER BY rid")
            .to_arrow_reader(8192)
        )
        for batch in reader:
            self.con.register("ev_exact", _parse_exact(self.parser, batch, self.names))
            self.con.execute("INSERT INTO ev SELECT * FROM ev_exact")
            self.con.unregister("ev_exact")

    # -- what the used trades imply --------------------------------------------------------

    def late(self, tf: int) -> str:
        """SQL: the row is late for timeframe ``tf`` (a WebSocket trade ingested after its
        bucket's seal)."""
        if self.apply_late:
            return "FALSE"
        # Back-filled trades arrive after the seal by nature: a repair, never late.
        return f"(NOT bf AND ing > ts - ts % {tf} + {tf + self.lateness})"

    def used(self, late: str) -> _Used:
        if late not in self._used:
            self._used[late] = self._analyse(late, f"u{len(self._used)}")
        return self._used[late]

    def _analyse(self, late: str, t: str) -> _Used:
        used = f"FROM ev WHERE NOT {late}"
        rows, ts_min, ts_max = self.con.execute(
            f"SELECT count(*), min(ts), max(ts) {used}"
        ).fetchone() or (0, None, None)
        # One pass in id order finds the ids with several versions (equal neighbours) and
        # the id jumps. Versions of an id come in any order here; the first one by
        # (ingest_seq, file/row) is looked up where it matters.
        jump = "OR nlo - hi > 1" if self.ids_contiguous else ""
        self.con.execute(
            f"""CREATE TABLE {t}_w AS SELECT * FROM (
                  SELECT tid, ts, lag(tid) OVER w AS pt, lead(tid) OVER w AS nt,
                         lead(ts) OVER w AS nts, {self.id_hi} AS hi,
                         lead({self.id_lo}) OVER w AS nlo
                  {used} WINDOW w AS (ORDER BY tid)
                ) WHERE pt = tid OR nt = tid {jump}"""
        )
        duplicates, conflicts, conflict_ts = 0, [], []
        excluded = None
        here, there = "w.ts", "w.nts"
        if self._one(f"SELECT count(*) FROM {t}_w WHERE pt = tid OR nt = tid"):
            self.con.execute(
                f"CREATE TABLE {t}_v AS SELECT rid, seq, tid, ts, price, qty, buy, f, l {used} "
                f"AND tid IN (SELECT tid FROM {t}_w WHERE pt = tid OR nt = tid)"
            )
            # The first version counts; an id whose versions differ is a conflict and
            # none of its versions is used.
            self.con.execute(
                f"CREATE TABLE {t}_i AS SELECT tid, count(*) AS n, "
                "arg_min(rid, {'s': seq, 'r': rid}) AS first_rid, "
                "arg_min(ts, {'s': seq, 'r': rid}) AS first_ts, "
                "count(DISTINCT {'p': price, 'q': qty, 'b': buy, 't': ts, 'f': f, 'l': l}) > 1 "
                f"AS conflict FROM {t}_v GROUP BY tid"
            )
            duplicates = int(
                self._one(f"SELECT COALESCE(sum(n - 1), 0) FROM {t}_i WHERE NOT conflict")
            )
            conflicts = self._column(f"SELECT tid FROM {t}_i WHERE conflict ORDER BY tid")
            conflict_ts = self._column(
                f"SELECT DISTINCT ts FROM {t}_v WHERE tid IN "
                f"(SELECT tid FROM {t}_i WHERE conflict) ORDER BY ts"
            )
            self.con.execute(
                f"CREATE TABLE {t}_x AS SELECT v.rid FROM {t}_v v JOIN {t}_i i USING (tid) "
                "WHERE i.conflict OR v.rid <> i.first_rid"
            )
            excluded = f"SELECT rid FROM {t}_x"
            first = f"(SELECT i.first_ts FROM {t}_i i WHERE i.tid = w.{{}})"
            here = f"COALESCE({first.format('tid')}, w.ts)"
            there = f"COALESCE({first.format('nt')}, w.nts)"
        spans: list[tuple[int, int]] = []
        if self.ids_contiguous:
            spans = self._merged(
                f"SELECT least(a, b) AS lo, greatest(a, b) AS hi FROM "
                f"(SELECT {here} AS a, {there} AS b FROM {t}_w w WHERE w.nlo - w.hi > 1)"
            )
        return _Used(rows, ts_min, ts_max, duplicates, conflicts, conflict_ts, excluded, spans)

    def _column(self, sql: str) -> list[Any]:
        return [r[0] for r in self.con.execute(sql).fetchall()]

    def _merged(self, spans: str) -> list[tuple[int, int]]:
        """The union of the (lo, hi) spans as disjoint spans, in order."""
        merged = f"""
            SELECT min(lo), max(hi) FROM (
              SELECT lo, hi, sum(CASE WHEN lo > prev THEN 1 ELSE 0 END)
                     OVER (ORDER BY lo, hi ROWS UNBOUNDED PRECEDING) AS grp
              FROM (
                SELECT lo, hi, max(hi) OVER (
                  ORDER BY lo, hi ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev
                FROM ({spans})
              )
            ) GROUP BY grp ORDER BY 1
        """
        return [(int(lo), int(hi)) for lo, hi in self.con.execute(merged).fetchall()]

    def id_runs(self, tf: int) -> list[IdRun]:
        """The used trade ids (first version of each) as runs without a jump, in id order
        (``core.day_bars.id_runs``)."""
        first = "{'s': seq, 'r': rid}"
        rows = self.con.execute(
            f"""
            SELECT min(tid), arg_min(lo, tid), arg_min(ts, tid),
                   max(tid), arg_max(hi, tid), arg_max(ts, tid)
            FROM (
              SELECT *, sum(brk) OVER (ORDER BY tid ROWS UNBOUNDED PRECEDING) AS run
              FROM (
                SELECT *, CASE WHEN lo - lag(hi) OVER (ORDER BY tid) <= 1 THEN 0 ELSE 1 END
                          AS brk
                FROM (
                  SELECT tid, arg_min(ts, {first}) AS ts,
                         arg_min({self.id_lo}, {first}) AS lo,
                         arg_min({self.id_hi}, {first}) AS hi
                  FROM ev WHERE NOT {self.late(tf)} GROUP BY tid
                )
              )
            ) GROUP BY run ORDER BY 1
            """
        ).fetchall()
        return [tuple(int(v) for v in row) for row in rows]  # type: ignore[misc]

    # -- one timeframe ---------------------------------------------------------------------

    def build(
        self,
        timeframe: str,
        *,
        venue: str,
        symbol: str,
        window: tuple[int, int] | None,
        range_ms: tuple[int, int] | None,
    ) -> BuildResult:
        tf = timeframe_ms(timeframe)
        late_sql = self.late(tf)
        late = [
            LateCandidate(
                open_time_ms=b,
                ingest_seq=seq,
                trade_id=tid,
                ts_exchange_ms=ts,
                ts_ingest_ms=ing,
                seal_ms=b + tf + self.lateness,
            )
            for b, seq, tid, ts, ing in self.con.execute(
                f"SELECT ts - ts % {tf}, seq, tid, ts, ing FROM ev WHERE {late_sql} "
                "ORDER BY seq, rid"
            ).fetchall()
        ]
        if not late:
            late_sql = "FALSE"  # every trade is used: share what follows with such timeframes
        used = self.used(late_sql)
        if range_ms is not None:
            start, end = range_ms
        elif used.rows and used.ts_min is not None and used.ts_max is not None:
            start, end = used.ts_min - used.ts_min % tf, used.ts_max - used.ts_max % tf + tf
        else:
            return BuildResult(
                bars=[], late=late, duplicates=used.duplicates, conflicts=used.conflicts
            )
        kept = f"FROM ev WHERE NOT {late_sql}"
        if used.excluded:
            kept += f" AND rid NOT IN ({used.excluded})"
        traded = self._traded(tf, kept, start, end)
        prev_close = ""
        if range_ms is not None:
            before = self._one(
                f"SELECT arg_max(price, {self.last_first}) {kept} AND ts < {_ceil(start, tf)}"
            )
            prev_close = "" if before is None else canonical_decimal(before)
        conflict_buckets = {ts - ts % tf for ts in used.conflict_ts}
        spans = [(lo - lo % tf, hi - hi % tf) for lo, hi in used.spans]
        base: dict[str, Any] = {"venue": venue, "symbol": symbol, "timeframe": timeframe}
        bars: list[Bar] = []
        k = 0
        for open_time in range(start, end, tf):
            while k < len(spans) and spans[k][1] < open_time:
                k += 1
            gap = (k < len(spans) and spans[k][0] <= open_time) or (
                window is None or not (window[0] <= open_time and open_time + tf <= window[1])
            )
            row = traded.get(open_time)
            if open_time in conflict_buckets:
                status = "CONFLICT"
            elif gap or (row is None and not self.ids_contiguous):
                status = "GAP_UNRESOLVED"
            else:
                status = "COMPLETE" if row is not None else "EMPTY"
            times: dict[str, Any] = {"open_time_ms": open_time, "close_time_ms": open_time + tf - 1}
            if row is None:
                bar = empty_bar(venue, symbol, timeframe, open_time, tf, status, prev_close)
            else:
                bar = Bar(**base, **times, status=status, **row)
            prev_close = bar.close
            bars.append(bar)
        return BuildResult(
            bars=bars, late=late, duplicates=used.duplicates, conflicts=used.conflicts
        )

    def _traded(self, tf: int, kept: str, start: int, end: int) -> dict[int, dict[str, Any]]:
        """Bar fields of every scheduled bucket holding a kept trade, by open time."""
        lo, hi = _ceil(start, tf), _ceil(end, tf)
        where = f"{kept} AND ts >= {lo} AND ts < {hi}"
        order = self.order
        rows = self.con.execute(
            f"""
            SELECT ts - ts % {tf} AS b, arg_min(price, {order}), max(price), min(price),
                   arg_max(price, {order}), sum(qty), sum(price * qty),
                   count(*) + sum(CASE WHEN f IS NULL THEN 0 ELSE l - f END),
                   sum(qty) FILTER (WHERE buy), sum(price * qty) FILTER (WHERE buy),
                   min(tid), max(tid), bool_or(bf), count(*), min(seq), max(seq),
                   count(DISTINCT rid >> {_K_BITS})
            {where} GROUP BY b ORDER BY b
            """
        ).fetchall()
        segments: dict[int, set[str]] = {}
        for b, fi in self.con.execute(
            f"SELECT DISTINCT ts - ts % {tf}, rid >> {_ROW_BITS} {where}"
        ).fetchall():
            segments.setdefault(b, set()).add(self.names[fi])
        wanted = [start <= r[0] < end and (r[0] - start) % tf == 0 for r in rows]
        reader = (
            self.con.cursor()
            .sql(f"SELECT sha {where} ORDER BY {self.sort}")
            .to_arrow_reader(1 << 20)
        )
        digests = _digests(reader, [r[13] for r in rows], wanted)
        zero = Decimal(0)
        out: dict[int, dict[str, Any]] = {}
        for r, digest, want in zip(rows, digests, wanted, strict=True):
            if not want:
                continue
            b, o, h, lo_, c, v, qv, n, tbv, tbq, first, last, bf, _, smin, smax, events = r
            out[b] = {
                "open": canonical_decimal(o),
                "high": canonical_decimal(h),
                "low": canonical_decimal(lo_),
                "close": canonical_decimal(c),
                "volume": canonical_decimal(v),
                "quote_volume": canonical_decimal(qv),
                "trade_count": int(n),
                "taker_buy_volume": canonical_decimal(tbv if tbv is not None else zero),
                "taker_buy_quote_volume": canonical_decimal(tbq if tbq is not None else zero),
                "first_trade_id": first,
                "last_trade_id": last,
                "backfilled": bool(bf),
                "event_count": events,
                "seq_min": smin,
                "seq_max": smax,
                "segments": ",".join(sorted(segments[b])),
                "payload_digest": digest,
            }
        return out


def _connect(tmp: str, threads: int | None, memory_limit: str | None) -> duckdb.DuckDBPyConnection:
    config: dict[str, Any] = {"temp_directory": tmp, "preserve_insertion_order": False}
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValidationError(f"threads must be a positive integer, got {threads!r}")
        config["threads"] = threads
    if memory_limit is not None:
        config["memory_limit"] = memory_limit
    try:
        return duckdb.connect(":memory:", config=config)
    except duckdb.Error as exc:
        raise ValidationError(f"bad DuckDB setting: {exc}") from exc


def _clear_ids(out: dict[str, BuildResult], ids_ordered: bool) -> dict[str, BuildResult]:
    if ids_ordered:
        return out
    # ids that only identify: no trade-id range on the bars
    return {
        tf: msgspec.structs.replace(
            r,
            bars=[
                msgspec.structs.replace(b, first_trade_id=None, last_trade_id=None) for b in r.bars
            ],
        )
        for tf, r in out.items()
    }


@contextlib.contextmanager
def _loaded(
    files: Sequence[Path],
    *,
    venue: str,
    allowed_lateness_ms: int,
    apply_late: bool,
    ids_contiguous: bool,
    ids_cover: bool,
    threads: int | None,
    memory_limit: str | None,
) -> Iterator[_Engine]:
    """An engine with table ``ev`` loaded from ``files``; DuckDB errors as StorageError."""
    parser = parser_for(venue)
    paths = [Path(p) for p in files]
    with (
        tempfile.TemporaryDirectory(prefix="buff-bars-") as tmp,
        contextlib.closing(_connect(tmp, threads, memory_limit)) as con,
    ):
        engine = _Engine(
            con,
            paths,
            parser,
            lateness=allowed_lateness_ms,
            apply_late=apply_late,
            ids_contiguous=ids_contiguous,
            ids_cover=ids_cover,
        )
        try:
            engine.load()
            yield engine
        except duckdb.Error as exc:
            raise StorageError(f"bar build over {len(paths)} segment(s) failed: {exc}") from exc


def _exclude(engine: _Engine, exclude_ids: Sequence[int]) -> None:
    if exclude_ids:  # trades in an unresolved conflict: no version is used
        engine.con.execute(
            "DELETE FROM ev WHERE tid IN (SELECT unnest($ids))", {"ids": sorted(exclude_ids)}
        )


def build_bars_sql(
    files: Sequence[Path],
    *,
    venue: str,
    symbol: str,
    timeframes: Sequence[str],
    allowed_lateness_ms: int,
    apply_late: bool,
    window: tuple[int, int] | None,
    ids_contiguous: bool = True,
    range_ms: tuple[int, int] | None = None,
    threads: int | None = None,
    memory_limit: str | None = None,
    exclude_ids: Sequence[int] = (),
    ids_ordered: bool = True,
    ids_cover: bool = False,
) -> dict[str, BuildResult]:
    """Bars of one trade stream per timeframe, equal to ``build_bars_ref`` on the same input.

    ``threads`` and ``memory_limit`` (DuckDB syntax, e.g. ``"2GB"``) bound the engine; past
    the limit DuckDB spills to a temporary directory removed on return. Unreadable
    segments, payloads the parser refuses, money that ``DECIMAL(38,10)`` cannot hold exactly
    and sums that overflow raise StorageError.
    """
    for tf in timeframes:
        timeframe_ms(tf)
    with _loaded(
        files,
        venue=venue,
        allowed_lateness_ms=allowed_lateness_ms,
        apply_late=apply_late,
        ids_contiguous=ids_contiguous,
        ids_cover=ids_cover,
        threads=threads,
        memory_limit=memory_limit,
    ) as engine:
        _exclude(engine, exclude_ids)
        out = {
            tf: engine.build(tf, venue=venue, symbol=symbol, window=window, range_ms=range_ms)
            for tf in timeframes
        }
    return _clear_ids(out, ids_ordered)


def build_day_sql(
    files: Sequence[Path],
    ranges: Sequence[tuple[int, int]],
    day_ms: int,
    *,
    venue: str,
    symbol: str,
    timeframes: Sequence[str],
    allowed_lateness_ms: int,
    apply_late: bool,
    window: tuple[int, int] | None,
    ids_contiguous: bool = True,
    threads: int | None = None,
    memory_limit: str | None = None,
    exclude_ids: Sequence[int] = (),
    ids_ordered: bool = True,
    ids_cover: bool = False,
) -> dict[str, DayPart]:
    """One UTC day's part of the stream's bars (core.day_bars), equal to ``build_day_ref``.

    ``files`` are the segments whose manifest range (``ranges``, the same order) reaches
    the day; only the trades of the day are built.
    """
    for tf in timeframes:
        timeframe_ms(tf)
    with _loaded(
        files,
        venue=venue,
        allowed_lateness_ms=allowed_lateness_ms,
        apply_late=apply_late,
        ids_contiguous=ids_contiguous,
        ids_cover=ids_cover,
        threads=threads,
        memory_limit=memory_limit,
    ) as engine:
        con = engine.con
        con.register(
            "seg_range",
            pa.table(
                {
                    "fi": list(range(len(ranges))),
                    "lo": [r[0] for r in ranges],
                    "hi": [r[1] for r in ranges],
                },
                schema=pa.schema([("fi", pa.int64()), ("lo", pa.int64()), ("hi", pa.int64())]),
            ),
        )
        day = f"(ts - ts % {DAY_MS})"
        orphans = int(
            engine._one(
                f"SELECT count(*) FROM ev JOIN seg_range ON fi = rid >> {_ROW_BITS} "
                f"WHERE NOT (lo - lo % {DAY_MS} <= {day} AND {day} <= hi - hi % {DAY_MS})"
            )
        )
        con.execute(f"DELETE FROM ev WHERE ts < {day_ms} OR ts >= {day_ms + DAY_MS}")
        _exclude(engine, exclude_ids)
        built = {
            tf: engine.build(tf, venue=venue, symbol=symbol, window=window, range_ms=None)
            for tf in timeframes
        }
        runs = {tf: engine.id_runs(timeframe_ms(tf)) for tf in timeframes}
        late_index = {
            tf: engine._column(
                f"SELECT rid & {_K_MASK} FROM ev WHERE {engine.late(timeframe_ms(tf))} "
                "ORDER BY seq, rid"
            )
            for tf in timeframes
        }
    built = _clear_ids(built, ids_ordered)
    return {
        tf: DayPart(
            day_ms=day_ms,
            result=r,
            runs=runs[tf],
            late_index=late_index[tf],
            orphans=orphans,
        )
        for tf, r in built.items()
    }
