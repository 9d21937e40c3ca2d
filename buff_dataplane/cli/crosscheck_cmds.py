"""The crosscheck command: our canonical bars against the venue's klines."""

from __future__ import annotations

from typing import Annotated

import typer

from buff_dataplane.cli import app
from buff_dataplane.cli.common import DataOpt, JsonOpt, data_store, print_json
from buff_dataplane.core.errors import EXIT_OK, EXIT_VERIFY_FAILED
from buff_dataplane.core.times import format_utc_ms, parse_utc_ms


@app.command("crosscheck")
def crosscheck_cmd(
    venue: Annotated[str, typer.Option(help="Venue id, e.g. binance-usdm.")],
    symbol: Annotated[str, typer.Option(help="Canonical symbol, e.g. BTC-USDT-PERP.")],
    timeframe: Annotated[str, typer.Option(help="Timeframe the venue has klines for, e.g. 1m.")],
    start: Annotated[str, typer.Option("--from", help="First bar open time, UTC (ISO or ms).")],
    end: Annotated[str, typer.Option("--to", help="End of range (exclusive), UTC.")],
    data: DataOpt = "./data",
    rest_endpoint: Annotated[
        str | None,
        typer.Option(help="The venue's REST base URL (default: its real one)."),
    ] = None,
    max_attempts: Annotated[
        int, typer.Option(min=1, max=50, help="REST attempts per request before giving up.")
    ] = 5,
    as_json: JsonOpt = False,
) -> int:
    """Compare stored canonical bars with the venue's own klines, bar by bar.

    Reads the latest revision of the bars; fetches the venue's klines for [--from, --to);
    compares open, high, low, close, volumes, trade count and taker-buy volumes (decimals
    by exact value). Exit 0 when every bar agrees, 1 when any differs or is missing on
    one side, 2 for bad input or no stored bars, 4 when the venue cannot be reached or
    does not answer like its API.
    """
    from buff_dataplane.feeds.rest_common import RestPolicy
    from buff_dataplane.pipeline.crosscheck import run_crosscheck
    from buff_dataplane.storage.bars_store import ArtifactKey

    key = ArtifactKey(venue, symbol, timeframe)
    lo = parse_utc_ms(start, what="--from")
    hi = parse_utc_ms(end, what="--to")
    report = run_crosscheck(
        data_store(data),
        key,
        lo,
        hi,
        endpoint=rest_endpoint,
        policy=RestPolicy(max_attempts=max_attempts),
    )
    if as_json:
        print_json(report.to_dict())
        return EXIT_OK if report.ok else EXIT_VERIFY_FAILED
    c = report.comparison
    print(
        f"crosscheck {key} rev {report.revision} against {report.endpoint} "
        f"[{format_utc_ms(lo)}, {format_utc_ms(hi)})"
    )
    print(
        f"bars compared {c.compared}, agreeing {c.agreeing}, differing {c.differing}, "
        f"ours-only {c.ours_only}, venue-only {c.venue_only}"
    )
    for d in c.diffs:
        when = format_utc_ms(d.open_time_ms)
        status = "" if d.status in (None, "COMPLETE", "EMPTY") else f" [{d.status}]"
        if d.missing == "venue":
            print(f"  MISSING {when}{status}: the venue has no kline (ours: {d.status})")
        elif d.missing == "ours":
            print(f"  MISSING {when}: we have no bar (the venue has a kline)")
        else:
            fields = "; ".join(f"{f.field} ours={f.ours} venue={f.venue}" for f in d.fields)
            print(f"  DIFFER {when}{status}: {fields}")
    verdict = "all bars agree" if report.ok else f"{len(c.diffs)} bars disagree"
    print(f"crosscheck: {verdict}")
    return EXIT_OK if report.ok else EXIT_VERIFY_FAILED
