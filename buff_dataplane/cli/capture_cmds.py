"""Commands for live data: capture, sim, status."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from buff_dataplane.cli import app
from buff_dataplane.cli.common import (
    DataOpt,
    JsonOpt,
    StateOpt,
    err,
    no_state_for_local,
    open_data_log,
    print_json,
)
from buff_dataplane.core.errors import EXIT_OK, ValidationError
from buff_dataplane.core.ids import StreamId


def _csv(value: str, what: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise ValidationError(f"--{what} is empty")
    return items


@app.command("capture")
def capture_cmd(
    venue: Annotated[
        list[str] | None,
        typer.Option(
            help="Venue to record; repeat for several, each with its own --symbols "
            "(binance-usdm, binance-spot, ...)."
        ),
    ] = None,
    symbols: Annotated[
        list[str] | None,
        typer.Option(
            help="Comma-separated symbols of the --venue at the same position, e.g. "
            "BTC-USDT-PERP (spot: BTC-USDT)."
        ),
    ] = None,
    channels: Annotated[
        str, typer.Option(help="Comma-separated channels: trade, book_ticker, mark_price.")
    ] = "trade",
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="TOML file listing [[venue]] tables (name, symbols, channels, endpoint, "
            "rest_endpoint) instead of --venue/--symbols.",
        ),
    ] = None,
    data: DataOpt = "./data",
    state_dir: StateOpt = None,
    endpoint: Annotated[
        str | None,
        typer.Option(help="WebSocket base URL (one venue only; default: the venue's)."),
    ] = None,
    rest_endpoint: Annotated[
        str | None,
        typer.Option(
            help="REST base URL (one venue only): checks the symbols exist and back-fills "
            "gaps (default: the venue's, when --endpoint is not given)."
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
        int, typer.Option(help="Bounded queue between socket and log (per venue).")
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

    Several venues in one process: repeat --venue with its --symbols, or list them in a
    --config file; each venue has its own connections, queue, gap worker and status file.
    On a signal every venue flushes, seals its segments and the process exits 0; a restart
    resumes the same streams with ingest_seq continuing. Connection events are written to
    the `control` channel; refused frames are quarantined.
    """
    from buff_dataplane.pipeline.backfill import BackfillConfig
    from buff_dataplane.pipeline.capture import CaptureConfig

    plans = _venue_plans(venue, symbols, channels, config_file, endpoint, rest_endpoint)
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
    rests = [_rest_of(p) for p in plans]
    with open_data_log(data, readonly=False, state_dir=state_dir) as log:
        for report in log.recovery:
            err(f"recovered: {report.describe()}")
        captures = [_capture_of(log, p, config) for p in plans]
        server = _metrics(captures, metrics_port) if metrics_port else None
        started = time.monotonic()
        try:
            all_stats = asyncio.run(
                _run(captures, duration, [r if backfill else None for r in rests])
            )
        finally:
            if server is not None:
                server.shutdown()
    venues = [
        {
            "venue": c.venue,
            "messages": stats.messages,
            "duplicates": stats.duplicates,
            "conflicts": stats.conflicts,
            "quarantined": dict(sorted(stats.quarantined.items())),
            "reconnects": stats.reconnects,
            "overflows": stats.overflows,
            "stale_frames": stats.stale_frames,
            "gaps": dict(sorted(c.gap_stats.items())),
            "backfill": "on" if backfill and rest else "off",
        }
        for c, stats, rest in zip(captures, all_stats, rests, strict=True)
    ]
    summary = {"seconds": round(time.monotonic() - started, 1), **_totals(venues)}
    if as_json:
        print_json({**summary, "venues": venues})
    else:
        print(" ".join(f"{k}={v}" for k, v in summary.items()))
        if len(venues) > 1:
            for v in venues:
                print("  " + " ".join(f"{k}={val}" for k, val in v.items()))
    return EXIT_OK


def _totals(venues: list[dict[str, Any]]) -> dict[str, Any]:
    """The process's counts over every venue (for one venue: that venue's)."""
    out: dict[str, Any] = {}
    for key in ("messages", "duplicates", "conflicts", "reconnects", "overflows"):
        out[key] = sum(v[key] for v in venues)
    out["stale_frames"] = sum(v["stale_frames"] for v in venues)
    for key in ("quarantined", "gaps"):
        merged: dict[str, int] = {}
        for v in venues:
            for k, n in v[key].items():
                merged[k] = merged.get(k, 0) + n
        out[key] = dict(sorted(merged.items()))
    out["backfill"] = ",".join(sorted({v["backfill"] for v in venues}))
    return out


def _venue_plans(
    venues: list[str] | None,
    symbols: list[str] | None,
    channels: str,
    config_file: Path | None,
    endpoint: str | None,
    rest_endpoint: str | None,
) -> list[Any]:
    """The venues to record, from --config or from aligned --venue/--symbols options."""
    from buff_dataplane.pipeline.capture_set import VenuePlan, check_distinct, plans_from_toml

    if config_file is not None:
        if venues or symbols or endpoint or rest_endpoint:
            raise ValidationError(
                "--config lists the venues: give no --venue, --symbols or endpoints with it"
            )
        return plans_from_toml(config_file)
    if not venues:
        raise ValidationError("give --venue with --symbols (repeat both for several), or --config")
    if not symbols or len(symbols) != len(venues):
        raise ValidationError(
            f"{len(venues)} --venue but {len(symbols or [])} --symbols: "
            "give one --symbols per --venue, in the same order"
        )
    if len(venues) > 1 and (endpoint or rest_endpoint):
        raise ValidationError(
            "--endpoint/--rest-endpoint name one venue's servers: with several venues, "
            "give endpoints per venue in a --config file"
        )
    chans = tuple(_csv(channels, "channels"))
    return check_distinct(
        [
            VenuePlan(v, tuple(_csv(s, "symbols")), chans, endpoint, rest_endpoint)
            for v, s in zip(venues, symbols, strict=True)
        ]
    )


