"""Canonical OHLCV bars: the model, the digest encoding, and the reference builder.

This module is the specification in code. :func:`build_bars` is a small, pure and
deliberately plain implementation; the vectorized DuckDB builder in
``buff_dataplane.pipeline.bars_sql`` must produce exactly the same bars (property tests
hold them equal on generated trade sets). The rules, per stream and timeframe:

* Buckets are UTC epoch-aligned: ``open_time = ts - ts % tf``.
* A trade belongs to the bucket of its exchange time. A WebSocket trade is **late** when
  its ingest time is after its bucket's seal, ``open_time + tf + allowed_lateness_ms``.
  Unless the build applies late data, late trades are left out of the bars and reported
  as revision candidates, so a published bar never changes silently. Back-filled trades
  (``source == "rest_backfill"``) arrive after the seal by nature: they are a repair, not
  late data, and are always used (a revision with reason ``backfill``).
* Duplicates by trade id count once (the first by ingest_seq). The same id with
  different content is a **conflict**: no version is used and every bucket a version
  falls in is ``CONFLICT``.
* Ordering is ``(trade time, ingest_seq, index in the message)``: open is the first
  trade, close the last. One raw event may hold several trades (a venue's batch); each
  is a trade of its own bucket. Trade count is the number of underlying trades
  (``last_id - first_id + 1`` for an aggregated print, else 1); event count is the number
  of distinct raw events contributing; the payload digest takes one payload hash per
  trade, in trade order.
* Trade ids of a venue whose ids carry no order (Bybit's UUIDs) serve only to recognise
  duplicates: such bars have no first/last trade id.
* Every bucket of the schedule (first to last bucket holding a trade, or the requested
  range) is accounted for: ``COMPLETE`` (trades, no gap), ``EMPTY`` (no trades, and the
  venue's contiguous ids prove none were missed), ``GAP_UNRESOLVED`` (a trade-id jump
  spans it, or it is not wholly inside the observed window of the symbol's feed), or
  ``CONFLICT``. With ``ids_cover`` (core.venues ``covered``) continuity runs over the
  match ids each print covers (``first_trade_id..last_trade_id``). An empty bucket
  repeats the previous close with zero volume (the venue convention); with no previous
  close its prices are empty.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Sequence
from decimal import Context, Decimal, Inexact, Overflow, localcontext

import msgspec

from buff_dataplane.core.decimals import canonical_decimal
from buff_dataplane.core.errors import ValidationError
from buff_dataplane.core.trades import Trade, content_key
from buff_dataplane.core.venues import TradeIds, id_span

TIMEFRAMES: dict[str, int] = {
    "1s": 1_000,
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
}
STATUSES = ("COMPLETE", "EMPTY", "GAP_UNRESOLVED", "CONFLICT")
BAR_FORMAT_VERSION = 1


def timeframe_ms(name: str) -> int:
    try:
        return TIMEFRAMES[name]
    except KeyError:
        raise ValidationError(
            f"unknown timeframe {name!r}: expected one of {', '.join(TIMEFRAMES)}"
        ) from None


class TradeEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A trade as read from the raw log: the parsed print plus where it came from."""

    ingest_seq: int
    ts_ingest_ms: int
    payload_sha256: bytes
    source: str
    segment: str
    trade: Trade
    index: int = 0  # position of the trade in its message (a batch holds several)


class Bar(msgspec.Struct, frozen=True, kw_only=True):
    """One canonical bar. Decimal fields are canonical text ('' when there is no value)."""

    venue: str
    symbol: str
    timeframe: str
    open_time_ms: int
    close_time_ms: int
    open: str
    high: str
    low: str
    close: str
    volume: str
    quote_volume: str
    trade_count: int
    taker_buy_volume: str
    taker_buy_quote_volume: str
    first_trade_id: int | None
    last_trade_id: int | None
    status: str
    backfilled: bool
    event_count: int
    seq_min: int | None
    seq_max: int | None
    segments: str  # sorted, comma-separated segment file names
    payload_digest: str  # SHA-256 over contributing payload hashes, in trade order


# Field order of the canonical row encoding (schemas/bars.v1.md): never reorder.
BAR_FIELDS: tuple[str, ...] = Bar.__struct_fields__


def _field_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def canonical_row(bar: Bar) -> bytes:
    """The digest encoding of a bar: fields in BAR_FIELDS order, '|'-joined, newline-ended."""
    return ("|".join(_field_text(getattr(bar, f)) for f in BAR_FIELDS) + "\n").encode()


def bar_hash(bar: Bar) -> str:
    return hashlib.sha256(canonical_row(bar)).hexdigest()


def content_digest(bars: Iterable[Bar]) -> str:
    """SHA-256 over the canonical rows of ``bars`` in (open_time) order."""
    h = hashlib.sha256()
    for bar in bars:
        h.update(canonical_row(bar))
    return h.hexdigest()


class LateCandidate(msgspec.Struct, frozen=True, kw_only=True):
    """A late trade left out of a build: applying it would change the bar at open_time_ms."""

    open_time_ms: int
    ingest_seq: int
    trade_id: int
    ts_exchange_ms: int
    ts_ingest_ms: int
    seal_ms: int


