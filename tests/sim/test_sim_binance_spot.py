"""The simulator's Binance spot dialect on loopback: real sockets, spot's wire, the
same tape and faults as USD-M."""

import asyncio
import json

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from buff_dataplane.core.errors import ValidationError
from buff_dataplane.feeds.binance_spot.parse import parse
from buff_dataplane.sim.binance_spot import agg_trade_message, rest_agg_trade_item
from buff_dataplane.sim.server import ExchangeSim, SimConfig, klines

T0 = 1_723_161_600_000  # a tape wholly in the past: REST serves all of it


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def spot(**kw):
    return SimConfig(**{"venue": "binance-spot", "rate": 300, "duration_s": 60, **kw})


async def _collect(url, n, send=()):
    out = []
    try:
        async with connect(url) as ws:
            for message in send:
                await ws.send(json.dumps(message))
            async for message in ws:
                out.append(message)
                if len(out) >= n:
                    break
    except ConnectionClosed as exc:
        out.append(exc)
    return out


def test_combined_streams_carry_spot_aggtrades_in_tape_order_and_spot_field_order():
    async def go():
        async with ExchangeSim(spot()) as sim:
            url = f"{sim.ws_url}/stream?streams=btcusdt@aggTrade"
            msgs = await _collect(url, 40)
            tape = {t.agg_id: t for t in sim.tapes["BTCUSDT"]}
            parsed = [parse(m.encode()) for m in msgs]
            ids = [p.trades[0].trade_id for p in parsed]
            assert ids == list(range(ids[0], ids[0] + 40))
            assert {p.kind for p in parsed} == {"aggTrade"} and parsed[0].symbol == "BTC-USDT"
            first = tape[ids[0]]
            assert msgs[0].encode() == agg_trade_message(first)
            keys = list(json.loads(msgs[0])["data"])
            assert keys == ["e", "E", "s", "a", "p", "q", "f", "l", "T", "m", "M"]
            assert sim.sent_ids["BTCUSDT"][:40] == ids

    run(go())


def test_a_raw_ws_path_sends_bare_payloads_and_subscribe_unsubscribe_are_acknowledged():
    async def go():
        async with ExchangeSim(spot()) as sim:
            sub = {"method": "SUBSCRIBE", "params": ["btcusdt@bookTicker"], "id": 7}
            lst = {"method": "LIST_SUBSCRIPTIONS", "id": 8}
            msgs = await _collect(f"{sim.ws_url}/ws/btcusdt@aggTrade", 60, send=[sub, lst])
            decoded = [json.loads(m) for m in msgs]
            assert {"result": None, "id": 7} in decoded
            assert {"result": ["btcusdt@aggTrade", "btcusdt@bookTicker"], "id": 8} in decoded
            events = [d for d in decoded if "id" not in d]
            assert all("stream" not in d for d in events)  # bare, not wrapped
            kinds = {parse(json.dumps(d).encode()).kind for d in events}
            assert kinds == {"aggTrade", "bookTicker"}
            book = next(d for d in events if "e" not in d)
            assert set(book) == {"u", "s", "b", "B", "a", "A"}  # spot: no event type, no time
            unsub = {"method": "UNSUBSCRIBE", "params": ["btcusdt@aggTrade"], "id": 9}
            after = await _collect(f"{sim.ws_url}/ws/btcusdt@aggTrade", 30, send=[sub, unsub])
            acked = after.index('{"result": null, "id": 9}')
            rest = [parse(m.encode()).kind for m in after[acked + 1 :]]
            assert len(rest) >= 20 and set(rest) == {"bookTicker"}  # no aggTrade after the ack

    run(go())


def test_a_usdm_route_is_not_a_spot_path():
    async def go():
        async with ExchangeSim(spot()) as sim:
            with pytest.raises(InvalidStatus) as info:
                async with connect(f"{sim.ws_url}/market/stream?streams=btcusdt@aggTrade"):
                    pass
            assert info.value.response.status_code == 404
            assert json.loads(info.value.response.body)["code"] == -1000

    run(go())


def test_the_shared_faults_play_on_the_spot_wire():
    async def go():
        plan = "malformed@3,drop:4@6,close:1006@10"
        async with ExchangeSim(spot(faults=plan)) as sim:
            msgs = await _collect(f"{sim.ws_url}/stream?streams=btcusdt@aggTrade", 1000)
            assert isinstance(msgs[-1], ConnectionClosed)  # 1006: no close frame
            texts = msgs[:-1]
            assert len(texts) == 11  # 10 trades and a malformed frame
            assert not texts[3].endswith("}}")
            ids = [parse(m.encode()).trades[0].trade_id for i, m in enumerate(texts) if i != 3]
            assert ids[6] == ids[5] + 5  # four ids dropped after the 6th trade
            async with httpx.AsyncClient(base_url=sim.rest_url) as client:
                r = await client.get(
                    "/api/v3/aggTrades",
                    params={"symbol": "BTCUSDT", "fromId": ids[5] + 1, "limit": 4},
                )
            assert [row["a"] for row in r.json()] == list(range(ids[5] + 1, ids[6]))

    run(go())


