"""The simulator's Kraken dialect on loopback: v2's status on connect, per-symbol acks,
the 50-trade snapshot, unknown pairs, ping/pong, heartbeats only while idle, numeric
money; every frame read by the Kraken parser."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from buff_dataplane.feeds.kraken.parse import parse
from buff_dataplane.sim import kraken as render
from buff_dataplane.sim.dialects import dialect_for, dialect_venues
from buff_dataplane.sim.server import ExchangeSim, SimConfig
from buff_dataplane.sim.tape import TapeTrade


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def kraken(**kw):
    now = time.time_ns() // 1_000_000
    base = {"venue": "kraken", "symbols": ("BTC/USD",), "rate": 50, "duration_s": 120}
    return SimConfig(**{**base, "start_ms": now - 10_000, **kw})


def sub(channel, symbols, rid=1, **extra):
    params = {"channel": channel, "symbol": symbols, **extra}
    return json.dumps({"method": "subscribe", "params": params, "req_id": rid})


async def _session(sim, sends, n):
    """Connect to /v2, send ``sends`` and read ``n`` messages."""
    async with connect(f"{sim.ws_url}/v2") as ws:
        for message in sends:
            await ws.send(message)
        return [await ws.recv() for _ in range(n)]


def test_dialect_is_registered():
    assert "kraken" in dialect_venues() and dialect_for("kraken").venue == "kraken"


def test_a_connection_starts_with_status_then_acks_each_symbol_then_its_snapshot():
    async def go():
        async with ExchangeSim(kraken(symbols=("BTC/USD", "ETH/USD"))) as sim:
            return await _session(sim, [sub("trade", ["BTC/USD", "ETH/USD"], snapshot=True)], 8)

    msgs = run(go())
    parsed = [parse(m.encode()) for m in msgs]
    assert parsed[0].kind == "status"
    assert json.loads(msgs[0])["data"][0]["system"] == "online"
    acks = [p for p in parsed if p.kind == "subscription_ack"]
    assert [a.symbol for a in acks] == ["BTC-USD", "ETH-USD"]
    assert json.loads(msgs[1])["req_id"] == 1
    snapshots = [m for m in msgs if '"type":"snapshot"' in m]
    assert len(snapshots) == 2
    first = parse(snapshots[0].encode())
    assert len(first.trades) == 50 and first.symbol == "BTC-USD"
    ids = [t.trade_id for t in first.trades]
    assert ids == list(range(ids[0], ids[0] + 50))  # the latest 50, ascending
    updates = [
        parse(m.encode()) for m in msgs if m.startswith('{"channel":"trade","type":"update"')
    ]
    assert all(len(p.trades) == 1 for p in updates)


def test_trade_updates_follow_the_snapshot_without_a_hole_and_money_is_numeric():
    async def go():
        async with ExchangeSim(kraken()) as sim:
            msgs = await _session(sim, [sub("trade", ["BTC/USD"], snapshot=True)], 40)
            return sim, msgs

    sim, msgs = run(go())
    trades = [t for m in msgs[2:] for t in parse(m.encode()).trades]
    ids = [t.trade_id for t in trades]
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    tape = {t.agg_id: t for t in sim.tapes["BTC/USD"]}
    for t in trades:
        want = tape[t.trade_id]
        assert (t.price, t.size, t.ts_ms) == (Decimal(want.price), Decimal(want.qty), want.ts_ms)
    item = json.loads(msgs[-1], parse_float=str)["data"][0]
    assert list(item) == ["symbol", "side", "price", "qty", "ord_type", "trade_id", "timestamp"]
    assert '"price":"' not in msgs[-1]  # JSON numbers, not strings


def test_an_unknown_pair_is_refused_as_kraken_does_and_the_known_one_acked():
    async def go():
        async with ExchangeSim(kraken()) as sim:
            return await _session(sim, [sub("trade", ["XBT/USD", "BTC/USD"])], 3)

    msgs = run(go())
    refused = json.loads(msgs[1])
    assert refused["error"] == "Currency pair not supported XBT/USD"
    assert (refused["success"], refused["symbol"]) == (False, "XBT/USD")
    assert parse(msgs[1].encode()).kind == "error"
    assert parse(msgs[2].encode()).kind == "subscription_ack"


def test_ping_is_answered_with_pong_and_ticker_is_book_ticker():
    async def go():
        async with ExchangeSim(kraken()) as sim:
            sends = ['{"method":"ping","req_id":9}', sub("ticker", ["BTC/USD"])]
            return await _session(sim, sends, 5)

    msgs = run(go())
    kinds = [parse(m.encode()).kind for m in msgs]
    assert kinds[:4] == ["status", "pong", "subscription_ack", "ticker"]
    assert json.loads(msgs[1])["req_id"] == 9
    ticker = parse(msgs[3].encode())
    assert (ticker.channel, ticker.symbol) == ("book_ticker", "BTC-USD")
    assert '"type":"snapshot"' in msgs[3]  # ticker's documented default


def test_heartbeats_come_only_once_subscribed_and_only_while_no_trade_comes():
    async def go():
        cfg = kraken(rate=0.05, mark_price_interval_s=0.1)  # a trade every 20 s or so
        async with ExchangeSim(cfg) as sim, connect(f"{sim.ws_url}/v2") as ws:
            first = await ws.recv()
            with pytest.raises(TimeoutError):  # nothing subscribed: no heartbeat
                await asyncio.wait_for(ws.recv(), 1.3)
            await ws.send(sub("trade", ["BTC/USD"], snapshot=False))
            ack = await ws.recv()
            t0 = time.monotonic()
            beats = [await ws.recv(), await ws.recv()]
            return first, ack, beats, time.monotonic() - t0

    first, ack, beats, took = run(go())
    assert parse(first.encode()).kind == "status" and parse(ack.encode()).kind == "subscription_ack"
    assert beats == ['{"channel":"heartbeat"}'] * 2
    assert {parse(b.encode()).kind for b in beats} == {"heartbeat"}
    assert 0.8 < took < 3.0  # about one a second


def test_unsubscribe_is_acknowledged_and_only_v2_is_served():
    async def go():
        async with ExchangeSim(kraken()) as sim:
            unsub = sub("trade", ["BTC/USD"]).replace('"subscribe"', '"unsubscribe"')
            msgs = await _session(sim, [unsub], 2)
            with pytest.raises(InvalidStatus):
                async with connect(f"{sim.ws_url}/ws"):
                    pass
            return msgs

    msgs = run(go())
    ack = json.loads(msgs[1])
    assert (ack["method"], ack["success"]) == ("unsubscribe", True)


def test_a_rest_row_and_its_v2_item_read_as_the_same_trade():
    # a millisecond boundary: 999 µs must not round the REST float's text up a ms
    for agg_id in range(2_353_245_000, 2_353_245_400):
        t = TapeTrade(
            "BTC/USD", agg_id, "61800.30", "1.500", agg_id, agg_id, 1_762_795_433_999, False
        )
        ws = parse(render.trade_message([t]).encode()).trades[0]
        rest = parse(render.rest_row(t).encode()).trades[0]
        assert ws == rest
    assert render.number("61800.30") == "61800.3" and render.number("740.000") == "740.0"
    assert render.fixed("0.125", 8) == "0.12500000"
