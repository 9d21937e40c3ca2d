"""The simulator's Coinbase dialect on loopback: real sockets, Coinbase's wire, the same
tape and faults as every dialect."""

import asyncio
import json

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from buff_dataplane.feeds.coinbase.parse import parse
from buff_dataplane.sim.coinbase import match_message, rest_trade_item
from buff_dataplane.sim.server import ExchangeSim, SimConfig

T0 = 1_723_161_600_000
SUB = {"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["matches", "heartbeat"]}


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def cb(**kw):
    base = {"venue": "coinbase", "symbols": ("BTC-USD",), "rate": 200, "duration_s": 60}
    return SimConfig(**{**base, **kw})


async def _session(url, send, until):
    """Send ``send``, then read until ``until(messages)``; the messages as dicts."""
    out = []
    async with connect(url) as ws:
        for message in send:
            await ws.send(message if isinstance(message, str) else json.dumps(message))
        async for message in ws:
            out.append(json.loads(message))
            if until(out):
                return out
    return out


def test_a_subscribe_is_acked_then_the_last_match_then_contiguous_matches_and_heartbeats():
    async def go():
        async with ExchangeSim(cb(mark_price_interval_s=0.2)) as sim:
            beats = lambda out: sum(m["type"] == "heartbeat" for m in out) >= 3  # noqa: E731
            out = await _session(sim.ws_url, [SUB], beats)
            assert out[0] == {
                "type": "subscriptions",
                "channels": [
                    {"name": "heartbeat", "product_ids": ["BTC-USD"]},
                    {"name": "matches", "product_ids": ["BTC-USD"]},
                ],
            }
            assert out[1]["type"] == "last_match"
            trades = [m for m in out if m["type"] in ("match", "last_match")]
            ids = [m["trade_id"] for m in trades]
            assert ids == list(range(ids[0], ids[0] + len(ids))) and len(ids) > 50
            tape = {t.agg_id: t for t in sim.tapes["BTC-USD"]}
            first_match = next(m for m in out if m["type"] == "match")
            raw = match_message(tape[first_match["trade_id"]])
            assert json.dumps(first_match, separators=(",", ":")).encode() == raw
            for n, m in enumerate(out):
                if m["type"] == "heartbeat":  # states exactly the last match sent before it
                    before = [x["trade_id"] for x in out[:n] if "trade_id" in x]
                    assert m["last_trade_id"] == before[-1]
                    assert m["sequence"] > max(x["sequence"] for x in out[1:n])
            kinds = {parse(json.dumps(m).encode()).kind for m in out}
            assert kinds == {"subscription_ack", "last_match", "match", "heartbeat"}

    run(go())


def test_heartbeats_state_the_trades_a_drop_fault_never_sent():
    async def go():
        async with ExchangeSim(cb(faults="drop:100000@20", mark_price_interval_s=0.1)) as sim:

            def quiet(out):
                beats = [m["last_trade_id"] for m in out if m["type"] == "heartbeat"]
                matches = [m["trade_id"] for m in out if m["type"] == "match"]
                return len(matches) >= 20 and beats and beats[-1] >= matches[-1] + 30

            out = await _session(sim.ws_url, [SUB], quiet)
            matches = [m["trade_id"] for m in out if m["type"] == "match"]
            assert len(matches) == 20 and sim.sent_ids["BTC-USD"] == matches
            last = max(m["last_trade_id"] for m in out if m["type"] == "heartbeat")
            assert last in {t.agg_id for t in sim.happened("BTC-USD")}

    run(go())


def test_ticker_unsubscribe_and_the_venue_s_errors():
    async def go():
        async with ExchangeSim(cb()) as sim:
            ticker = {
                "type": "subscribe",
                "channels": [{"name": "ticker", "product_ids": ["BTC-USD"]}],
            }
            bad_product = {**SUB, "product_ids": ["BTC-USDX"]}
            bad_channel = {**SUB, "channels": ["level2"]}
            unsub = {"type": "unsubscribe", "product_ids": ["BTC-USD"], "channels": ["ticker"]}
            send = ["{not json", {"type": "hello"}, bad_product, bad_channel, ticker]
            got = lambda out: any(m["type"] == "ticker" for m in out)  # noqa: E731
            out = await _session(sim.ws_url, send, got)
            assert out[:4] == [
                {"type": "error", "message": "Malformed JSON"},
                {
                    "type": "error",
                    "message": "Failed to subscribe",
                    "reason": "'hello' is not a valid type",
                },
                {
                    "type": "error",
                    "message": "Failed to subscribe",
                    "reason": "BTC-USDX is not a valid product",
                },
                {
                    "type": "error",
                    "message": "Failed to subscribe",
                    "reason": "level2 is not a valid channel",
                },
            ]
            assert out[4] == {
                "type": "subscriptions",
                "channels": [{"name": "ticker", "product_ids": ["BTC-USD"]}],
            }
            tick = next(m for m in out if m["type"] == "ticker")
            assert parse(json.dumps(tick).encode()).channel == "book_ticker"
            assert {parse(json.dumps(m).encode()).kind for m in out[:4]} == {"error"}
            acks = lambda out: sum(m["type"] == "subscriptions" for m in out) >= 2  # noqa: E731
            out = await _session(sim.ws_url, [ticker, unsub], acks)
            assert [m for m in out if m["type"] == "subscriptions"][-1]["channels"] == []

    run(go())


def test_only_the_root_path_is_a_websocket():
    async def go():
        async with ExchangeSim(cb()) as sim:
            with pytest.raises(InvalidStatus) as info:
                async with connect(f"{sim.ws_url}/stream?streams=btcusdt@aggTrade"):
                    pass
            assert info.value.response.status_code == 404

    run(go())


def test_rest_trades_carry_the_cursor_headers_and_candles_refuse_more_than_300():
    async def go():
        cfg = cb(start_ms=T0, duration_s=60, rate=20)
        async with ExchangeSim(cfg) as sim, httpx.AsyncClient(base_url=sim.rest_url) as http:
            tape = sim.tapes["BTC-USD"]
            mid = tape[100].agg_id
            r = await http.get(f"/products/BTC-USD/trades?after={mid}&limit=5")
            assert r.status_code == 200
            assert [i["trade_id"] for i in r.json()] == [
                mid - 1,
                mid - 2,
                mid - 3,
                mid - 4,
                mid - 5,
            ]
            assert (r.headers["cb-before"], r.headers["cb-after"]) == (str(mid - 1), str(mid - 5))
            assert r.content.startswith(b"[" + rest_trade_item(tape[99]))
            newer = await http.get(f"/products/BTC-USD/trades?before={mid}&limit=2")
            assert [i["trade_id"] for i in newer.json()] == [mid + 2, mid + 1]
            wide = await http.get(
                "/products/BTC-USD/candles?granularity=60"
                "&start=2024-08-09T00:00:00Z&end=2024-08-09T05:00:00Z"
            )
            assert wide.status_code == 400
            assert wide.json()["message"].endswith("Count of aggregations requested exceeds 300")
            assert (await http.get("/products/ETH-USD/trades")).json() == {"message": "NotFound"}
            assert (await http.get("/nowhere")).status_code == 404
            products = (await http.get("/products")).json()
            assert [(p["id"], p["status"]) for p in products] == [("BTC-USD", "online")]

    run(go())