def test_rest_speaks_api_v3_with_spot_weights_limits_and_window_rules():
    now = T0 + 7_200_000 + 5_000

    async def go():
        cfg = spot(start_ms=T0, duration_s=7_200, rate=1, symbols=("ETHUSDT", "BTCUSDT"))
        sim = ExchangeSim(cfg, clock=lambda: now)
        async with sim, httpx.AsyncClient(base_url=sim.rest_url) as client:
            tape = sim.tapes["BTCUSDT"]
            r = await client.get(
                "/api/v3/aggTrades", params={"symbol": "BTCUSDT", "fromId": tape[0].agg_id}
            )
            assert r.status_code == 200 and r.headers["x-mbx-used-weight-1m"] == "4"
            assert r.content == b"[" + b",".join(rest_agg_trade_item(t) for t in tape[:500]) + b"]"
            # no one-hour rule on spot: a two-hour window is answered
            window = {"symbol": "BTCUSDT", "startTime": T0, "endTime": T0 + 7_199_999}
            r = await client.get("/api/v3/aggTrades", params={**window, "limit": 1000})
            assert [row["a"] for row in r.json()] == [t.agg_id for t in tape[:1000]]
            # endTime alone: the latest trades up to it
            end = tape[100].ts_ms
            r = await client.get(
                "/api/v3/aggTrades", params={"symbol": "BTCUSDT", "endTime": end, "limit": 3}
            )
            assert [row["a"] for row in r.json()] == [t.agg_id for t in tape[98:101]]
            r = await client.get("/api/v3/aggTrades", params={"symbol": "DOGEUSDT"})
            assert (r.status_code, r.json()) == (400, {"code": -1121, "msg": "Invalid symbol."})
            r = await client.get("/fapi/v1/aggTrades", params={"symbol": "BTCUSDT"})
            assert (r.status_code, r.json()["code"]) == (404, -1000)
            q = {"symbol": "BTCUSDT", "interval": "1s", "startTime": T0, "endTime": T0 + 59_999}
            r = await client.get("/api/v3/klines", params={**q, "limit": 1000})
            assert r.headers["x-mbx-used-weight-1m"] == "18"  # 4 aggTrades of 4, klines 2
            assert r.json() == klines(tape, 1_000, T0, T0 + 59_999, 1000)
            rows = r.json()  # 1 s bars from the first trade's second to the window's last
            assert [rows[0][0], rows[-1][0]] == [tape[0].ts_ms // 1000 * 1000, T0 + 59_000]
            assert len(rows) == (T0 + 60_000 - rows[0][0]) // 1000
            info = (await client.get("/api/v3/exchangeInfo")).json()
            assert [(s["symbol"], s["baseAsset"], s["quoteAsset"]) for s in info["symbols"]] == [
                ("BTCUSDT", "BTC", "USDT"),
                ("ETHUSDT", "ETH", "USDT"),
            ]
            assert info["rateLimits"][0]["limit"] == 6000
            assert (await client.get("/api/v3/time")).json() == {"serverTime": now}

    run(go())


def test_the_weight_limit_is_6000_a_minute():
    now = T0 + 120_000

    async def go():
        sim = ExchangeSim(spot(start_ms=T0, duration_s=60, rate=5), clock=lambda: now)
        async with sim, httpx.AsyncClient(base_url=sim.rest_url) as client:
            q = {"symbol": "BTCUSDT", "limit": 1}
            for _ in range(1500):
                r = await client.get("/api/v3/aggTrades", params=q)
            assert (r.status_code, r.headers["x-mbx-used-weight-1m"]) == (200, "6000")
            over = await client.get("/api/v3/aggTrades", params=q)
            assert (over.status_code, over.headers["retry-after"]) == (429, "1")
            assert over.json() == {"code": -1003, "msg": "Too many requests."}

    run(go())


def test_a_venue_the_simulator_cannot_speak_is_refused():
    with pytest.raises(ValidationError) as info:
        SimConfig(venue="nasdaq")
    assert str(info.value) == (
        "the simulator does not speak 'nasdaq': dialects exist for binance-spot, "
        "binance-usdm, bybit-linear, coinbase, kraken, okx-swap"
    )


def test_buff_sim_speaks_spot_when_asked_and_names_the_dialects_otherwise(capsys):
    import subprocess
    import sys

    from buff_dataplane.cli import main

    argv = [sys.executable, "-m", "buff_dataplane", "sim", "--venue", "binance-spot"]
    proc = subprocess.Popen([*argv, "--port", "0", "--duration", "20"], stdout=subprocess.PIPE)
    try:
        urls = json.loads(proc.stdout.readline())

        async def go():
            msgs = await _collect(f"{urls['ws']}/stream?streams=btcusdt@aggTrade", 1)
            async with httpx.AsyncClient(base_url=urls["rest"]) as client:
                info = (await client.get("/api/v3/exchangeInfo")).json()
            return msgs, info

        msgs, info = run(go())
        assert parse(msgs[0].encode()).kind == "aggTrade" and '"M":true' in msgs[0]
        assert info["rateLimits"][0]["limit"] == 6000
    finally:
        proc.terminate()
        proc.wait(10)
    assert main(["sim", "--venue", "nasdaq", "--port", "0", "--duration", "1"]) == 2
    assert "does not speak 'nasdaq'" in capsys.readouterr().err
