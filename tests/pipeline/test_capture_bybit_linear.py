"""Bybit linear, live, against the simulator's Bybit dialect: a capture through a malformed
frame and an abrupt disconnect, whose downtime is filled from ``recent-trade`` while it
runs; ``buff backfill`` over the control events' windows; a gap older than the
recent-trades window left UNRESOLVED with its reason; bars that agree with the venue's
klines under its previous-close rule.

Bybit's trade ids are UUIDs (core.venues ``unordered``): a loss shows in no id, so the
capture makes the stretch from the last trade before a disconnect (or a restart) to the
first after it a time gap, and ``buff backfill`` scans the windows the control events
state. Both are compared with the tape in exchange time, so the capture's clock and the
venue's are one clock here: the wall clock for ``buff capture``; the simulator's (ahead
of the wall, so a minute ends without waiting for it) for the capture run through the
library.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

import httpx

from buff_dataplane.cli import main
from buff_dataplane.core.config import LogConfig
from buff_dataplane.core.times import format_utc_ms
from buff_dataplane.feeds.bybit_linear.parse import parse
from buff_dataplane.feeds.bybit_linear.rest import BybitLinearRest
from buff_dataplane.feeds.rest_common import RestPolicy
from buff_dataplane.pipeline.capture import Capture
from buff_dataplane.sim.background import SimThread
from buff_dataplane.sim.bybit_linear import exec_int
from buff_dataplane.sim.server import SimConfig
from buff_dataplane.storage.gap_ledger import GapLedger
from buff_dataplane.storage.log import open_log
from buff_dataplane.storage.quarantine import read_quarantine
from buff_dataplane.storage.reader import to_table
from buff_dataplane.storage.verify import verify_log

VENUE = "bybit-linear"
SYMBOL = "BTC-USDT-PERP"
TRADES = f"{VENUE}/trade/{SYMBOL}"
FAST = RestPolicy(max_attempts=3, base_backoff_s=0.01, max_backoff_s=0.05, timeout_s=5.0)


def _rows(data, channel):
    with open_log(data, readonly=True) as log:
        table = to_table(log, [f"{VENUE}/{channel}/{SYMBOL}"])
    return table.to_pylist()


def _events(data):
    return [json.loads(r["payload_raw"]) for r in _rows(data, "control")]


def _logged(data):
    """Trade id -> how often the log holds it, and the ids each source brought."""
    count: Counter[int] = Counter()
    by_source: dict[str, set[int]] = {"ws": set(), "rest_backfill": set()}
    for r in _rows(data, "trade"):
        for t in parse(r["payload_raw"]).trades:
            count[t.trade_id] += 1
            by_source[r["source"]].add(t.trade_id)
    return count, by_source


def _window(events):
    """(last message, disconnect noticed, subscribed again) of the first disconnect."""
    down = next(e for e in events if e["event"] == "disconnected")
    up = next(e for e in events if e["event"] == "subscribed" and e["ts_ms"] > down["ts_ms"])
    return down["last_message_ms"], down["ts_ms"], up["ts_ms"]


def test_downtime_is_filled_from_recent_trades_and_an_older_gap_is_unresolved(tmp_path, capsys):
    data = tmp_path / "d"
    faults = "malformed@20,close:1006@150"
    config = SimConfig(venue=VENUE, rate=300.0, duration_s=600, faults=faults)
    with SimThread(config) as sim:  # the wall clock: the capture's and the venue's
        base = ["--venue", VENUE, "--data", str(data), "--rest-endpoint", sim.rest_url]
        capture = ["capture", *base, "--symbols", SYMBOL, "--endpoint", sim.ws_url, "--json"]
        assert main([*capture, "--channels", "trade,book_ticker", "--duration", "2"]) == 0
        first = json.loads(capsys.readouterr().out)
        assert main(["backfill", *base, "--json"]) == 0
        scanned = json.loads(capsys.readouterr().out)
        count, by_source = _logged(data)
        ledger = GapLedger(data).current()
        events = _events(data)
        # Let the venue trade on until the stop is older than its latest 1,000 trades.
        stopped = [e for e in events if e["event"] == "capture_stopped"][-1]["ts_ms"]
        later = [t for t in sim.tapes["BTCUSDT"] if t.ts_ms > stopped]
        while time.time_ns() // 1_000_000 <= later[1_100].ts_ms:
            time.sleep(0.05)
        assert main([*capture, "--channels", "trade", "--duration", "1"]) == 0
        second = json.loads(capsys.readouterr().out)
        assert main(["backfill", *base, "--json"]) == 3  # an UNRESOLVED gap: data incomplete
        rescanned = json.loads(capsys.readouterr().out)
        tape = sim.tapes["BTCUSDT"]

    # The first run: one reconnect, the half frame quarantined, and the stretch from the
    # last trade before the drop to the first after it filled from recent-trade, live.
    assert (first["reconnects"], first["quarantined"]) == (1, {"not_json": 1})
    assert first["gaps"]["found"] == 1 and first["gaps"]["backfilled"] == 1
    [record] = [q for q in read_quarantine(data / "quarantine") if q.reason == "not_json"]
    assert record.origin == "ws:linear#0:g1"
    scan_ids = {g["gap_id"] for g in scanned["gaps"]}
    [live] = [g for g in ledger.values() if g.gap_id not in scan_ids]
    assert (live.kind, live.status) == ("downtime", "BACKFILLED")
    assert live.filled == first["gaps"]["backfilled_trades"] > 0
    assert live.reason == f"{live.filled} trades appended (venue REST history)"
    last_msg, noticed, up = _window(events)
    assert live.ts_from_ms <= last_msg and live.ts_to_ms >= noticed
    # Every tape trade of the run is in the log once: from the socket or from REST.
    logged_ts = [t.ts_ms for t in tape if exec_int(t) in count]
    run = {exec_int(t) for t in tape if min(logged_ts) <= t.ts_ms <= live.ts_to_ms}
    assert run <= set(count) and max(count.values()) == 1
    missed = {exec_int(t) for t in tape if noticed <= t.ts_ms < up}
    assert missed and missed <= by_source["rest_backfill"] and not missed & by_source["ws"]

    # buff backfill then scans the control events: the downtime window they state (and the
    # stop) are already whole, which the venue's latest trades confirm.
    worked = {g["kind"]: g for g in scanned["gaps"]}
    assert set(worked) == {"downtime", "restart"}
    assert (worked["downtime"]["status"], worked["downtime"]["appended"]) == ("BACKFILLED", 0)
    assert worked["downtime"]["reason"] == "none missing (venue REST history)"
    # The window opens at the connection's last message, not when the loss was noticed.
    assert ledger[worked["downtime"]["gap_id"]].ts_from_ms == min(last_msg, noticed)

    # The second run: the pause between the runs is older than the venue's latest 1,000
    # trades, so REST cannot reach it: UNRESOLVED, with the reason in the ledger (found
    # live by the capture, and again from the control events by buff backfill).
    assert second["gaps"]["found"] == 1 and second["gaps"]["unresolved"] == 1
    ledger = GapLedger(data).current()
    rows = [ledger[g["gap_id"]] for g in rescanned["gaps"]]
    [old] = [g for g in rows if g.kind == "restart" and g.ts_from_ms == stopped < g.ts_to_ms]
    assert (old.status, old.ts_from_ms, old.attempts) == ("UNRESOLVED", stopped, 1)
    assert old.reason.startswith(
        "unfillable: bybit-linear REST serves only its latest 1000 trades (from "
    )
    assert old.reason.endswith(f" ms); the gap starts at {stopped} ms, before them")
    assert verify_log(data).ok


CAPTURE_S = 4.0


async def _capture(data, sim, clock):
    async with httpx.AsyncClient() as client:
        log = open_log(data, LogConfig(fsync=False))
        try:
            capture = Capture(
                log,
                venue=VENUE,
                symbols=[SYMBOL],
                channels=["trade", "book_ticker"],
                endpoint=sim.ws_url,
                clock_ms=clock,
                history=BybitLinearRest(client, sim.rest_url, FAST),
            )
            stats = await capture.run(duration_s=CAPTURE_S)
        finally:
            log.close()
        return stats, dict(capture.gap_stats)


def test_bars_of_a_repaired_capture_agree_with_the_venue_klines(tmp_path, capsys):
    data = tmp_path / "d"
    wall = time.time_ns() // 1_000_000
    boundary = (wall + 6_000) // 60_000 * 60_000 + 60_000  # >= 6 s of exchange time ahead
    offset = boundary - int((CAPTURE_S + 1) * 1000) - wall
    clock = lambda: time.time_ns() // 1_000_000 + offset  # noqa: E731
    lo, hi = boundary - 120_000, boundary
    # The tape starts 15 s before the minute preceding the compared ones, and is short
    # enough (about 800 trades by the end) for one recent-trade page to hold all of it.
    faults = "malformed@3,close:1006@8"
    config = SimConfig(venue=VENUE, rate=4.0, duration_s=300, start_ms=lo - 75_000, faults=faults)
    with SimThread(config, clock) as sim:
        stats, gap_stats = asyncio.run(asyncio.wait_for(_capture(data, sim, clock), 60))
        while clock() < boundary + 300:  # the second minute ends on the venue
            time.sleep(0.05)
        # One minute more than compared: the venue opens a bar at the previous close.
        span = ["--from", format_utc_ms(lo - 60_000), "--to", format_utc_ms(hi)]
        span += ["--data", str(data)]
        rest = ["--rest-endpoint", sim.rest_url]
        assert main(["backfill", "--venue", VENUE, *rest, *span, "--json"]) == 0
        repaired = json.loads(capsys.readouterr().out)
        assert main(["canonicalize", "--venue", VENUE, "--timeframes", "1m", *span]) == 0
        capsys.readouterr()
        check = ["crosscheck", "--venue", VENUE, "--symbol", SYMBOL, "--timeframe", "1m"]
        compared = ["--from", format_utc_ms(lo), "--to", format_utc_ms(hi), "--data", str(data)]
        assert main([*check, *compared, *rest]) == 0
        report = capsys.readouterr().out
        tape = sim.tapes["BTCUSDT"]

    assert (stats.reconnects, dict(stats.quarantined)) == (1, {"not_json": 1})
    assert gap_stats["found"] == gap_stats["backfilled"] == 1  # the downtime, live
    kinds = Counter(g["kind"] for g in repaired["gaps"])
    assert kinds["downtime"] == 1 and kinds["edge"] == 2
    assert {g["status"] for g in repaired["gaps"]} == {"BACKFILLED"}
    # The log: every tape trade of the three minutes exactly once, from the socket or REST.
    count, by_source = _logged(data)
    assert max(count.values()) == 1
    want = {exec_int(t) for t in tape if lo - 60_000 <= t.ts_ms < hi}
    assert want <= set(count) and len(want) > 600
    assert by_source["ws"] and by_source["rest_backfill"]
    assert "bars compared 2, agreeing 2, differing 0" in report
    assert report.rstrip().endswith("crosscheck: all bars agree")
