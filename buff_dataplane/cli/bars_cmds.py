"""Commands on bars: canonicalize, replay, bars, revisions."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from buff_dataplane.cli import app
from buff_dataplane.cli.common import (
    AddressOpt,
    DataOpt,
    ExecutorOpt,
    JsonOpt,
    WorkersOpt,
    data_store,
    err,
    open_data_log,
    print_json,
)
from buff_dataplane.core.bars import TIMEFRAMES, Bar
from buff_dataplane.core.errors import EXIT_OK, EXIT_VERIFY_FAILED, ValidationError
from buff_dataplane.core.ids import validate_symbol, validate_venue
from buff_dataplane.core.times import format_utc_ms, parse_utc_ms
from buff_dataplane.pipeline.canonicalize import DEFAULT_ENGINE
from buff_dataplane.pipeline.executors import DEFAULT_EXECUTOR, executor_session

FORMATS = ("csv", "json", "parquet", "binance")
EngineOpt = Annotated[
    str, typer.Option(help="Bar engine: sql (DuckDB, fast) or reference (pure Python).")
]
ThreadsOpt = Annotated[
    int | None,
    typer.Option(min=1, max=256, help="DuckDB threads for the sql engine (default: all cores)."),
]


def _split(value: str | None, what: str) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise ValidationError(f"--{what} is empty")
    return items


def _range(start: str | None, end: str | None) -> tuple[int | None, int | None]:
    lo = parse_utc_ms(start, what="--from") if start else None
    hi = parse_utc_ms(end, what="--to") if end else None
    if lo is not None and hi is not None and lo >= hi:
        raise ValidationError(f"inverted range: --from {start} is not before --to {end}")
    return lo, hi


def _venues(log: Any, venue: str | None) -> list[str]:
    if venue is not None:
        return [validate_venue(venue)]
    found = sorted({s.venue for s in log.stream_ids() if s.channel == "trade"})
    if not found:
        raise ValidationError(f"no trade streams in {log.url}")
    return found


@app.command("canonicalize")
def canonicalize_cmd(
    data: DataOpt = "./data",
    venue: Annotated[
        str | None, typer.Option(help="Venue (default: every venue with trades).")
    ] = None,
    symbols: Annotated[
        str | None, typer.Option(help="Comma-separated symbols (default: all).")
    ] = None,
    timeframes: Annotated[
        str, typer.Option(help=f"Comma-separated timeframes: {', '.join(TIMEFRAMES)}.")
    ] = "1m",
    start: Annotated[
        str | None, typer.Option("--from", help="Schedule start, UTC (ISO or ms).")
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="Schedule end, exclusive.")] = None,
    lateness_ms: Annotated[
        int | None, typer.Option(help="Allowed lateness after a bucket's end (default 2000).")
    ] = None,
    apply_late: Annotated[
        bool | None,
        typer.Option(
            "--apply-late/--no-apply-late", help="Apply late trades (a late_data revision)."
        ),
    ] = None,
    rebuild: Annotated[
        bool, typer.Option(help="Write a new revision even if nothing changed.")
    ] = False,
    engine: EngineOpt = DEFAULT_ENGINE,
    threads: ThreadsOpt = None,
    executor: ExecutorOpt = DEFAULT_EXECUTOR,
    workers: WorkersOpt = None,
    address: AddressOpt = None,
    partition: Annotated[
        str,
        typer.Option(
            help="Task per trade stream, or per (stream, UTC day) combined into the same bars."
        ),
    ] = "stream",
    as_json: JsonOpt = False,
) -> int:
    """Build OHLCV bars from the raw log into new revisions (only where something changed).

    Unset options are inherited from the latest revision's config. Late trades (ingested
    after their bucket's end plus the allowed lateness) are reported as revision
    candidates unless --apply-late.
    """
    from buff_dataplane.pipeline.canonicalize import canonicalize

    tfs = _split(timeframes, "timeframes") or []
    overrides: dict[str, Any] = {}
    lo, hi = _range(start, end)
    if (lo is None) != (hi is None):
        raise ValidationError("give both --from and --to, or neither")
    if lo is not None:
        overrides.update(range_from_ms=lo, range_to_ms=hi)
    if lateness_ms is not None:
        overrides["allowed_lateness_ms"] = lateness_ms
    if apply_late is not None:
        overrides["apply_late"] = apply_late
    log = open_data_log(data, readonly=True)
    outcomes = []
    # One pool (or cluster) for every venue's tasks: workers start once.
    with executor_session(executor, workers=workers, address=address):
        for v in _venues(log, venue):
            outcomes += canonicalize(
                log,
                venue=v,
                symbols=_split(symbols, "symbols"),
                timeframes=tfs,
                overrides=overrides,
                rebuild=rebuild,
                engine=engine,
                threads=threads,
                progress=None if as_json else (lambda msg: err(f"... {msg}")),
                executor=executor,
                workers=workers,
                address=address,
                partition=partition,
            )
    if as_json:
        print_json({"artifacts": [o.to_dict() for o in outcomes]})
        return EXIT_OK
    for o in outcomes:
        counts = " ".join(f"{k}={v}" for k, v in o.status_counts.items())
        where = f"rev {o.revision} ({o.reason})" if o.revision else "unchanged, nothing written"
        print(f"{o.key}: {o.bars} bars [{counts}] -> {where}")
        if o.late_candidates:
            print(f"  {o.late_candidates} late trades left out (revision candidates; --apply-late)")
        if o.conflicts:
            print(f"  CONFLICT: trade ids {o.conflicts[:5]} have differing versions")
        if o.duplicates:
            print(f"  {o.duplicates} duplicate trades counted once")
    return EXIT_OK


@app.command("replay")
def replay_cmd(
    verify: Annotated[
        bool, typer.Option("--verify", help="Compare with the stored digests (exit 1 on mismatch).")
    ] = False,
    data: DataOpt = "./data",
    venue: Annotated[str | None, typer.Option(help="Only this venue.")] = None,
    symbol: Annotated[str | None, typer.Option(help="Only this symbol.")] = None,
    timeframe: Annotated[str | None, typer.Option(help="Only this timeframe.")] = None,
    revision: Annotated[int | None, typer.Option(min=1, help="Only this revision.")] = None,
    engine: EngineOpt = DEFAULT_ENGINE,
    threads: ThreadsOpt = None,
    executor: ExecutorOpt = DEFAULT_EXECUTOR,
    workers: WorkersOpt = None,
    address: AddressOpt = None,
    as_json: JsonOpt = False,
) -> int:
    """Re-derive bar revisions from exactly their recorded raw inputs and config.

    With --verify, every content digest and bar hash must equal the stored ones; the
    first differing bars are printed and the exit code is 1. Without it, the re-derived
    digests are printed.
    """
    from buff_dataplane.pipeline.replay import MAX_LISTED, replay

    if venue is not None:
        validate_venue(venue)
    if symbol is not None:
        validate_symbol(symbol)
    if timeframe is not None and timeframe not in TIMEFRAMES:
        raise ValidationError(
            f"unknown timeframe {timeframe!r}: expected one of {', '.join(TIMEFRAMES)}"
        )
    items = replay(
        data_store(data),
        venue=venue,
        symbol=symbol,
        timeframe=timeframe,
        revision=revision,
        engine=engine,
        threads=threads,
        executor=executor,
        workers=workers,
        address=address,
    )
    failed = [i for i in items if not i.ok]
    if as_json:
        print_json({"ok": not failed, "verified": verify, "items": [i.to_dict() for i in items]})
    else:
        for item in items:
            state = ("OK" if item.ok else "MISMATCH") if verify else "re-derived"
            print(f"{item.key} rev {item.revision}: {state} {item.found_digest}")
            if verify and not item.ok:
                for fault in item.faults:
                    print(f"  FAULT {fault}")
                for d in item.differing_bars[:MAX_LISTED]:
                    print(
                        f"  bar {format_utc_ms(d['open_time_ms'])}: fields {d['fields']}: "
                        f"expected {d['expected_values']} found {d['found_values']}"
                    )
                if len(item.differing_bars) > MAX_LISTED:
                    print(f"  ... and {len(item.differing_bars) - MAX_LISTED} more bars differ")
        if verify:
            print(f"replay --verify: {len(items) - len(failed)}/{len(items)} revisions match")
    return EXIT_VERIFY_FAILED if verify and failed else EXIT_OK


def _binance_rows(bars: list[Bar]) -> list[list[object]]:
    return [
        [
            b.open_time_ms,
            b.open,
            b.high,
            b.low,
            b.close,
            b.volume,
            b.close_time_ms,
            b.quote_volume,
            b.trade_count,
            b.taker_buy_volume,
            b.taker_buy_quote_volume,
            "0",
        ]
        for b in bars
    ]


def _render(bars: list[Bar], fmt: str) -> bytes:
    from buff_dataplane.core.bars import BAR_FIELDS, bar_hash

    if fmt == "binance":
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(_binance_rows(bars))
        return buf.getvalue().encode()
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow([*BAR_FIELDS, "bar_hash"])
        for b in bars:
            writer.writerow([*(getattr(b, f) for f in BAR_FIELDS), bar_hash(b)])
        return buf.getvalue().encode()
    if fmt == "json":
        return b"".join(
            (
                json.dumps(
                    {**{f: getattr(b, f) for f in BAR_FIELDS}, "bar_hash": bar_hash(b)},
                    sort_keys=True,
                )
                + "\n"
            ).encode()
            for b in bars
        )
    import pyarrow as pa
    import pyarrow.parquet as pq

    from buff_dataplane.storage.bars_store import bars_to_table

    sink = pa.BufferOutputStream()
    pq.write_table(bars_to_table(bars), sink, compression="zstd")
    return bytes(sink.getvalue().to_pybytes())


@app.command("bars")
def bars_cmd(
    venue: Annotated[str, typer.Option(help="Venue id.")],
    symbol: Annotated[str, typer.Option(help="Canonical symbol, e.g. BTC-USDT-PERP.")],
    timeframe: Annotated[str, typer.Option(help="Timeframe, e.g. 1m.")],
    data: DataOpt = "./data",
    start: Annotated[str | None, typer.Option("--from", help="First bar open time, UTC.")] = None,
    end: Annotated[str | None, typer.Option("--to", help="End of range (exclusive), UTC.")] = None,
    revision: Annotated[int | None, typer.Option(min=1, help="Revision (default: latest).")] = None,
    fmt: Annotated[str, typer.Option("--format", help=f"Output: {', '.join(FORMATS)}.")] = "csv",
    out: Annotated[Path | None, typer.Option(help="Write to this file (default: stdout).")] = None,
    require_complete: Annotated[
        bool, typer.Option(help="Exit 3 if the range holds GAP_UNRESOLVED or CONFLICT bars.")
    ] = False,
) -> int:
    """Print or export bars. The binance format is the 12-column kline CSV (no header)."""
    from buff_dataplane.api import select_bars
    from buff_dataplane.storage.bars_store import ArtifactKey, BarStore

    if fmt not in FORMATS:
        raise ValidationError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if fmt == "parquet" and out is None:
        raise ValidationError("--format parquet needs --out FILE")
    key = ArtifactKey(venue, symbol, timeframe)
    lo, hi = _range(start, end)
    store = BarStore.over(data_store(data))
    _, bars = select_bars(
        store, key, start_ms=lo, end_ms=hi, revision=revision, allow_incomplete=not require_complete
    )
    payload = _render(bars, fmt)
    if out is None:
        sys.stdout.buffer.write(payload)
        sys.stdout.flush()
    else:
        if out.exists() and out.is_dir():
            raise ValidationError(f"--out {out} is a directory")
        out.write_bytes(payload)
        err(f"wrote {len(bars)} bars to {out}")
    return EXIT_OK


@app.command("revisions")
def revisions_cmd(data: DataOpt = "./data", as_json: JsonOpt = False) -> int:
    """List bar artifacts and their revisions (reason, bars, content digest)."""
    from buff_dataplane.storage.bars_store import BarStore

    store = BarStore.over(data_store(data))
    rows = []
    for key in store.artifacts():
        for rev in store.revisions(key):
            m = store.manifest(key, rev)
            rows.append(
                {
                    "artifact": str(key),
                    "revision": rev,
                    "reason": m["reason"],
                    "bars": m["bars"],
                    "status_counts": m["status_counts"],
                    "late_candidates": m["late_candidates"],
                    "content_digest": m["content_digest"],
                    "diff": m["diff"],
                }
            )
    if as_json:
        print_json({"revisions": rows})
        return EXIT_OK
    if not rows:
        print("no bar revisions (run buff canonicalize)")
    for r in rows:
        print(
            f"{r['artifact']:<36} rev {r['revision']:<3} {r['reason']:<14} {r['bars']:>6} bars "
            f"{r['content_digest'][:16]}  diff {r['diff']}"
        )
    return EXIT_OK
