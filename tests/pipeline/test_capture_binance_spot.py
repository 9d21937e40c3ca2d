"""Binance spot, live, as a user runs it: ``buff capture`` against the simulator's spot
dialect through a malformed frame, a skipped stretch and an abnormal close, with the
automatic back-fill; then ``buff backfill`` over whole minutes, ``buff canonicalize`` and
``buff crosscheck`` against the simulator's spot klines.

The simulator runs in a thread with its clock ahead of the wall clock, so that the
capture ends a second before a minute boundary of exchange time: the two minutes before
it are whole a moment later, without waiting for them.
"""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from buff_dataplane.cli import main
from buff_dataplane.core.config import LogConfig
from buff_dataplane.core.errors import ValidationError
from buff_dataplane.core.times import format_utc_ms
from buff_dataplane.feeds.binance_spot.parse import parse
from buff_dataplane.pipeline.capture import Capture
from buff_dataplane.sim.background import SimThread
from buff_dataplane.sim.server import SimConfig
from buff_dataplane.storage.gap_ledger import GapLedger
from buff_dataplane.storage.log import open_log
from buff_dataplane.storage.quarantine import read_quarantine
from buff_dataplane.storage.reader import to_table
from buff_dataplane.storage.verify import verify_log

SYMBOL = "BTC-USDT"
CAPTURE_S = 4.0
# First connection: a half frame after trade 10, 15 trades never sent after trade 60 (REST
# has them), the socket dropped without a close frame after trade 120 (about 2 s in).
FAULTS = "malformed@10,drop:15@60,close:1006@120"


def _rows(data, channel):
    with open_log(data, readonly=True) as log:
        table = to_table(log, [f"binance-spot/{channel}/{SYMBOL}"])
    return table.to_pylist()


def test_spot_capture_repairs_its_holes_and_its_bars_agree_with_the_venue(tmp_path, capsys):
    data = tmp_path / "d"
    wall = time.time_ns() // 1_000_000
    boundary = (wall + 6_000) // 60_000 * 60_000 + 60_000  # >= 6 s of exchange time ahead
    offset = boundary - int((CAPTURE_S + 1) * 1000) - wall
    clock = lambda: time.time_ns() // 1_000_000 + offset  # noqa: E731
    lo, hi = boundary - 120_000, boundary
    config = SimConfig(
        venue="binance-spot", rate=60.0, duration_s=300, start_ms=lo - 15_000, faults=FAULTS
    )
    with SimThread(config, clock) as sim:
        argv = ["capture", "--venue", "binance-spot", "--symbols", SYMBOL, "--data", str(data)]
        argv += ["--channels", "trade,book_ticker", "--endpoint", sim.ws_url]
        argv += ["--rest-endpoint", sim.rest_url, "--duration", str(CAPTURE_S), "--json"]
        assert main(argv) == 0
        summary = json.loads(capsys.readouterr().out)
        while clock() < boundary + 300:  # the second minute ends on the venue
            time.sleep(0.05)
        span = ["--from", format_utc_ms(lo), "--to", format_utc_ms(hi), "--data", str(data)]
        rest = ["--rest-endpoint", sim.rest_url]
        assert main(["backfill", "--venue", "binance-spot", *rest, *span]) == 0
        assert main(["canonicalize", "--venue", "binance-spot", "--timeframes", "1m", *span]) == 0
        capsys.readouterr()
        check = ["crosscheck", "--venue", "binance-spot", "--symbol", SYMBOL, "--timeframe", "1m"]
        assert main([*check, *span, *rest]) == 0
        report = capsys.readouterr().out
        tape = sim.tapes["BTCUSDT"]

    # The capture: one reconnect, two holes found (the skipped stretch, the downtime), both
    # filled from REST while it ran.
    assert (summary["reconnects"], summary["quarantined"]) == (1, {"not_json": 1})
    assert summary["gaps"]["found"] == 2 and summary["gaps"]["backfilled"] == 2
    [record] = list(read_quarantine(data / "quarantine"))
    assert record.origin == "ws:stream#0:g1" and record.reason == "not_json"
    events = [json.loads(r["payload_raw"]) for r in _rows(data, "control")]
    kinds = [e["event"] for e in events]
    assert kinds.count("subscribed") == 2 and kinds.count("disconnected") == 1
    assert {e["connection"] for e in events if e["event"] == "subscribed"} == {"stream#0"}
    [down] = [e for e in events if e["event"] == "disconnected"]
    assert (down["code"], down["category"]) == (1006, "normal")
    gaps = {g.kind: g for g in GapLedger(data).rows(stream_id=f"binance-spot/trade/{SYMBOL}")}
    skipped = gaps["trade_id"]
    assert skipped.status == "BACKFILLED" and skipped.filled == 15
    assert skipped.id_to - skipped.id_from == 14
    assert gaps["downtime"].status == "BACKFILLED" and gaps["downtime"].filled > 0

    # The log: every tape trade of the two minutes exactly once, from the socket or REST.
    trades = _rows(data, "trade")
    ids = Counter(parse(r["payload_raw"]).trades[0].trade_id for r in trades)
    assert max(ids.values()) == 1
    want = [t.agg_id for t in tape if lo <= t.ts_ms < hi]
    assert set(want) <= set(ids) and len(want) > 5_000
    rest_rows = [r for r in trades if r["source"] == "rest_backfill"]
    assert {parse(r["payload_raw"]).kind for r in rest_rows} == {"restAggTrade"}
    assert all(r["payload_raw"].endswith(b',"M":true}') for r in rest_rows)
    filled = {parse(r["payload_raw"]).trades[0].trade_id for r in rest_rows}
    assert set(range(skipped.id_from, skipped.id_to + 1)) <= filled
    books = _rows(data, "book_ticker")
    assert len(books) > 100 and {parse(r["payload_raw"]).kind for r in books} == {"bookTicker"}
    assert verify_log(data).ok

    # The bars: both minutes equal the venue's klines, field by field.
    assert "bars compared 2, agreeing 2, differing 0" in report
    assert report.rstrip().endswith("crosscheck: all bars agree")


def test_a_capture_of_an_unknown_venue_is_refused(tmp_path):
    with (
        open_log(tmp_path / "d", LogConfig(fsync=False)) as log,
        pytest.raises(ValidationError) as info,
    ):
        Capture(log, venue="nasdaq", symbols=["BTC-USD"], channels=["trade"], endpoint="")
    assert str(info.value).startswith("unknown venue 'nasdaq': expected one of binance-spot")


def test_a_spot_channel_the_venue_has_not_is_refused_by_the_capture_command(tmp_path, capsys):
    argv = ["capture", "--venue", "binance-spot", "--symbols", SYMBOL, "--channels", "mark_price"]
    assert main([*argv, "--data", str(tmp_path / "d"), "--endpoint", "ws://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "binance-spot cannot capture channel 'mark_price'" in err
