"""okx-swap back-fill (paging ``id``) against the simulator's OKX dialect: a hole in a log
of ``trades`` prints (several matches each, core.venues ``covered``) is filled from
``history-trades``, one item per match, walked by the ``after`` cursor page by page."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from decimal import Decimal

import httpx

from buff_dataplane.core.config import LogConfig
from buff_dataplane.feeds.okx_swap.parse import parse
from buff_dataplane.feeds.okx_swap.rest import OkxSwapRest
from buff_dataplane.feeds.rest_common import RestPolicy
from buff_dataplane.pipeline.backfill import backfill_log
from buff_dataplane.sim import okx_swap as render
from buff_dataplane.sim.server import ExchangeSim, SimConfig
from buff_dataplane.storage.gap_ledger import GapLedger
from buff_dataplane.storage.log import open_log
from buff_dataplane.storage.reader import to_table

INST = "BTC-USDT-SWAP"
SID = "okx-swap/trade/BTC-USDT-PERP"
FAST = RestPolicy(max_attempts=3, base_backoff_s=0.01, max_backoff_s=0.05)


def _now():
    return time.time_ns() // 1_000_000


def _fill_hole(tmp_path):
    """A log holding tape prints 100..199 and 360..499 as WebSocket ``trades`` pushes: a
    hole of 160 prints (some 350 matches, four pages), ten minutes old. Back-fill it: the
    last page reaches well past the hole, into logged prints of several matches."""
    cfg = SimConfig(
        venue="okx-swap", symbols=(INST,), start_ms=_now() - 600_000, duration_s=300, rate=20
    )
    data = tmp_path / "d"

    async def go():
        async with ExchangeSim(cfg) as sim, httpx.AsyncClient() as client:
            tape = sim.tapes[INST]
            kept = tape[100:200] + tape[360:500]
            with open_log(data, LogConfig(fsync=False)) as log:
                log.writer(SID).append_batch(
                    [render.trades_push(t).encode() for t in kept],
                    [t.ts_ms for t in kept],
                    [t.ts_ms + 20 for t in kept],
                    source="ws",
                )
            history = OkxSwapRest(client, sim.rest_url, FAST)
            with open_log(data, LogConfig(fsync=False)) as log:
                report = await backfill_log(log, history, now_ms=_now)
            return tape, report

    tape, report = asyncio.run(asyncio.wait_for(go(), 30))
    with open_log(data, readonly=True) as log:
        table = to_table(log, [SID]).to_pylist()
    return tape, report, table, list(GapLedger(data).rows(stream_id=SID))


def test_a_hole_of_several_pages_is_filled_match_by_match_through_the_after_cursor(tmp_path):
    tape, _, table, gaps = _fill_hole(tmp_path)
    [hole] = [g for g in gaps if g.kind == "trade_id"]
    missing = range(tape[200].first_id, tape[359].last_id + 1)
    assert (hole.id_from, hole.id_to) == (missing[0], missing[-1])
    assert hole.status == "BACKFILLED" and hole.filled == len(missing) > 300
    assert len(missing) % 100 < 50  # the last page overshoots by 50 matches or more
    rest = [r for r in table if r["source"] == "rest_backfill"]
    ids = Counter(parse(r["payload_raw"]).trades[0].trade_id for r in rest)
    assert set(ids) == set(missing) and max(ids.values()) == 1
    assert {parse(r["payload_raw"]).kind for r in rest} == {"history_trade"}
    origins = sorted({r["origin"] for r in rest})
    assert len(origins) == -(-len(missing) // 100) >= 4
    assert origins[0] == (
        f"rest:/api/v5/market/history-trades?instId={INST}&type=1"
        f"&after={missing[0] + 100}&limit=100"
    )
    # Each print's matches sum to the print: the hole's volume is the tape's.
    sizes = sum(parse(r["payload_raw"]).trades[0].size for r in rest)
    assert sizes == sum(Decimal(t.qty) for t in tape[200:360])


def test_regression_rest_matches_overlapping_logged_prints_are_duplicates_not_conflicts(
    tmp_path,
):
    _, report, _, gaps = _fill_hole(tmp_path)
    assert [g for g in gaps if g.kind == "conflict"] == []
    assert report.to_dict()["conflicts"] == []
