"""Coinbase back-fill against the simulator's Coinbase REST: id holes and the tail of a
range fill by trade id over several pages of the ``after`` cursor; the head of a range
(no trade id before the first logged one) cannot be found by time and is UNRESOLVED,
saying why."""

from __future__ import annotations

import asyncio
import time

import httpx

from buff_dataplane.core.config import LogConfig
from buff_dataplane.feeds.coinbase.parse import parse
from buff_dataplane.feeds.coinbase.rest import CoinbaseRest
from buff_dataplane.feeds.rest_common import RestPolicy
from buff_dataplane.pipeline.backfill import backfill_log
from buff_dataplane.sim.coinbase import match_message
from buff_dataplane.sim.server import ExchangeSim, SimConfig
from buff_dataplane.storage.gap_ledger import GapLedger
from buff_dataplane.storage.log import open_log
from buff_dataplane.storage.reader import to_table

T0 = 1_723_161_600_000
SID = "coinbase/trade/BTC-USD"
FAST = RestPolicy(max_attempts=3, base_backoff_s=0.01, max_backoff_s=0.05)


def _now():
    return time.time_ns() // 1_000_000


def test_id_holes_fill_by_cursor_and_a_head_without_ids_is_unresolved(tmp_path):
    cfg = SimConfig(venue="coinbase", symbols=("BTC-USD",), start_ms=T0, duration_s=600, rate=8)
    data = tmp_path / "d"

    async def go():
        async with ExchangeSim(cfg) as sim, httpx.AsyncClient() as client:
            tape = sim.tapes["BTC-USD"]
            kept = tape[100:200] + tape[2700:2800]  # a hole of 2,500 ids: three pages
            with open_log(data, LogConfig(fsync=False)) as log:
                log.writer(SID).append_batch(
                    [match_message(t) for t in kept],
                    [t.ts_ms for t in kept],
                    [t.ts_ms + 20 for t in kept],
                    source="ws",
                )
            history = CoinbaseRest(client, sim.rest_url, FAST)
            span = (T0, tape[-1].ts_ms + 1)
            with open_log(data, LogConfig(fsync=False)) as log:
                report = await backfill_log(log, history, now_ms=_now, range_ms=span)
            return tape, report

    tape, report = asyncio.run(asyncio.wait_for(go(), 30))
    rows = {g.kind + ("-head" if g.id_from is None else ""): g for g in GapLedger(data).rows()}
    hole, head, tail = rows["trade_id"], rows["edge-head"], rows["edge"]
    assert (hole.status, hole.id_from, hole.id_to, hole.filled) == (
        "BACKFILLED", tape[200].agg_id, tape[2699].agg_id, 2_500
    )  # fmt: skip
    assert tail.status == "BACKFILLED" and tail.filled == len(tape) - 2_800
    assert (head.status, head.id_to, head.filled) == ("UNRESOLVED", tape[99].agg_id, 0)
    assert head.reason == (
        "unfillable: coinbase REST trades page by trade id only (cursor `after`), not by "
        "time: a gap without trade ids cannot be located in the venue's history"
    )
    with open_log(data, readonly=True) as log:
        table = to_table(log, [SID]).to_pylist()
    ids = sorted(parse(r["payload_raw"]).trades[0].trade_id for r in table)
    assert ids == [t.agg_id for t in tape[100:]]  # everything after the first logged trade
    origins = sorted({r["origin"] for r in table if r["source"] == "rest_backfill"})
    first = tape[200].agg_id
    assert origins[:3] == [
        f"rest:/products/BTC-USD/trades?after={first + n * 1000}&limit=1000" for n in (1, 2, 3)
    ]
    # the hole in 3 pages; the tail in pages of 1,000 and an empty one that shows the end
    # of the venue's history; the head counted once, refused before anything was sent
    tail_pages = (len(tape) - 2_800) // 1_000 + 2
    assert report.to_dict()["requests"] == 3 + tail_pages + 1
