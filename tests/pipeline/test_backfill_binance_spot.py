"""Spot back-fill against the simulator's spot REST: spot keeps its whole history and has
no one-hour window, so a two-year-old hole is repaired where USD-M must give it up."""

from __future__ import annotations

import asyncio
import time

import httpx

from buff_dataplane.core.config import LogConfig
from buff_dataplane.feeds.binance_spot.parse import parse
from buff_dataplane.feeds.binance_spot.rest import BinanceSpotRest
from buff_dataplane.feeds.rest_common import RestPolicy
from buff_dataplane.pipeline.backfill import backfill_log
from buff_dataplane.sim.binance_spot import agg_trade_message
from buff_dataplane.sim.server import ExchangeSim, SimConfig
from buff_dataplane.storage.gap_ledger import GapLedger
from buff_dataplane.storage.log import open_log
from buff_dataplane.storage.reader import to_table

T0 = 1_723_161_600_000  # 2024-08-09T00:00Z: far past USD-M's 48 h of REST history
SID = "binance-spot/trade/BTC-USDT"
FAST = RestPolicy(max_attempts=3, base_backoff_s=0.01, max_backoff_s=0.05)


def _now():
    return time.time_ns() // 1_000_000


def test_an_old_id_hole_and_the_edges_of_a_range_are_filled_from_spot_history(tmp_path):
    cfg = SimConfig(venue="binance-spot", start_ms=T0, duration_s=2 * 3_600, rate=0.5)
    data = tmp_path / "d"

    async def go():
        async with ExchangeSim(cfg) as sim, httpx.AsyncClient() as client:
            tape = sim.tapes["BTCUSDT"]
            kept = tape[2000:2100] + tape[2160:2300]  # a hole of 60 ids; edges missing too
            with open_log(data, LogConfig(fsync=False)) as log:
                log.writer(SID).append_batch(
                    [agg_trade_message(t) for t in kept],
                    [t.ts_ms for t in kept],
                    [t.ts_ms + 20 for t in kept],
                    source="ws",
                )
            history = BinanceSpotRest(client, sim.rest_url, FAST)
            # The whole tape's span: more than an hour before the first logged trade.
            span = (T0, tape[-1].ts_ms + 1)
            with open_log(data, LogConfig(fsync=False)) as log:
                report = await backfill_log(log, history, now_ms=_now, range_ms=span)
            return tape, report, history

    tape, report, history = asyncio.run(asyncio.wait_for(go(), 30))
    rows = GapLedger(data).rows(stream_id=SID)
    assert {g.status for g in rows} == {"BACKFILLED"}
    hole = [g for g in rows if g.kind == "trade_id"]
    assert [(g.id_from, g.id_to, g.filled) for g in hole] == [
        (tape[2100].agg_id, tape[2159].agg_id, 60)
    ]
    with open_log(data, readonly=True) as log:
        table = to_table(log, [SID]).to_pylist()
    ids = sorted(parse(r["payload_raw"]).trades[0].trade_id for r in table)
    assert ids == [t.agg_id for t in tape]  # every trade of the two hours, once
    assert report.to_dict()["appended"] == len(tape) - 240
    # The head of the range (over an hour: more than USD-M's window) was asked for in one
    # time window, then by id; the requests are the rows' origins.
    windows = {
        r["origin"] for r in table if r["source"] == "rest_backfill" and "startTime=" in r["origin"]
    }
    [window] = windows
    query = dict(kv.split("=") for kv in window.split("?")[1].split("&"))
    assert window.startswith("rest:/api/v3/aggTrades?symbol=BTCUSDT&startTime=")
    assert int(query["endTime"]) - int(query["startTime"]) > 3_600_000
    assert tape[2000].ts_ms - T0 > 3_600_000
    assert history.stats.retries == 0 and report.to_dict()["requests"] <= 8
