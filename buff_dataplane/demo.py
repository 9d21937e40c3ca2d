"""make demo: the main job end to end on the embedded default, with a readable summary.

The local exchange simulator plays a seeded two-symbol tape over real sockets; the
capture records it for about 30 s while the simulator drops the connection abnormally,
re-sends a burst of already-delivered trades after the reconnect, and silently skips a
stretch of trades; the capture back-fills its holes from the simulator's REST history as
it goes. Then the gap ledger is listed, the log verified, the two whole minutes up to
the end of the capture completed from REST, 1s and 1m bars built, every revision
re-derived and verified, the 1m bars cross-checked against the simulator's own klines,
and a tampered copy of the log caught. Nothing is left running.

The simulator's clock runs ahead of the wall clock so that the capture ends just before
a minute boundary of exchange time: the cross-check covers whole minutes at once.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from pathlib import Path

from buff_dataplane.cli import main as buff
from buff_dataplane.core.config import LogConfig
from buff_dataplane.core.times import format_utc_ms
from buff_dataplane.feeds.binance_usdm.rest import BinanceUsdmRest
from buff_dataplane.pipeline.capture import Capture, CaptureConfig, CaptureStats
from buff_dataplane.sim.background import SimThread
from buff_dataplane.sim.server import ExchangeSim, SimConfig, wall_ms
from buff_dataplane.storage.log import open_log

DEMO_DIR = Path("demo-data")
CAPTURE_S = 30.0
# Skip 40 trades on the socket after the 800th (REST still has them); drop the socket
# after 1500 trades and re-send 200 after the reconnect.
FAULTS = "close:1006@1500,resend:200,drop:40@800"


async def _capture(data: Path, sim: ExchangeSim) -> tuple[CaptureStats, dict[str, int]]:
    import httpx

    async with httpx.AsyncClient() as client:
        with open_log(data, LogConfig()) as log:
            capture = Capture(
                log,
                venue="binance-usdm",
                symbols=["BTC-USDT-PERP", "ETH-USDT-PERP"],
                channels=["trade", "mark_price"],
                endpoint=sim.ws_url,
                config=CaptureConfig(),
                clock_ms=wall_ms,
                history=BinanceUsdmRest(client, sim.rest_url),
            )
            stats = await capture.run(duration_s=CAPTURE_S)
    return stats, dict(capture.gap_stats)


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def _run(argv: list[str]) -> int:
    print(f"$ buff {' '.join(argv)}", flush=True)
    return buff(argv)


def main() -> int:
    started = time.monotonic()
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    data = DEMO_DIR / "data"
    # Exchange time ends the capture 3 s before a minute boundary; the tape has history.
    # The simulator runs ahead of the wall clock (never behind: trades would look late).
    wall = wall_ms()
    lead = int((CAPTURE_S + 3) * 1000)
    boundary = (wall + lead) // 60_000 * 60_000 + 60_000
    offset = boundary - lead - wall

    def clock() -> int:
        return wall_ms() + offset

    config = SimConfig(
        symbols=("BTCUSDT", "ETHUSDT"),
        seed=7,
        rate=60.0,
        start_ms=clock() - 150_000,
        duration_s=CAPTURE_S + 240,
        faults=FAULTS,
    )
    lo, hi = format_utc_ms(boundary - 120_000), format_utc_ms(boundary)
    with SimThread(config, clock) as sim:
        print(f"simulator on {sim.ws_url} (WebSocket) and {sim.rest_url} (REST)", flush=True)
        print(f"faults: {FAULTS}", flush=True)
        _step(f"1. buff capture: two symbols from the local simulator for {CAPTURE_S:g} s")
        stats, gaps = asyncio.run(_capture(data, sim))
        sent = sum(len(ids) for ids in sim.sent_ids.values())
        print(
            f"received {stats.messages} frames; reconnects {stats.reconnects}; "
            f"duplicates skipped {stats.duplicates}; quarantined "
            f"{sum(stats.quarantined.values())}; gaps found {gaps.get('found', 0)}, "
            f"back-filled {gaps.get('backfilled', 0)} ({gaps.get('backfilled_trades', 0)} trades)"
        )
        while clock() < boundary + 300:  # the last minute ends on the venue
            time.sleep(0.05)
        rest = ["--rest-endpoint", sim.rest_url]
        steps = [
            ("2. buff gaps: the ledger the capture wrote", ["gaps", "--data", str(data)]),
            ("3. buff verify-log", ["verify-log", "--data", str(data)]),
            (
                f"4. buff backfill: complete the two whole minutes {lo} .. {hi} from REST",
                ["backfill", "--data", str(data), *rest, "--from", lo, "--to", hi],
            ),
            (
                "5. buff canonicalize (1s and 1m bars)",
                [
                    "canonicalize",
                    "--data",
                    str(data),
                    "--timeframes",
                    "1s,1m",
                    "--from",
                    lo,
                    "--to",
                    hi,
                ],
            ),
            ("6. buff replay --verify", ["replay", "--verify", "--data", str(data)]),
        ]
        steps += [
            (
                f"7. buff crosscheck {sym}: our 1m bars against the simulator's klines",
                [
                    "crosscheck",
                    "--data",
                    str(data),
                    *rest,
                    "--venue",
                    "binance-usdm",
                    "--symbol",
                    sym,
                    "--timeframe",
                    "1m",
                    "--from",
                    lo,
                    "--to",
                    hi,
                ],
            )
            for sym in ("BTC-USDT-PERP", "ETH-USDT-PERP")
        ]
        for title, argv in steps:
            _step(title)
            if (code := _run(argv)) != 0:
                return code
    _step("8. tamper with a copy of the log: one flipped byte must be caught")
    copy = DEMO_DIR / "tampered"
    shutil.copytree(data, copy)
    segment = sorted((copy / "log").rglob("*.parquet"))[-1]
    segment.chmod(0o644)
    raw = bytearray(segment.read_bytes())
    raw[len(raw) // 2] ^= 1
    segment.write_bytes(bytes(raw))
    tamper = _run(["verify-log", "--data", str(copy)])
    print(f"exit code {tamper} (1 = verification failed, as it must)")
    _step("summary")
    print(f"trades sent by the simulator : {sent}")
    print(f"frames captured              : {stats.messages}")
    print(
        f"faults seen and handled      : {stats.reconnects} reconnect(s), "
        f"{stats.duplicates} re-sent duplicates skipped, "
        f"{sum(stats.quarantined.values())} frames quarantined"
    )
    print(
        f"gaps                         : {gaps.get('found', 0)} found while capturing, "
        f"{gaps.get('backfilled', 0)} back-filled from REST "
        f"({gaps.get('backfilled_trades', 0)} trades); the range's edges back-filled after"
    )
    print(
        "bars and replay              : 1s and 1m bars built; "
        "replay --verify matched every revision"
    )
    print("cross-check                  : every 1m bar equals the simulator's kline")
    print(f"tamper check                 : {'caught (exit 1)' if tamper == 1 else 'NOT CAUGHT'}")
    print(f"data                         : {data.resolve()}")
    print(f"took                         : {time.monotonic() - started:.1f}s")
    return 0 if tamper == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