class BuildResult(msgspec.Struct, frozen=True, kw_only=True):
    bars: list[Bar]
    late: list[LateCandidate]
    duplicates: int
    conflicts: list[int]  # trade ids with differing versions


def is_late(ev: TradeEvent, tf: int, allowed_lateness_ms: int, apply_late: bool) -> bool:
    """A WebSocket trade ingested after its bucket's seal, left out unless ``apply_late``."""
    seal = ev.trade.ts_ms - ev.trade.ts_ms % tf + tf + allowed_lateness_ms
    return not apply_late and ev.source == "ws" and ev.ts_ingest_ms > seal


def _trade_order(e: TradeEvent) -> tuple[int, int, int]:
    return (e.trade.ts_ms, e.ingest_seq, e.index)


def _count(t: Trade) -> int:
    if t.first_trade_id is not None and t.last_trade_id is not None:
        return t.last_trade_id - t.first_trade_id + 1
    return 1


def build_bars(
    events: Sequence[TradeEvent],
    *,
    venue: str,
    symbol: str,
    timeframe: str,
    allowed_lateness_ms: int,
    apply_late: bool,
    window: tuple[int, int] | None,
    ids_contiguous: bool = True,
    range_ms: tuple[int, int] | None = None,
    ids_ordered: bool = True,
    ids_cover: bool = False,
) -> BuildResult:
    """Bars of one stream and timeframe from its trade events (the reference builder).

    ``window`` is the observed exchange-time window of the symbol's feed; a bucket not
    wholly inside it cannot be proven complete. ``range_ms`` ([from, to), aligned to the
    timeframe) fixes the schedule; by default it runs from the first to the last bucket
    holding a trade.
    """
    tf = timeframe_ms(timeframe)

    def bucket(ts: int) -> int:
        return ts - ts % tf

    late: list[LateCandidate] = []
    used: list[TradeEvent] = []
    for ev in sorted(events, key=lambda e: (e.ingest_seq, e.index)):
        seal = bucket(ev.trade.ts_ms) + tf + allowed_lateness_ms
        if is_late(ev, tf, allowed_lateness_ms, apply_late):
            late.append(
                LateCandidate(
                    open_time_ms=bucket(ev.trade.ts_ms),
                    ingest_seq=ev.ingest_seq,
                    trade_id=ev.trade.trade_id,
                    ts_exchange_ms=ev.trade.ts_ms,
                    ts_ingest_ms=ev.ts_ingest_ms,
                    seal_ms=seal,
                )
            )
        else:
            used.append(ev)

    # One version per trade id; differing versions are a conflict.
    by_id: dict[int, list[TradeEvent]] = {}
    for ev in used:
        by_id.setdefault(ev.trade.trade_id, []).append(ev)
    kept: list[TradeEvent] = []
    conflict_buckets: set[int] = set()
    conflicts: list[int] = []
    duplicates = 0
    for trade_id in sorted(by_id):
        versions = by_id[trade_id]
        if len({content_key(v.trade) for v in versions}) > 1:
            conflicts.append(trade_id)
            conflict_buckets.update(bucket(v.trade.ts_ms) for v in versions)
        else:
            kept.append(versions[0])
            duplicates += len(versions) - 1

    # Trade-id jumps: the missing trades lie somewhere between their neighbours' times.
    gap_spans: list[tuple[int, int]] = []
    if ids_contiguous:
        firsts = [by_id[i][0] for i in sorted(by_id)]
        mode: TradeIds = "covered" if ids_cover else "contiguous"
        for a, b in itertools.pairwise(firsts):
            if id_span(b.trade, mode)[0] > id_span(a.trade, mode)[1] + 1:
                lo, hi = sorted((a.trade.ts_ms, b.trade.ts_ms))
                gap_spans.append((bucket(lo), bucket(hi)))

    if range_ms is not None:
        start, end = range_ms
    elif by_id:
        all_ts = [v.trade.ts_ms for vs in by_id.values() for v in vs]
        start, end = bucket(min(all_ts)), bucket(max(all_ts)) + tf
    else:
        return BuildResult(bars=[], late=late, duplicates=duplicates, conflicts=conflicts)

    in_bucket: dict[int, list[TradeEvent]] = {}
    for ev in sorted(kept, key=_trade_order):
        in_bucket.setdefault(bucket(ev.trade.ts_ms), []).append(ev)

    bars: list[Bar] = []
    prev_close = ""
    # Closes of trades before the schedule start carry into an empty first bucket.
    before = [e for e in kept if bucket(e.trade.ts_ms) < start]
    if before:
        prev_close = canonical_decimal(max(before, key=_trade_order).trade.price)
    for open_time in range(start, end, tf):
        trades = in_bucket.get(open_time, [])
        gap = any(lo <= open_time <= hi for lo, hi in gap_spans) or (
            window is None or not (window[0] <= open_time and open_time + tf <= window[1])
        )
        if open_time in conflict_buckets:
            status = "CONFLICT"
        elif gap or (not trades and not ids_contiguous):
            status = "GAP_UNRESOLVED"
        else:
            status = "COMPLETE" if trades else "EMPTY"
        bar = _bar(venue, symbol, timeframe, open_time, tf, trades, status, prev_close)
        if not ids_ordered and bar.first_trade_id is not None:
            bar = msgspec.structs.replace(bar, first_trade_id=None, last_trade_id=None)
        prev_close = bar.close
        bars.append(bar)
    return BuildResult(bars=bars, late=late, duplicates=duplicates, conflicts=conflicts)


