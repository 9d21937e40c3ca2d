"""Coinbase, live, as a user runs it: ``buff capture --venue coinbase`` against the
simulator's Coinbase dialect through a malformed frame, an abnormal close and a stretch of
matches the venue never sends, up to the last trade of the tape, while its heartbeats go
on stating the last trade id; stopped with Ctrl-C. Then ``buff backfill``,
``buff canonicalize`` and ``buff crosscheck`` against the dialect's candles.

The dropped stretch is the end of the recording: no later match shows the hole, only the
heartbeats' ``last_trade_id`` does, and the capture back-fills it from REST by trade id
while it runs.

Exchange time runs 60 times faster than the wall clock (the simulator's injected clock),
so a capture of a few seconds spans three minutes of the venue's day, and the two whole
minutes that follow its first trade are cross-checked. The capture's own clock stays the
wall clock.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import threading
import time
from collections import Counter

from buff_dataplane.cli import main
from buff_dataplane.core.times import format_utc_ms
from buff_dataplane.feeds.coinbase.parse import parse
from buff_dataplane.sim.background import SimThread
from buff_dataplane.sim.server import SimConfig
from buff_dataplane.storage.gap_ledger import GapLedger
from buff_dataplane.storage.log import open_log
from buff_dataplane.storage.quarantine import read_quarantine
from buff_dataplane.storage.reader import to_table
from buff_dataplane.storage.verify import verify_log

SYMBOL = "BTC-USD"
SPEED = 60  # exchange ms per wall ms
# Per connection, counted in matches sent: the first gets a half frame after match 10 and
# is dropped without a close frame after match 100; the second sends no match after its
# 900th (about 210 s of exchange time in), to the end of the tape (240 s in), while the
# venue's heartbeats go on.
FAULTS = "malformed@10,close:1006@100,drop:100000@900"


def _rows(data, channel):
    with open_log(data, readonly=True) as log:
        table = to_table(log, [f"coinbase/{channel}/{SYMBOL}"])
    return table.to_pylist()


def _stop_after(sim, end_ms: int, stopped: threading.Event) -> None:
    """Ctrl-C for the capture once the venue's clock passes ``end_ms``."""
    while not stopped.wait(0.02):
        if sim.clock() >= end_ms:
            os.kill(os.getpid(), signal.SIGINT)
            return