def _rest_of(plan: Any) -> str | None:
    """The REST endpoint that back-fills ``plan``'s gaps; None: gaps are recorded only.

    An explicit endpoint also checks the symbols are listed as trading; without one the
    venue's own is used, unless a custom WebSocket endpoint was given alone.
    """
    from buff_dataplane.feeds.rest_registry import default_rest_endpoint, rest_venues

    if plan.rest_endpoint is not None:
        _check_symbols(plan.rest_endpoint, plan.venue, list(plan.symbols))
        return str(plan.rest_endpoint)
    if plan.endpoint is None and plan.venue in rest_venues():
        return default_rest_endpoint(plan.venue)
    return None


def _capture_of(log: Any, plan: Any, config: Any) -> Any:
    from buff_dataplane.feeds.ws_registry import ws_adapter_for
    from buff_dataplane.pipeline.capture import Capture

    return Capture(
        log,
        venue=plan.venue,
        symbols=list(plan.symbols),
        channels=list(plan.channels),
        endpoint=plan.endpoint or ws_adapter_for(plan.venue).default_endpoint,
        config=config,
    )


async def _run(captures: list[Any], duration: float | None, rests: list[str | None]) -> Any:
    """Run the captures together, each with its venue's REST client for back-fill."""
    from buff_dataplane.feeds.rest_registry import history_for
    from buff_dataplane.pipeline.capture_set import run_captures

    async with contextlib.AsyncExitStack() as stack:
        for capture, rest in zip(captures, rests, strict=True):
            if rest is not None:
                capture.history = await stack.enter_async_context(history_for(capture.venue, rest))
        return await run_captures(captures, duration, handle_signals=True)


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
        str,
        typer.Option(
            help="Venue protocol to speak: binance-usdm, binance-spot, bybit-linear, "
            "okx-swap, coinbase or kraken (--symbols in the venue's own names)."
        ),
    ] = "binance-usdm",
    seed: Annotated[int, typer.Option(help="Seed of the trade tape.")] = 1,
    rate: Annotated[float, typer.Option(min=0.1, help="Mean trades per second per symbol.")] = 20.0,
    symbols: Annotated[
        str | None,
        typer.Option(
            help="Venue symbols, comma-separated, in the venue's own names (default: the "
            "venue's BTC market, e.g. BTCUSDT, BTC-USDT-SWAP, BTC/USD)."
        ),
    ] = None,
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
        symbols=tuple(_csv(symbols, "symbols")) if symbols is not None else _sim_default(venue),
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


# The market each simulator dialect plays when no --symbols is given.
_SIM_DEFAULT = {
    "binance-spot": "BTC-USDT",
    "binance-usdm": "BTC-USDT-PERP",
    "bybit-linear": "BTC-USDT-PERP",
    "coinbase": "BTC-USD",
    "kraken": "BTC-USD",
    "okx-swap": "BTC-USDT-PERP",
}


def _sim_default(venue: str) -> tuple[str, ...]:
    """The venue's BTC market in its own name (the parser's symbol table maps it)."""
    from buff_dataplane.feeds.registry import parser_for

    canonical = _SIM_DEFAULT.get(venue)
    if canonical is None:  # an unknown venue: the simulator config refuses it by name
        return ("BTCUSDT",)
    return (parser_for(venue).to_venue(canonical),)


@app.command("status")
def status_cmd(
    data: DataOpt = "./data", state_dir: StateOpt = None, as_json: JsonOpt = False
) -> int:
    """Show what a running capture publishes, per venue: connections, queue, streams and
    their health (--json: {"captures": [...]}, sorted by venue). A capture into S3 keeps
    its status in its --state-dir."""
    from buff_dataplane.pipeline.capture import status_paths
    from buff_dataplane.storage.layout import resolve_root, resolve_state_dir
    from buff_dataplane.storage.objstore import LocalStore, store_for

    store = store_for(data)
    no_state_for_local(store, state_dir)
    if isinstance(store, LocalStore):
        paths = status_paths(resolve_root(data, create=False))
    elif state_dir is None:
        raise ValidationError(f"--data {data}: the capture status is in its --state-dir; give it")
    else:
        paths = status_paths(resolve_state_dir(state_dir, store.url(), create=False))
    if not paths:
        raise ValidationError(f"no capture status in {data} (is a capture running?)")
    now = time.time_ns() // 1_000_000
    statuses = []
    for path in paths:
        status = json.loads(path.read_text())
        status["status_age_ms"] = now - status["updated_ms"]
        statuses.append(status)
    if as_json:
        print_json({"captures": statuses})
        return EXIT_OK
    out = sys.stdout
    for status in statuses:
        age_ms = status["status_age_ms"]
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
