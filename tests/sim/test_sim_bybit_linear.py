"""The simulator's Bybit linear dialect on loopback: real sockets, Bybit's WebSocket
protocol (subscribe and its ack, ping/pong, refusals) and its REST shapes."""

import asyncio
import itertools
import json
import uuid

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from buff_dataplane.feeds.bybit_linear.parse import parse
from buff_dataplane.feeds.bybit_linear.ws import ADAPTER
from buff_dataplane.sim.bybit_linear import exec_id, exec_int, klines, recent_trade_item
from buff_dataplane.sim.server import ExchangeSim, SimConfig
from buff_dataplane.sim.tape import TapeSpec, TapeTrade, generate

T0 = 1_723_161_600_000  # a tape wholly in the past: REST serves all of it


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def bybit(**kw):
    return SimConfig(**{"venue": "bybit-linear", "rate": 300, "duration_s": 60, **kw})


async def _talk(url, send, n):
    """Send ``send`` (JSON texts), then read ``n`` messages."""
    out = []
    async with connect(url) as ws:
        for message in send:
            await ws.send(message)
        while len(out) < n:
            out.append(json.loads(await ws.recv()))
    return out


def test_subscribe_is_acknowledged_and_trades_and_tickers_flow_in_tape_order():
    async def go():
        async with ExchangeSim(bybit()) as sim:
            [plan] = ADAPTER.plan_connections(["BTCUSDT"], ["trade", "book_ticker"])
            msgs = await _talk(plan.url(sim.ws_url), plan.subscribe(3), 61)
            return msgs, sim.tapes["BTCUSDT"]

    msgs, sim_tape = run(go())
    tape = {exec_int(t): t for t in sim_tape}
    ack, pushes = msgs[0], msgs[1:]
    assert ack == {
        "success": True,
        "ret_msg": "",
        "conn_id": ack["conn_id"],
        "req_id": "3",
        "op": "subscribe",
    }
    assert parse(json.dumps(ack).encode()).kind == "subscription_ack"
    parsed = [parse(json.dumps(m).encode()) for m in pushes]
    trades = [p for p in parsed if p.kind == "publicTrade"]
    books = [p for p in parsed if p.kind == "tickers"]
    assert len(trades) == len(books) == 30  # a tickers delta, then the push, per millisecond
    assert {p.channel for p in books} == {"book_ticker"}
    ids = [t.trade_id for p in trades for t in p.trades]
    agg = [tape[i].agg_id for i in ids]
    assert agg == list(range(agg[0], agg[0] + len(agg)))  # the tape, nothing left out
    by_ms = {}
    for t in sim_tape:
        by_ms.setdefault(t.ts_ms, []).append(exec_int(t))
    for p in trades:  # one push holds exactly the tape's trades of its millisecond
        assert [t.trade_id for t in p.trades] == by_ms[p.event_ts_exchange_ms]
    first = tape[ids[0]]
    t = trades[0].trades[0]  # the first push may hold several trades of one millisecond
    assert (str(t.price), str(t.size), t.ts_ms) == (first.price, first.qty, first.ts_ms)
    assert t.taker_side == ("sell" if first.buyer_maker else "buy")
    item = pushes[[m.get("topic", "").startswith("publicTrade") for m in pushes].index(True)]
    assert list(item["data"][0]) == ["T", "s", "S", "v", "p", "i", "BT", "RPI", "seq"]
    assert uuid.UUID(item["data"][0]["i"]).version == 5


def test_ping_is_answered_with_the_linear_pong_the_parser_knows():
    async def go():
        async with ExchangeSim(bybit()) as sim:
            pings = [ADAPTER.keepalive.message, '{"op":"ping","req_id":"100001"}']
            return await _talk(f"{sim.ws_url}/v5/public/linear", pings, 2)

    first, second = run(go())
    assert (first["op"], first["ret_msg"], first["success"], first["req_id"]) == (
        "ping",
        "pong",
        True,
        "",
    )
    assert second["req_id"] == "100001"
    assert {parse(json.dumps(m).encode()).kind for m in (first, second)} == {"pong"}


def test_refusals_are_success_false_and_parse_as_venue_errors():
    async def go():
        async with ExchangeSim(bybit()) as sim:
            send = [
                '{"op":"subscribe","args":["publicTrade.NOTASYMBOL"],"req_id":"a"}',
                '{"op":"subscribe","args":["orderbook.1.BTCUSDT"],"req_id":"b"}',
                '{"op":"subscribe","args":["publicTrade.BTCUSDT"],"req_id":"c"}',
                '{"op":"subscribe","args":["publicTrade.BTCUSDT"],"req_id":"d"}',
                '{"op":"unsubscribe","args":["publicTrade.BTCUSDT"],"req_id":"e"}',
                "not json",
            ]
            return await _talk(f"{sim.ws_url}/v5/public/linear", send, 6)

    msgs = run(go())
    answers = [m for m in msgs if "op" in m]
    assert [(m["req_id"], m["success"]) for m in answers[:5]] == [
        ("a", False),
        ("b", False),
        ("c", True),
        ("d", False),
        ("e", True),
    ]
    assert answers[0]["ret_msg"] == "error:handler not found,topic:publicTrade.NOTASYMBOL"
    assert answers[3]["ret_msg"] == "error:already subscribed,topic:publicTrade.BTCUSDT"
    assert [parse(json.dumps(m).encode()).kind for m in answers[:5]] == [
        "error",
        "error",
        "subscription_ack",
        "error",
        "subscription_ack",
    ]
    assert answers[5]["success"] is False