def test_coinbase_capture_repairs_a_hole_only_its_heartbeats_show_and_agrees_with_candles(
    tmp_path, capsys
):
    data = tmp_path / "d"
    # Exchange time starts 30 s to a minute ahead of the wall clock and runs faster, so
    # every trade is received (and back-filled) before its bucket ends on the wall clock:
    # none is late data.
    wall0 = time.time_ns() // 1_000_000
    t0 = wall0 - wall0 % 60_000 + 120_000
    clock = lambda: t0 - 30_000 + SPEED * (time.time_ns() // 1_000_000 - wall0)  # noqa: E731
    config = SimConfig(
        venue="coinbase",
        symbols=(SYMBOL,),
        rate=5.0,
        duration_s=300,
        mark_price_interval_s=0.05,  # the player's tick: its sleeps stay short at 60x
        start_ms=t0 - 60_000,
        faults=FAULTS,
    )
    stopped = threading.Event()
    with SimThread(config, clock) as sim:
        # The tape ends at t0 + 240 s; 2 s (wall) later every heartbeat-stated hole has
        # outlived the capture's grace period (1 s) and been back-filled.
        end = t0 + 240_000 + 120_000
        watcher = threading.Thread(target=_stop_after, args=(sim, end, stopped))
        watcher.start()
        argv = ["capture", "--venue", "coinbase", "--symbols", SYMBOL, "--data", str(data)]
        argv += ["--channels", "trade,book_ticker", "--endpoint", sim.ws_url]
        argv += ["--rest-endpoint", sim.rest_url, "--duration", "30", "--json"]
        try:
            assert main(argv) == 0
        finally:
            stopped.set()
            watcher.join()
        summary = json.loads(capsys.readouterr().out)
        sent = list(sim.sent_ids[SYMBOL])
        tape = sim.tapes[SYMBOL]
        at = {t.agg_id: t.ts_ms for t in tape}

        trades = _rows(data, "trade")
        times = sorted(r["event_ts_exchange_ms"] for r in trades)
        lo = times[0] + (-times[0]) % 60_000  # the first whole minute recorded
        hi = lo + 120_000
        assert hi < at[sent[-1]]  # the unsent stretch begins after the range
        span = ["--from", format_utc_ms(lo), "--to", format_utc_ms(hi), "--data", str(data)]
        rest = ["--rest-endpoint", sim.rest_url]
        assert main(["backfill", "--venue", "coinbase", *rest, *span, "--json"]) == 0
        refill = json.loads(capsys.readouterr().out)
        assert main(["canonicalize", "--venue", "coinbase", "--timeframes", "1m", *span]) == 0
        capsys.readouterr()
        check = ["crosscheck", "--venue", "coinbase", "--symbol", SYMBOL, "--timeframe", "1m"]
        assert main([*check, *span, *rest]) == 0
        report = capsys.readouterr().out

    # The capture: one reconnect, the half frame quarantined, every hole filled from REST
    # while it ran (the downtime, and the stretch only the heartbeats showed).
    assert summary["reconnects"] == 1 and summary["quarantined"] == {"not_json": 1}
    gaps = summary["gaps"]
    assert gaps["backfilled"] == gaps["found"] >= 2 and gaps["backfilled_trades"] > 100
    [record] = list(read_quarantine(data / "quarantine"))
    assert record.origin == "ws:feed#0:g1" and record.reason == "not_json"
    controls = [json.loads(r["payload_raw"]) for r in _rows(data, "control")]
    events = [c["event"] for c in controls if "event" in c]
    assert events.count("subscribed") == 2 and events.count("disconnected") == 1
    [down] = [c for c in controls if c.get("event") == "disconnected"]
    assert (down["code"], down["category"]) == (1006, "normal")
    beats = [c for c in controls if c.get("type") == "heartbeat"]
    assert len(beats) > 100  # the venue's own messages, kept as sent
    ledger = GapLedger(data).rows(stream_id=f"coinbase/trade/{SYMBOL}")
    assert {g.status for g in ledger} == {"BACKFILLED"}
    kinds = Counter(g.kind for g in ledger)
    assert kinds["downtime"] == 1 and kinds["trade_id"] >= 1
    stated = max(b["last_trade_id"] for b in beats)
    assert stated == tape[-1].agg_id  # the heartbeats went on after the last trade
    tail = sorted((g for g in ledger if g.kind == "trade_id"), key=lambda g: g.id_from)
    assert tail[0].id_from == sent[-1] + 1  # the first match never sent
    assert tail[-1].id_to == stated  # up to the last id a heartbeat stated
    assert all(a.id_to + 1 == b.id_from for a, b in itertools.pairwise(tail))
    assert sum(g.filled for g in tail) == stated - sent[-1]

    # The log: every trade up to the last stated id exactly once, from the socket or REST;
    # the back-filled ones are the venue's REST items.
    ids = Counter(parse(r["payload_raw"]).trades[0].trade_id for r in trades)
    assert max(ids.values()) == 1
    assert sorted(ids) == list(range(min(ids), stated + 1))
    assert min(ids) <= min(t.agg_id for t in tape if t.ts_ms >= lo)
    from_rest = [r for r in trades if r["source"] == "rest_backfill"]
    assert {parse(r["payload_raw"]).kind for r in from_rest} == {"rest_trade"}
    filled = {parse(r["payload_raw"]).trades[0].trade_id for r in from_rest}
    assert set(range(sent[-1] + 1, stated + 1)) <= filled
    assert not filled & set(sent)  # REST filled only what the socket never delivered
    kinds_ws = Counter(parse(r["payload_raw"]).kind for r in trades if r["source"] == "ws")
    assert kinds_ws["last_match"] == 2 and kinds_ws["match"] > 500
    books = _rows(data, "book_ticker")
    assert len(books) > 500 and {parse(r["payload_raw"]).kind for r in books} == {"ticker"}
    assert verify_log(data).ok

    # Nothing left to repair in the range; both minutes equal the venue's candles.
    assert refill["found"] == 0 and refill["appended"] == 0
    assert "bars compared 2, agreeing 2, differing 0" in report
    assert report.rstrip().endswith("crosscheck: all bars agree")
