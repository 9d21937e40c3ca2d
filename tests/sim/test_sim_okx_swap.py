"""The simulator's OKX swap dialect on loopback: real sockets, OKX's wire (subscribe ops
and their acks, text ping/pong, error events), prints of several matches, every frame read
by the okx-swap parser."""

from __future__ import annotations

import asyncio
import itertools
import json

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from buff_dataplane.feeds.okx_swap.parse import parse
from buff_dataplane.feeds.okx_swap.ws import ADAPTER
from buff_dataplane.sim import okx_swap as render
from buff_dataplane.sim.server import ExchangeSim, SimConfig

INST = "BTC-USDT-SWAP"


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def okx(**kw):
    base = {"venue": "okx-swap", "symbols": (INST,), "rate": 300, "duration_s": 60}
    return SimConfig(**{**base, "mark_price_interval_s": 0.05, **kw})


async def _session(url, sends, n):
    """Send ``sends`` one by one, then read ``n`` frames."""
    out = []
    async with connect(url) as ws:
        for message in sends:
            await ws.send(message)
        async for message in ws:
            out.append(message)
            if len(out) >= n:
                break
    return out


def test_a_subscribe_op_is_acked_per_arg_then_prints_flow_in_tape_order():
    async def go():
        async with ExchangeSim(okx()) as sim:
            [plan] = ADAPTER.plan_connections([INST], ["trade", "book_ticker", "mark_price"])
            frames = await _session(plan.url(sim.ws_url), plan.subscribe(1), 400)
            acks = [json.loads(f) for f in frames[:3]]
            assert [a["event"] for a in acks] == ["subscribe"] * 3
            assert [a["arg"]["channel"] for a in acks] == ["tickers", "mark-price", "trades"]
            assert {a["id"] for a in acks} == {"1"} and len({a["connId"] for a in acks}) == 1
            parsed = [parse(f.encode()) for f in frames]
            assert {p.kind for p in parsed[:3]} == {"subscription_ack"}
            kinds = {p.kind for p in parsed[3:]}
            assert kinds == {"trades", "tickers", "mark_price"}
            prints = [t for p in parsed if p.kind == "trades" for t in p.trades]
            # Continuity over covered ids: each print starts where the last one ended.
            assert all(b.first_trade_id == a.trade_id + 1 for a, b in itertools.pairwise(prints))
            assert any(t.first_trade_id != t.trade_id for t in prints)  # several matches
            tape = {t.last_id: t for t in sim.tapes[INST]}
            first = next(f for f, p in zip(frames, parsed, strict=True) if p.kind == "trades")
            assert first == render.trades_push(tape[prints[0].trade_id])
            assert sim.sent_ids[INST][: len(prints)] == [tape[t.trade_id].agg_id for t in prints]

    run(go())


def test_ping_is_answered_pong_and_bad_requests_get_okx_error_events():
    async def go():
        async with ExchangeSim(okx()) as sim:
            url = f"{sim.ws_url}/ws/v5/public"
            sends = [
                "ping",
                "not json",
                json.dumps(
                    {"op": "subscribe", "args": [{"channel": "trades", "instId": "X-Y-SWAP"}]}
                ),
                json.dumps(
                    {"op": "subscribe", "args": [{"channel": "trades-all", "instId": INST}]}
                ),
                json.dumps({"id": "9", "op": "login", "args": []}),
            ]
            frames = await _session(url, sends, 5)
            assert frames[0] == "pong" and parse(b"pong").channel == "control"
            errors = [json.loads(f) for f in frames[1:]]
            assert [e["code"] for e in errors] == ["60012", "60018", "64001", "60012"]
            assert all(e["event"] == "error" for e in errors)
            assert errors[1]["msg"].startswith("Subscribe failed, wrong URL or channel:trades")
            assert errors[3]["id"] == "9"
            assert {parse(f.encode()).kind for f in frames[1:]} == {"error"}
            business = f"{sim.ws_url}/ws/v5/business"
            sub = json.dumps({"op": "subscribe", "args": [{"channel": "trades", "instId": INST}]})
            [refused] = await _session(business, [sub], 1)
            assert json.loads(refused)["code"] == "64002"

    run(go())


def test_unsubscribe_stops_the_prints_and_an_unknown_path_is_refused():
    async def go():
        async with ExchangeSim(okx()) as sim:
            url = f"{sim.ws_url}/ws/v5/public"
            arg = {"channel": "trades", "instId": INST}
            async with connect(url) as ws:
                await ws.send(json.dumps({"op": "subscribe", "args": [arg]}))
                assert json.loads(await ws.recv())["event"] == "subscribe"
                assert parse((await ws.recv()).encode()).kind == "trades"
                await ws.send(json.dumps({"op": "unsubscribe", "args": [arg]}))
                sent = len(sim.sent_ids[INST])
                while json.loads(await ws.recv()).get("event") != "unsubscribe":
                    pass
                await asyncio.sleep(0.2)
                assert len(sim.sent_ids[INST]) <= sent + 1
            try:
                async with connect(f"{sim.ws_url}/ws/v5/private"):
                    raise AssertionError("connected")
            except InvalidStatus as exc:
                assert exc.response.status_code == 404
            async with httpx.AsyncClient() as client:
                answer = await client.get(f"{sim.rest_url}/api/v5/nope")
            assert answer.status_code == 404 and answer.json()["code"] == "50000"

    run(go())
