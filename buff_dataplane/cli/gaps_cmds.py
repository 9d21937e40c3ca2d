"""Commands on gaps: gaps (list and scan the ledger), backfill (repair from REST)."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

import typer

from buff_dataplane.cli import app
from buff_dataplane.cli.common import (
    AddressOpt,
    DataOpt,
    ExecutorOpt,
    JsonOpt,
    StateOpt,
    WorkersOpt,
    err,
    open_data_log,
    print_json,
)
from buff_dataplane.core.errors import EXIT_INCOMPLETE, EXIT_OK, ValidationError
from buff_dataplane.core.gaps import GAP_STATUSES, Gap
from buff_dataplane.core.ids import validate_venue
from buff_dataplane.core.times import format_utc_ms, parse_utc_ms
from buff_dataplane.pipeline.executors import DEFAULT_EXECUTOR

VenueOpt = Annotated[str, typer.Option(help="Venue whose trade streams to look at.")]
SymbolsOpt = Annotated[
    str | None, typer.Option(help="Comma-separated symbols (default: every trade stream).")
]
FromOpt = Annotated[
    str | None, typer.Option("--from", help="Range start, UTC: its uncovered edges are gaps.")
]
ToOpt = Annotated[str | None, typer.Option("--to", help="Range end (exclusive), UTC.")]


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def _range(start: str | None, end: str | None) -> tuple[int, int] | None:
    if start is None and end is None:
        return None
    if start is None or end is None:
        raise ValidationError("give both --from and --to, or neither")
    lo, hi = parse_utc_ms(start, what="--from"), parse_utc_ms(end, what="--to")
    if lo >= hi:
        raise ValidationError(f"inverted range: --from {start} is not before --to {end}")
    return lo, hi


def _symbols(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise ValidationError("--symbols is empty")
    return items


def _row(g: Gap) -> dict[str, Any]:
    return {
        "gap_id": g.gap_id,
        "stream_id": g.stream_id,
        "kind": g.kind,
        "status": g.status,
        "id_from": g.id_from,
        "id_to": g.id_to,
        "ts_from_ms": g.ts_from_ms,
        "ts_to_ms": g.ts_to_ms,
        "detected_at_ms": g.detected_at_ms,
        "attempts": g.attempts,
        "filled": g.filled,
        "reason": g.reason,
    }


def _line(g: Gap) -> str:
    ids = "" if g.id_from is None and g.id_to is None else f" ids {g.id_from}..{g.id_to}"
    return (
        f"{g.gap_id} {g.status:<10} {g.kind:<9} {g.stream_id} "
        f"{format_utc_ms(g.ts_from_ms)}..{format_utc_ms(g.ts_to_ms)}{ids} "
        f"attempts={g.attempts} filled={g.filled}" + (f"  {g.reason}" if g.reason else "")
    )


@app.command("gaps")
def gaps_cmd(
    data: DataOpt = "./data",
    state_dir: StateOpt = None,
    executor: ExecutorOpt = DEFAULT_EXECUTOR,
    workers: WorkersOpt = None,
    address: AddressOpt = None,
    status: Annotated[
        str | None, typer.Option(help=f"Only gaps with this status: {', '.join(GAP_STATUSES)}.")
    ] = None,
    venue: Annotated[str | None, typer.Option(help="Only this venue.")] = None,
    scan: Annotated[
        bool,
        typer.Option(help="First detect gaps in the log and record new ones (needs --venue)."),
    ] = False,
    symbols: SymbolsOpt = None,
    start: FromOpt = None,
    end: ToOpt = None,
    as_json: JsonOpt = False,
) -> int:
    """List the gap ledger: every hole found in the trade streams, and what became of it.

    A gap is OPEN (found, not repaired yet), BACKFILLED (the missing trades were fetched
    from the venue's REST history, or it confirmed none were missing) or UNRESOLVED
    (attempts spent, too old for the venue's retention, or a WS/REST conflict), with the
    reason. Times are exchange time (UTC). With --scan (or --from/--to) the log is
    scanned first and new gaps are recorded; that needs the data directory's write lock.
    """
    from buff_dataplane.pipeline.backfill import scan_ledger, trade_streams
    from buff_dataplane.storage.gap_ledger import ledger_for

    if status is not None and status not in GAP_STATUSES:
        raise ValidationError(f"--status {status!r}: expected one of {', '.join(GAP_STATUSES)}")
    if venue is not None:
        validate_venue(venue)
    range_ms = _range(start, end)
    if (scan or range_ms or symbols) and venue is None:
        raise ValidationError("--scan, --symbols and --from/--to need --venue")
    if scan or range_ms is not None:
        assert venue is not None
        with open_data_log(data, readonly=False, state_dir=state_dir) as log:
            streams = trade_streams(log, venue, _symbols(symbols))
            ledger = ledger_for(log)
            found = scan_ledger(
                log,
                ledger,
                streams,
                now_ms=wall_ms(),
                range_ms=range_ms,
                executor=executor,
                workers=workers,
                address=address,
            )
            err(f"scan: {len(found)} new gap(s) recorded")
    else:
        with open_data_log(data, readonly=True) as log:
            ledger = ledger_for(log)
    rows = [
        g
        for g in ledger.rows(status=status)
        if venue is None or g.stream_id.startswith(f"{venue}/")
    ]
    if as_json:
        print_json({"gaps": [_row(g) for g in rows]})
    else:
        for g in rows:
            print(_line(g))
        counts = {s: sum(g.status == s for g in rows) for s in GAP_STATUSES}
        print(f"{len(rows)} gap(s): " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return EXIT_OK


@app.command("backfill")
def backfill_cmd(
    venue: VenueOpt = "binance-usdm",
    data: DataOpt = "./data",
    state_dir: StateOpt = None,
    executor: ExecutorOpt = DEFAULT_EXECUTOR,
    workers: WorkersOpt = None,
    address: AddressOpt = None,
    symbols: SymbolsOpt = None,
    rest_endpoint: Annotated[
        str | None, typer.Option(help="REST base URL (default: the venue's).")
    ] = None,
    max_attempts: Annotated[
        int, typer.Option(min=1, max=100, help="Attempts per gap before it is UNRESOLVED.")
    ] = 3,
    request_attempts: Annotated[
        int, typer.Option(min=1, max=50, help="Tries per REST request (429/418/5xx/timeouts).")
    ] = 5,
    retry_unresolved: Annotated[
        bool, typer.Option(help="Work UNRESOLVED gaps again (not those past retention).")
    ] = False,
    start: FromOpt = None,
    end: ToOpt = None,
    as_json: JsonOpt = False,
) -> int:
    """Find gaps in the log and repair them from the venue's REST trade history.

    Scans each trade stream (id jumps, restarts, downtime; with --from/--to also the
    range's uncovered edges), records new gaps in the ledger, then fetches the missing
    trades and appends them with source=rest_backfill. Idempotent: a second run adds
    nothing. A running capture back-fills its own gaps (and holds the data directory's
    lock); this command is for a stopped one. Exit 0 when every gap worked on ended
    BACKFILLED, 3 when one is UNRESOLVED.
    """
    from buff_dataplane.feeds.rest_common import RestPolicy
    from buff_dataplane.feeds.rest_registry import history_for
    from buff_dataplane.pipeline.backfill import BackfillConfig, backfill_log

    validate_venue(venue)
    range_ms = _range(start, end)
    syms = _symbols(symbols)
    config = BackfillConfig(max_attempts=max_attempts)

    async def run(log: Any) -> Any:
        policy = RestPolicy(max_attempts=request_attempts)
        async with history_for(venue, rest_endpoint, policy) as history:
            return await backfill_log(
                log,
                history,
                symbols=syms,
                now_ms=wall_ms,
                config=config,
                range_ms=range_ms,
                retry_unresolved=retry_unresolved,
                progress=lambda g: err(f"gap {g.gap_id} {g.stream_id}: worked"),
                executor=executor,
                workers=workers,
                address=address,
            )

    with open_data_log(data, readonly=False, state_dir=state_dir) as log:
        report = asyncio.run(run(log))
    summary = report.to_dict()
    if as_json:
        print_json(summary)
    else:
        for g in summary["gaps"]:
            print(
                f"{g['gap_id']} {g['status']:<10} {g['kind']:<9} {g['stream_id']} "
                f"appended={g['appended']} attempts={g['attempts']}  {g['reason']}"
            )
        print(
            f"found {summary['found']} new gap(s); worked {summary['worked']}; appended "
            f"{summary['appended']} trade(s) in {summary['requests']} request(s); "
            f"conflicts {len(summary['conflicts'])}"
        )
    unresolved = any(g["status"] == "UNRESOLVED" for g in summary["gaps"])
    return EXIT_INCOMPLETE if unresolved or summary["conflicts"] else EXIT_OK
