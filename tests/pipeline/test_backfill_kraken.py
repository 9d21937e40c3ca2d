"""Kraken back-fill by time (paging ``time``): the REST history is walked by ``since``
from the gap's start, window after window, against the simulator's Kraken dialect."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx

from buff_dataplane.core.config import LogConfig
from buff_dataplane.feeds.kraken.parse import parse
from buff_dataplane.feeds.kraken.rest import KrakenRest
from buff_dataplane.feeds.rest_common import RestPolicy
from buff_dataplane.pipeline.backfill import backfill_log
from buff_dataplane.sim import kraken as render
from buff_dataplane.sim.server import ExchangeSim, SimConfig
from buff_dataplane.storage.gap_ledger import GapLedger
from buff_dataplane.storage.log import open_log
from buff_dataplane.storage.reader import to_table

T0 = 1_723_161_600_000  # 2024-08-09T00:00Z: Kraken serves its whole history
SID = "kraken/trade/BTC-USD"
FAST = RestPolicy(max_attempts=3, base_backoff_s=0.01, max_backoff_s=0.05)


def _now():
    return time.time_ns() // 1_000_000


def _fill_hole(tmp_path, faults=""):
    """A log holding tape trades 100..199 and 1700..1799: a hole of 1500 ids, more than a
    Trades page (1000), two years old. Back-fill it; return what happened."""
    cfg = SimConfig(
        venue="kraken", symbols=("BTC/USD",), start_ms=T0, duration_s=300, rate=20, faults=faults
    )
    data = tmp_path / "d"

    async def go():
        async with ExchangeSim(cfg) as sim, httpx.AsyncClient() as client:
            tape = sim.tapes["BTC/USD"]
            kept = tape[100:200] + tape[1700:1800]
            with open_log(data, LogConfig(fsync=False)) as log:
                log.writer(SID).append_batch(
                    [render.trade_message([t]).encode() for t in kept],
                    [t.ts_ms for t in kept],
                    [t.ts_ms + 20 for t in kept],
                    source="ws",
                )
            history = KrakenRest(client, sim.rest_url, FAST, min_interval_s=0)
            with open_log(data, LogConfig(fsync=False)) as log:
                report = await backfill_log(log, history, now_ms=_now)
            return tape, report, history, sim.rest_requests

    tape, report, history, requests = asyncio.run(asyncio.wait_for(go(), 30))
    with open_log(data, readonly=True) as log:
        table = to_table(log, [SID]).to_pylist()
    return tape, report, history, requests, table


def test_a_hole_wider_than_a_page_is_walked_by_since_and_filled(tmp_path):
    tape, report, history, requests, table = _fill_hole(tmp_path)
    [gap] = GapLedger(tmp_path / "d").rows(stream_id=SID)
    assert (gap.kind, gap.status) == ("trade_id", "BACKFILLED")
    assert (gap.id_from, gap.id_to) == (tape[200].agg_id, tape[1699].agg_id)
    ids = {t.trade_id for r in table for t in parse(r["payload_raw"]).trades}
    assert ids == {t.agg_id for t in tape[100:1800]}
    # Two windows: from the trade before the hole, then from the last millisecond of the
    # first (full) page; `since` in ns, one ns before the window's first millisecond.
    origins = sorted({r["origin"] for r in table if r["source"] == "rest_backfill"})
    assert len(origins) == 2 and requests == 3  # and /0/public/Time first
    first = f"rest:/0/public/Trades?pair=XBTUSD&since={tape[199].ts_ms * 10**6 - 1}&count=1000"
    assert first in origins
    rest = [parse(r["payload_raw"]) for r in table if r["source"] == "rest_backfill"]
    assert {p.kind for p in rest} == {"rest_trade"}
    assert history.stats.retries == 0 and report.to_dict()["requests"] == 2


def test_a_throttled_answer_inside_a_200_is_retried_and_the_hole_still_filled(tmp_path):
    _, _, history, requests, _ = _fill_hole(tmp_path, faults="rest429:2")
    [gap] = GapLedger(tmp_path / "d").rows(stream_id=SID)
    assert gap.status == "BACKFILLED"
    assert history.stats.retries == 2 and requests == 5


def test_time_paging_back_fill_appends_each_trade_once(tmp_path):
    # Regression: the index rebuilt from the log dropped what the same pass had appended,
    # and the time walk asks again for a full page's last millisecond.
    *_, table = _fill_hole(tmp_path)
    [gap] = GapLedger(tmp_path / "d").rows(stream_id=SID)
    assert gap.filled == 1500
    rows = Counter(
        parse(r["payload_raw"]).trades[0].trade_id for r in table if r["source"] == "rest_backfill"
    )
    assert max(rows.values()) == 1
