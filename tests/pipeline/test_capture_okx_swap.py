"""OKX swaps, live, as a user runs it: ``buff capture --venue okx-swap`` against the
simulator's OKX dialect through a malformed frame, a skipped stretch of prints and an
abnormal close, with the automatic back-fill from ``history-trades`` (one match per item,
paged by the ``after`` cursor); then ``buff backfill`` over the whole minute,
``buff canonicalize`` and ``buff crosscheck`` against the dialect's candles.

OKX ``trades`` prints cover ``count`` matches ending at ``tradeId`` (core.venues
``covered``): the tape draws 1 to 7 matches per print, so continuity runs over covered
ids, a print of several matches is no gap, and a REST match inside a logged print is a
duplicate, not a conflict. The simulator runs in a thread with its clock ahead of the wall
clock, so the capture ends a second before a minute boundary of exchange time (as in
tests/pipeline/test_capture_binance_spot.py).
"""

from __future__ import annotations

import json
import time
from collections import Counter

from buff_dataplane.cli import main
from buff_dataplane.core.times import format_utc_ms
from buff_dataplane.feeds.okx_swap.parse import parse
from buff_dataplane.sim.background import SimThread
from buff_dataplane.sim.server import SimConfig
from buff_dataplane.storage.gap_ledger import GapLedger
from buff_dataplane.storage.log import open_log
from buff_dataplane.storage.quarantine import read_quarantine
from buff_dataplane.storage.reader import to_table
from buff_dataplane.storage.verify import verify_log

SYMBOL = "BTC-USDT-PERP"
INST = "BTC-USDT-SWAP"
CAPTURE_S = 5.0
# First connection: half a frame after print 10; 50 prints (over 100 matches: two REST
# pages) never sent after print 15; the socket dropped without a close frame after print
# 45 (95 tape prints, about 2.4 s in).
FAULTS = "malformed@10,drop:50@15,close:1006@45"


def _rows(data, channel):
    with open_log(data, readonly=True) as log:
        table = to_table(log, [f"okx-swap/{channel}/{SYMBOL}"])
    return table.to_pylist()


def test_okx_capture_repairs_its_holes_over_covered_ids_and_agrees_with_the_candles(
    tmp_path, capsys
):
    data = tmp_path / "d"
    wall = time.time_ns() // 1_000_000
    boundary = (wall + 7_000) // 60_000 * 60_000 + 60_000  # >= 7 s of exchange time ahead
    offset = boundary - int((CAPTURE_S + 1) * 1000) - wall
    clock = lambda: time.time_ns() // 1_000_000 + offset  # noqa: E731
    lo, hi = boundary - 60_000, boundary
    config = SimConfig(
        venue="okx-swap",
        symbols=(INST,),
        rate=40.0,
        duration_s=120,
        start_ms=lo - 15_000,
        faults=FAULTS,
    )
    with SimThread(config, clock) as sim:
        argv = ["capture", "--venue", "okx-swap", "--symbols", SYMBOL, "--data", str(data)]
        argv += ["--channels", "trade,book_ticker,mark_price", "--endpoint", sim.ws_url]
        argv += ["--rest-endpoint", sim.rest_url, "--duration", str(CAPTURE_S), "--json"]
        assert main(argv) == 0
        summary = json.loads(capsys.readouterr().out)
        while clock() < boundary + 300:  # the minute ends on the venue
            time.sleep(0.05)
        span = ["--from", format_utc_ms(lo), "--to", format_utc_ms(hi), "--data", str(data)]
        rest = ["--rest-endpoint", sim.rest_url]
        assert main(["backfill", "--venue", "okx-swap", *rest, *span]) == 0
        assert main(["canonicalize", "--venue", "okx-swap", "--timeframes", "1m", *span]) == 0
        capsys.readouterr()
        check = ["crosscheck", "--venue", "okx-swap", "--symbol", SYMBOL, "--timeframe", "1m"]
        assert main([*check, *span, *rest]) == 0
        report = capsys.readouterr().out
        tape = sim.tapes[INST]

    # The capture: one reconnect, two holes found (the skipped prints, the downtime), both
    # filled from REST while it ran, with no conflict.
    assert (summary["reconnects"], summary["quarantined"]) == (1, {"not_json": 1})
    assert summary["gaps"]["found"] == 2 and summary["gaps"]["backfilled"] == 2
    assert summary["gaps"].get("conflicts", 0) == 0 and summary["conflicts"] == 0
    [record] = list(read_quarantine(data / "quarantine"))
    assert record.origin == "ws:public#0:g1" and record.reason == "not_json"
    events = [json.loads(r["payload_raw"]) for r in _rows(data, "control")]
    kinds = [e["event"] for e in events]
    assert kinds.count("disconnected") == 1
    acks = [json.loads(e["ack"]) for e in events if e["event"] == "subscribed"]
    assert len(acks) == 6  # one ack per channel, on each of the two connections
    assert {a["arg"]["channel"] for a in acks} == {"trades", "tickers", "mark-price"}
    assert {a["id"] for a in acks} == {"1", "2"}  # the connection's generation
    [down] = [e for e in events if e["event"] == "disconnected"]
    assert down["code"] == 1006
    gaps = {g.kind: g for g in GapLedger(data).rows(stream_id=f"okx-swap/trade/{SYMBOL}")}
    assert "conflict" not in gaps
    skipped = gaps["trade_id"]
    assert skipped.status == "BACKFILLED" and skipped.id_to - skipped.id_from + 1 > 100
    assert skipped.filled == skipped.id_to - skipped.id_from + 1  # every match, once
    assert gaps["downtime"].status == "BACKFILLED" and gaps["downtime"].filled > 0

    # The log: every match of the minute exactly once, in a WS print or a REST item;
    # prints of several matches are there, and the hole came over several `after` pages.
    trades = _rows(data, "trade")
    covered: Counter[int] = Counter()
    for r in trades:
        for t in parse(r["payload_raw"]).trades:
            lo_id = t.first_trade_id if t.first_trade_id is not None else t.trade_id
            covered.update(range(lo_id, t.trade_id + 1))
    assert max(covered.values()) == 1
    want = {i for t in tape if lo <= t.ts_ms < hi for i in range(t.first_id, t.last_id + 1)}
    assert want <= set(covered) and len(want) > 3_000
    ws_prints = [parse(r["payload_raw"]).trades[0] for r in trades if r["source"] == "ws"]
    assert sum(t.first_trade_id != t.trade_id for t in ws_prints) > 20
    rest_rows = [r for r in trades if r["source"] == "rest_backfill"]
    assert {parse(r["payload_raw"]).kind for r in rest_rows} == {"history_trade"}
    hole = [
        r
        for r in rest_rows
        if skipped.id_from <= parse(r["payload_raw"]).trades[0].trade_id <= skipped.id_to
    ]
    origins = {r["origin"] for r in hole}
    assert len(origins) >= 2 and all("type=1&after=" in o for o in origins)
    books = _rows(data, "book_ticker")
    assert len(books) > 50 and {parse(r["payload_raw"]).kind for r in books} == {"tickers"}
    marks = _rows(data, "mark_price")
    assert marks and {parse(r["payload_raw"]).kind for r in marks} == {"mark_price"}
    assert verify_log(data).ok

    # The bar: the minute equals the venue's candle (open, high, low, close, volume).
    assert "bars compared 1, agreeing 1, differing 0" in report
    assert report.rstrip().endswith("crosscheck: all bars agree")