def test_a_websocket_path_the_venue_has_not_is_refused_with_404():
    async def go():
        async with ExchangeSim(bybit()) as sim:
            with pytest.raises(InvalidStatus) as info:
                async with connect(f"{sim.ws_url}/v5/public/spot"):
                    pass
            return info.value.response.status_code

    assert run(go()) == 404


def test_recent_trade_is_the_latest_page_newest_first_in_the_venue_envelope():
    cfg = bybit(start_ms=T0, duration_s=30, rate=50)

    async def go():
        async with ExchangeSim(cfg) as sim, httpx.AsyncClient() as client:
            url = f"{sim.rest_url}/v5/market/recent-trade?category=linear&symbol=BTCUSDT&limit=5"
            r = await client.get(url)
            bad = await client.get(url.replace("BTCUSDT", "NOPEUSDT"))
            return r, bad, sim.tapes["BTCUSDT"]

    r, bad, tape = run(go())
    body = r.json()
    assert (r.status_code, body["retCode"], body["retMsg"]) == (200, 0, "OK")
    assert set(body) == {"retCode", "retMsg", "result", "retExtInfo", "time"}
    rows = body["result"]["list"]
    assert [x["execId"] for x in rows] == [exec_id(t) for t in reversed(tape[-5:])]
    assert json.dumps(rows[0], separators=(",", ":")) == recent_trade_item(tape[-1])
    assert r.headers["X-Bapi-Limit"] == "600" and r.headers["X-Bapi-Limit-Status"] == "599"
    assert int(r.headers["X-Bapi-Limit-Reset-Timestamp"]) % 60_000 == 0
    assert bad.status_code == 200
    assert bad.json()["retCode"] == 10001


def test_klines_open_at_the_previous_close_and_fill_quiet_minutes_flat():
    tape = generate(TapeSpec("BTCUSDT", T0, 300_000, rate_per_s=2.0, quiet_minutes=(2,)))
    rows = klines(tape, 60_000, T0, T0 + 299_999, 1000)
    assert [int(r[0]) for r in rows] == [T0 + m * 60_000 for m in (4, 3, 2, 1, 0)]
    oldest_first = list(reversed(rows))
    assert oldest_first[0][1] == tape[0].price  # no previous close: the first trade
    for prev, cur in itertools.pairwise(oldest_first):
        assert cur[1] == prev[4]  # opened at the previous close
    quiet = oldest_first[2]
    assert quiet[1:] == [oldest_first[1][4]] * 4 + ["0", "0"]
    minute1 = [t for t in tape if T0 + 60_000 <= t.ts_ms < T0 + 120_000]
    assert oldest_first[1][2] == max((t.price for t in minute1), key=float)
    assert oldest_first[1][4] == minute1[-1].price
    assert klines(tape, 60_000, T0, T0 + 299_999, 2) == rows[:2]


def test_a_tape_trade_has_one_uuid_and_it_differs_between_trades():
    a = TapeTrade("BTCUSDT", 7, "1.00", "1.000", 1, 1, T0, False)
    b = TapeTrade("BTCUSDT", 8, "1.00", "1.000", 2, 2, T0, False)
    assert exec_id(a) == exec_id(a) != exec_id(b)
    assert uuid.UUID(exec_id(a)).int == exec_int(a)


def test_trades_of_one_millisecond_come_as_one_push_in_tape_order():
    async def go():
        async with ExchangeSim(bybit(rate=2_000)) as sim:
            [plan] = ADAPTER.plan_connections(["BTCUSDT"], ["trade"])
            msgs = await _talk(plan.url(sim.ws_url), plan.subscribe(1), 301)
            return msgs[1:], sim.tapes["BTCUSDT"]

    pushes, tape = run(go())
    sizes = [len(m["data"]) for m in pushes]
    assert max(sizes) > 1  # at 2,000 trades a second milliseconds repeat
    times = [m["data"][0]["T"] for m in pushes]
    assert times == sorted(set(times))  # one push per millisecond
    batch = pushes[sizes.index(max(sizes))]
    assert {d["T"] for d in batch["data"]} == {batch["data"][0]["T"]}
    assert batch["ts"] == batch["data"][0]["T"] + 1
    same = [exec_id(t) for t in tape if t.ts_ms == batch["data"][0]["T"]]
    assert [d["i"] for d in batch["data"]] == same
