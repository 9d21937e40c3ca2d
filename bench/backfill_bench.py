"""Back-fill: trades per second from the simulator's REST history into the log.

A log holds the first and the last trade of a simulated tape; everything between is one
id gap. ``buff backfill``'s library call repairs it, paging aggTrades 1000 at a time.
Two runs: with the venue's weight limit (2,400 per minute, 20 per page: at most 120
pages a minute, and the client waits at 80 % of it), which is what a real back-fill
gets; and with the limit lifted, which shows what the machinery itself costs.
"""

from __future__ import annotations

import asyncio
import shutil
import time

import httpx

from bench.common import WORK, write_result
from buff_dataplane.core.config import LogConfig
from buff_dataplane.core.ids import StreamId
from buff_dataplane.feeds.binance_usdm.rest import BinanceUsdmRest
from buff_dataplane.pipeline.backfill import backfill_log
from buff_dataplane.sim.binance_usdm import agg_trade_message
from buff_dataplane.sim.server import ExchangeSim, SimConfig
from buff_dataplane.storage.gap_ledger import GapLedger
from buff_dataplane.storage.log import open_log

SID = StreamId.parse("binance-usdm/trade/BTC-USDT-PERP")


async def _run(trades: int, weight_limit: int) -> dict[str, object]:
    rate = 200.0
    now = time.time_ns() // 1_000_000
    duration_s = trades / rate * 1.05 + 5
    cfg = SimConfig(
        rate=rate,
        duration_s=duration_s,
        start_ms=now - int(duration_s * 1000) - 5_000,
        weight_limit_1m=weight_limit,
    )
    data = WORK / f"backfill-{weight_limit}"
    shutil.rmtree(data, ignore_errors=True)
    async with ExchangeSim(cfg) as sim, httpx.AsyncClient() as client:
        tape = sim.tapes["BTCUSDT"][: trades + 2]
        with open_log(data, LogConfig(fsync=False)) as log:
            w = log.writer(SID)
            for t in (tape[0], tape[-1]):
                w.append(agg_trade_message(t), t.ts_ms, now)
        history = BinanceUsdmRest(client, sim.rest_url, weight_limit_1m=weight_limit)
        started = time.perf_counter()
        with open_log(data, LogConfig(fsync=False)) as log:
            report = await backfill_log(log, history, now_ms=sim.clock)
        seconds = time.perf_counter() - started
        [gap] = GapLedger(data).rows()
        assert gap.status == "BACKFILLED" and gap.filled == trades, gap
        return {
            "trades": trades,
            "seconds": round(seconds, 1),
            "trades_per_s": round(trades / seconds),
            "requests": sim.rest_requests,
            "weight_limit_1m": weight_limit,
            "proactive_waits": history.stats.waits,
            "retries": history.stats.retries,
            "appended": report.to_dict()["appended"],
        }


def main() -> None:
    result = {
        "venue_limited": asyncio.run(_run(150_000, 2_400)),
        "unlimited": asyncio.run(_run(150_000, 10**9)),
        "note": "venue_limited is bounded by 2,400 weight/min at 20 per 1,000-trade page",
    }
    path = write_result("backfill", result)
    print(f"backfill bench -> {path}")
    print(result)


if __name__ == "__main__":
    main()