def empty_bar(
    venue: str,
    symbol: str,
    timeframe: str,
    open_time: int,
    tf: int,
    status: str,
    prev_close: str,
) -> Bar:
    """A bucket with no trades: the previous close repeated, zero volumes, no provenance."""
    return Bar(
        venue=venue,
        symbol=symbol,
        timeframe=timeframe,
        open_time_ms=open_time,
        close_time_ms=open_time + tf - 1,
        open=prev_close,
        high=prev_close,
        low=prev_close,
        close=prev_close,
        volume="0",
        quote_volume="0",
        trade_count=0,
        taker_buy_volume="0",
        taker_buy_quote_volume="0",
        first_trade_id=None,
        last_trade_id=None,
        status=status,
        backfilled=False,
        event_count=0,
        seq_min=None,
        seq_max=None,
        segments="",
        payload_digest=EMPTY_DIGEST,
    )


EMPTY_DIGEST = hashlib.sha256(b"").hexdigest()


def _bar(
    venue: str,
    symbol: str,
    timeframe: str,
    open_time: int,
    tf: int,
    trades: list[TradeEvent],
    status: str,
    prev_close: str,
) -> Bar:
    base: dict[str, object] = {
        "venue": venue,
        "symbol": symbol,
        "timeframe": timeframe,
        "open_time_ms": open_time,
        "close_time_ms": open_time + tf - 1,
        "status": status,
    }
    if not trades:
        return empty_bar(venue, symbol, timeframe, open_time, tf, status, prev_close)
    with localcontext(_EXACT):
        return _traded_bar(base, trades)


# Sums of products of venue decimals stay far below 80 digits; Inexact traps any rounding.
_EXACT = Context(prec=80, traps=[Inexact, Overflow])


def _traded_bar(base: dict[str, object], trades: list[TradeEvent]) -> Bar:
    prices = [e.trade.price for e in trades]
    volume = sum((e.trade.size for e in trades), Decimal(0))
    quote = sum((e.trade.price * e.trade.size for e in trades), Decimal(0))
    buys = [e.trade for e in trades if e.trade.taker_side == "buy"]
    digest = hashlib.sha256()
    for e in trades:
        digest.update(e.payload_sha256)
    ids = [e.trade.trade_id for e in trades]
    seqs = [e.ingest_seq for e in trades]
    return Bar(
        **base,  # type: ignore[arg-type]
        open=canonical_decimal(prices[0]),
        high=canonical_decimal(max(prices)),
        low=canonical_decimal(min(prices)),
        close=canonical_decimal(prices[-1]),
        volume=canonical_decimal(volume),
        quote_volume=canonical_decimal(quote),
        trade_count=sum(_count(e.trade) for e in trades),
        taker_buy_volume=canonical_decimal(sum((t.size for t in buys), Decimal(0))),
        taker_buy_quote_volume=canonical_decimal(sum((t.price * t.size for t in buys), Decimal(0))),
        first_trade_id=min(ids),
        last_trade_id=max(ids),
        backfilled=any(e.source == "rest_backfill" for e in trades),
        event_count=len({(e.segment, e.ingest_seq) for e in trades}),
        seq_min=min(seqs),
        seq_max=max(seqs),
        segments=",".join(sorted({e.segment for e in trades})),
        payload_digest=digest.hexdigest(),
    )


def apply_gap_facts(
    bars: Sequence[Bar],
    unresolved: Sequence[tuple[int, int]],
    conflicts: Sequence[tuple[int, int]],
) -> list[Bar]:
    """Bars with the ledger's facts applied: a bucket an unresolved gap's time span
    touches is ``GAP_UNRESOLVED``, one a conflict touches is ``CONFLICT`` (it wins).

    Spans are inclusive exchange-time ``(from, to)`` pairs from the gap ledger; the
    conflicting trades themselves were left out of the build (``exclude_ids``).
    """
    out = []
    for bar in bars:
        lo, hi = bar.open_time_ms, bar.close_time_ms

        def touches(spans: Sequence[tuple[int, int]], lo: int = lo, hi: int = hi) -> bool:
            return any(a <= hi and b >= lo for a, b in spans)

        if touches(conflicts):
            status = "CONFLICT"
        elif bar.status in ("COMPLETE", "EMPTY") and touches(unresolved):
            status = "GAP_UNRESOLVED"
        else:
            status = bar.status
        out.append(bar if status == bar.status else msgspec.structs.replace(bar, status=status))
    return out
