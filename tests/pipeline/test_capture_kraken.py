"""Kraken v2, live, as a user runs it: ``buff capture`` against the simulator's Kraken
dialect through a malformed frame, a stretch of trades never sent and an abnormal close,
the hole back-filled while it runs by walking REST ``since`` by time; then ``buff
backfill`` over two whole minutes, ``buff canonicalize`` and ``buff crosscheck`` against
the dialect's OHLC.

The capture subscribes ``trade`` with ``snapshot: true``: after the reconnect the venue's
50 latest trades cover the downtime, so that hole closes without REST. The simulator runs
in a thread with its clock ahead of the wall clock (as in the Binance spot test), so the
capture ends a second before a minute boundary of exchange time.
"""

from __future__ import annotations

import json
import time
from collections import Counter

from buff_dataplane.cli import main
from buff_dataplane.core.times import format_utc_ms
from buff_dataplane.feeds.kraken.parse import parse
from buff_dataplane.sim.background import SimThread
from buff_dataplane.sim.server import SimConfig
from buff_dataplane.storage.gap_ledger import GapLedger
from buff_dataplane.storage.log import open_log
from buff_dataplane.storage.quarantine import read_quarantine
from buff_dataplane.storage.reader import to_table
from buff_dataplane.storage.verify import verify_log

SYMBOL = "BTC-USD"
CAPTURE_S = 5.0
RATE = 12.0
# First connection: half a frame after trade 5, 10 trades never sent after trade 15 (REST
# has them), the socket dropped without a close frame after trade 35 (about 3.8 s in).
FAULTS = "malformed@5,drop:10@15,close:1006@35"


def _rows(data, channel):
    with open_log(data, readonly=True) as log:
        table = to_table(log, [f"kraken/{channel}/{SYMBOL}"])
    return table.to_pylist()


def test_kraken_capture_repairs_its_hole_by_time_and_its_bars_agree_with_the_venue(
    tmp_path, capsys
):
    data = tmp_path / "d"
    wall = time.time_ns() // 1_000_000
    boundary = (wall + 7_000) // 60_000 * 60_000 + 60_000  # >= 7 s of exchange time ahead
    offset = boundary - int((CAPTURE_S + 1) * 1000) - wall
    clock = lambda: time.time_ns() // 1_000_000 + offset  # noqa: E731
    lo, hi = boundary - 120_000, boundary
    config = SimConfig(
        venue="kraken",
        symbols=("BTC/USD",),
        rate=RATE,
        duration_s=300,
        start_ms=lo - 15_000,
        faults=FAULTS,
    )
    with SimThread(config, clock) as sim:
        argv = ["capture", "--venue", "kraken", "--symbols", SYMBOL, "--data", str(data)]
        argv += ["--channels", "trade,book_ticker", "--endpoint", sim.ws_url]
        argv += ["--rest-endpoint", sim.rest_url, "--duration", str(CAPTURE_S), "--json"]
        assert main(argv) == 0
        summary = json.loads(capsys.readouterr().out)
        while clock() < boundary + 300:  # the second minute ends on the venue
            time.sleep(0.05)
        span = ["--from", format_utc_ms(lo), "--to", format_utc_ms(hi), "--data", str(data)]
        rest = ["--rest-endpoint", sim.rest_url]
        assert main(["backfill", "--venue", "kraken", *rest, *span, "--json"]) == 0
        backfill = json.loads(capsys.readouterr().out)
        assert main(["canonicalize", "--venue", "kraken", "--timeframes", "1m", *span]) == 0
        capsys.readouterr()
        check = ["crosscheck", "--venue", "kraken", "--symbol", SYMBOL, "--timeframe", "1m"]
        assert main([*check, *span, *rest]) == 0
        report = capsys.readouterr().out
        tape = sim.tapes["BTC/USD"]
        requests = sim.rest_requests

    # The capture: one reconnect, one hole (the trades never sent) found and filled from
    # REST while it ran; the downtime closed by the resubscription's snapshot.
    captured = summary["captures"][0] if "captures" in summary else summary
    assert (captured["reconnects"], captured["quarantined"]) == (1, {"not_json": 1})
    assert captured["gaps"]["found"] == 1 and captured["gaps"]["backfilled"] == 1
    [record] = list(read_quarantine(data / "quarantine"))
    assert record.origin == "ws:v2#0:g1" and record.reason == "not_json"
    events = [json.loads(r["payload_raw"]) for r in _rows(data, "control")]
    ours = [e for e in events if "event" in e]
    kinds = [e["event"] for e in ours]
    # trade and ticker are acknowledged apart, on each of the two connections
    assert kinds.count("subscribed") == 4 and kinds.count("disconnected") == 1
    [down] = [e for e in ours if e["event"] == "disconnected"]
    assert (down["code"], down["category"]) == (1006, "normal")
    venue_own = Counter(e.get("channel") for e in events if "event" not in e)
    assert venue_own["status"] == 2  # the venue's status on each connection, as sent
    gaps = GapLedger(data).rows(stream_id=f"kraken/trade/{SYMBOL}")
    [hole] = [g for g in gaps if g.kind == "trade_id"]
    assert hole.status == "BACKFILLED" and hole.filled == 10
    assert hole.id_to - hole.id_from == 9
    assert not [g for g in gaps if g.kind == "downtime"]
    assert all(g.status == "BACKFILLED" for g in gaps)
    assert backfill["appended"] > 1_000 and backfill["requests"] >= 2

    # The log: every tape trade of the two minutes, from the socket or REST; REST rows are
    # Kraken's Trades rows, read back by the same parser.
    trades = _rows(data, "trade")
    parsed = [parse(r["payload_raw"]) for r in trades]
    ids = Counter(t.trade_id for p in parsed for t in p.trades)
    want = [t.agg_id for t in tape if lo <= t.ts_ms < hi]
    assert set(want) <= set(ids) and len(want) > 1_200
    again = {i for i, n in ids.items() if n > 1}
    in_snapshots = {t.trade_id for p, r in zip(parsed, trades, strict=True) for t in p.trades
                    if b'"type":"snapshot"' in r["payload_raw"]}  # fmt: skip
    rest_rows = [
        (r, p) for r, p in zip(trades, parsed, strict=True) if r["source"] == "rest_backfill"
    ]
    rest_twice = {
        i for i, n in Counter(p.trades[0].trade_id for _, p in rest_rows).items() if n > 1
    }
    # A snapshot repeats trades already logged (kept whole); a REST row repeated is the
    # last millisecond of a full Trades page, asked again by the next window: the
    # back-fill appends it twice (pinned in test_backfill_kraken.py, a pipeline bug).
    assert again <= in_snapshots | rest_twice and len(rest_twice) <= backfill["requests"]
    assert {p.kind for _, p in rest_rows} == {"rest_trade"}
    assert all(r["payload_raw"].startswith(b'["') for r, _ in rest_rows)
    filled = {p.trades[0].trade_id for _, p in rest_rows}
    assert set(range(hole.id_from, hole.id_to + 1)) <= filled
    books = _rows(data, "book_ticker")
    assert len(books) > 30 and {parse(r["payload_raw"]).kind for r in books} == {"ticker"}
    assert verify_log(data).ok
    assert requests < 20  # a paced client: AssetPairs, Trades by time, Time, OHLC

    # The bars: both minutes equal the venue's OHLC, field by field.
    assert "bars compared 2, agreeing 2, differing 0" in report
    assert report.rstrip().endswith("crosscheck: all bars agree")
