"""Commands for live data: capture, sim, status."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from typing import Annotated, Any

import typer

from buff_dataplane.cli import app
from buff_dataplane.cli.common import DataOpt, JsonOpt, err, print_json
from buff_dataplane.core.errors import EXIT_OK, ValidationError
from buff_dataplane.core.ids import StreamId


def _csv(value: str, what: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise ValidationError(f"--{what} is empty")
    return items


@app.command("capture")
def capture_cmd(
    venue: Annotated[str, typer.Option(help="Venue to record: binance-usdm or binance-spot.")],
    symbols: Annotated[
        str, typer.Option(help="Comma-separated symbols, e.g. BTC-USDT-PERP (spot: BTC-USDT).")
    ],
    channels: Annotated[
        str, typer.Option(help="Comma-separated channels: trade, book_ticker, mark_price.")
    ] = "trade",
    data: DataOpt = "./data",
    endpoint: Annotated[
        str | None, typer.Option(help="WebSocket base URL (default: the venue's).")
    ] = None,
    rest_endpoint: Annotated[
        str | None,
        typer.Option(
            help="REST base URL: checks the symbols exist and back-fills gaps "
            "(default: the venue's, when --endpoint is not given)."
        ),
    ] = None,
    backfill: Annotated[
        bool, typer.Option(help="Back-fill gaps from REST in the background while recording.")
    ] = True,
    backfill_attempts: Annotated[
        int, typer.Option(min=1, max=100, help="Attempts per gap before it is UNRESOLVED.")
    ] = 3,
    duration: Annotated[
        float | None, typer.Option(min=0.1, help="Stop after this many seconds (default: run).")
    ] = None,
    silence_timeout: Annotated[
        int, typer.Option(help="Seconds without any message before a connection is replaced.")
    ] = 30,
    queue_size: Annotated[
        int, typer.Option(help="Bounded queue between socket and log.")
    ] = 100_000,
    expected_silence: Annotated[
        str | None,
        typer.Option(help="Comma-separated stream ids allowed to be quiet without alarm."),
    ] = None,
    connect_grace: Annotated[
        int, typer.Option(help="Seconds to wait for the first connection before giving up.")
    ] = 15,
    metrics_port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Serve Prometheus metrics on 127.0.0.1.")
    ] = None,
    as_json: JsonOpt = False,
) -> int:
    """Record live WebSocket feeds into the raw log until SIGINT/SIGTERM or --duration.

    On a signal the capture flushes, seals every segment and exits 0; a restart resumes
    the same streams with ingest_seq continuing. Connection events are written to the
    `control` channel; refused frames are quarantined.
    """
    from buff_dataplane.feeds.rest_registry import default_rest_endpoint, rest_venues
    from buff_dataplane.feeds.ws_registry import ws_adapter_for
    from buff_dataplane.pipeline.backfill import BackfillConfig
    from buff_dataplane.pipeline.capture import Capture, CaptureConfig
    from buff_dataplane.storage.log import open_log

    adapter = ws_adapter_for(venue)
    quiet = (
        tuple(sorted(str(StreamId.parse(x)) for x in _csv(expected_silence, "expected-silence")))
        if expected_silence is not None
        else ()
    )
    config = CaptureConfig(
        silence_timeout_s=silence_timeout,
        queue_size=queue_size,
        connect_grace_s=connect_grace,
        expected_silence=quiet,
        backfill=BackfillConfig(max_attempts=backfill_attempts),
    )
    if rest_endpoint is not None:
        _check_symbols(rest_endpoint, venue, _csv(symbols, "symbols"))
    elif endpoint is None and venue in rest_venues():
        rest_endpoint = default_rest_endpoint(venue)
    # Without a REST endpoint (a custom --endpoint alone) gaps are recorded, not filled.
    syms = _csv(symbols, "symbols")
    chans = _csv(channels, "channels")
    with open_log(data) as log:
        for report in log.recovery:
            err(f"recovered: {report.describe()}")
        capture = Capture(
            log,
            venue=venue,
            symbols=syms,
            channels=chans,
            endpoint=endpoint or adapter.default_endpoint,
            config=config,
        )
        server = _metrics(capture, metrics_port) if metrics_port else None
        started = time.monotonic()
        try:
            stats = asyncio.run(_run(capture, duration, rest_endpoint if backfill else None, venue))
        finally:
            if server is not None:
                server.shutdown()
    summary = {
        "seconds": round(time.monotonic() - started, 1),
        "messages": stats.messages,
        "duplicates": stats.duplicates,
        "conflicts": stats.conflicts,
        "quarantined": dict(stats.quarantined),
        "reconnects": stats.reconnects,
        "overflows": stats.overflows,
        "stale_frames": stats.stale_frames,
        "gaps": dict(sorted(capture.gap_stats.items())),
        "backfill": "on" if backfill and rest_endpoint else "off",
    }
    if as_json:
        print_json(summary)
    else:
        print(" ".join(f"{k}={v}" for k, v in summary.items()))
    return EXIT_OK


async def _run(capture: Any, duration: float | None, rest: str | None, venue: str) -> Any:
    """Run the capture, with a REST history client for back-fill when there is one."""
    from buff_dataplane.feeds.rest_registry import history_for

    if rest is None:
        return await capture.run(duration_s=duration, handle_signals=True)
    async with history_for(venue, rest) as history:
        capture.history = history
        return await capture.run(duration_s=duration, handle_signals=True)


def _check_symbols(rest: str, venue: str, symbols: list[str]) -> None:
    """Refuse symbols the venue does not list as trading (its REST client's symbols())."""
    from buff_dataplane.feeds.registry import parser_for
    from buff_dataplane.feeds.rest_common import RestPolicy
    from buff_dataplane.feeds.rest_registry import history_for

    async def trading() -> set[str]:
        async with history_for(venue, rest, RestPolicy(max_attempts=2)) as client:
            return set(await client.symbols())

    parser = parser_for(venue)
    listed = asyncio.run(trading())
    for sym in symbols:
        if parser.to_venue(sym) not in listed:
            raise ValidationError(
                f"{venue} does not list {sym} ({parser.to_venue(sym)}) as trading"
            )


def _metrics(capture: object, port: int) -> Any:
    from buff_dataplane.pipeline.metrics import serve_metrics

    return serve_metrics(capture, port)


@app.command("sim")
def sim_cmd(
    host: Annotated[str, typer.Option(help="Address to bind (loopback only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 8765,
    venue: Annotated[
        str, typer.Option(help="Venue protocol to speak: binance-usdm or binance-spot.")
    ] = "binance-usdm",
    seed: Annotated[int, typer.Option(help="Seed of the trade tape.")] = 1,
    rate: Annotated[float, typer.Option(min=0.1, help="Mean trades per second per symbol.")] = 20.0,
    symbols: Annotated[str, typer.Option(help="Venue symbols, comma-separated.")] = "BTCUSDT",
    faults: Annotated[str, typer.Option(help="Fault plan, e.g. 'close:1006@500,rest429:2'.")] = "",
    duration: Annotated[float | None, typer.Option(min=0.1, help="Stop after N seconds.")] = None,
    pace: Annotated[
        str, typer.Option(help="realtime (trades at their tape times) or max (benchmarks).")
    ] = "realtime",
) -> int:
    """Run the exchange simulator of a venue (WebSocket + REST on one port)."""
    from buff_dataplane.sim.server import ExchangeSim, SimConfig

    if not (host.startswith("127.") or host in ("localhost", "::1")):
        raise ValidationError(f"--host {host}: the simulator binds loopback addresses only")
    config = SimConfig(
        venue=venue,
        symbols=tuple(_csv(symbols, "symbols")),
        seed=seed,
        rate=rate,
        faults=faults,
        duration_s=duration if duration is not None else 3_600.0,
        pace=pace,
    )
    if pace not in ("realtime", "max"):
        raise ValidationError(f"--pace {pace!r}: expected realtime or max")

    async def serve() -> None:
        sim = ExchangeSim(config)
        await sim.start(host, port)
        print(json.dumps({"ws": sim.ws_url, "rest": sim.rest_url}), flush=True)
        try:
            await asyncio.sleep(duration if duration is not None else 10**9)
        finally:
            await sim.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return EXIT_OK


@app.command("status")
def status_cmd(data: DataOpt = "./data", as_json: JsonOpt = False) -> int:
    """Show what a running capture publishes: connections, queue, streams and their health."""
    from buff_dataplane.pipeline.capture import status_path
    from buff_dataplane.storage.layout import resolve_root

    path = status_path(resolve_root(data, create=False))
    if not path.exists():
        raise ValidationError(f"no capture status in {data} (is a capture running?)")
    status = json.loads(path.read_text())
    age_ms = time.time_ns() // 1_000_000 - status["updated_ms"]
    status["status_age_ms"] = age_ms
    if as_json:
        print_json(status)
        return EXIT_OK
    out = sys.stdout
    out.write(f"capture pid {status['pid']} {status['venue']} (status {age_ms} ms old)\n")
    for c in status["connections"]:
        out.write(
            f"  {c['name']}: {c['state']} gen {c['generation']} reconnects {c['reconnects']}\n"
        )
    q = status["queue"]
    out.write(
        f"  queue {q['size']}/{q['capacity']} overflows {q['overflows']}; "
        f"duplicates {status['duplicates']} conflicts {status['conflicts']}\n"
    )
    for sid, h in status["streams"].items():
        flag = "STALE" if h["stale"] else "ok"
        out.write(
            f"  {sid:<44} {h['events']:>9} events  age {h['last_message_age_ms']} ms  {flag}\n"
        )
    return EXIT_OK
