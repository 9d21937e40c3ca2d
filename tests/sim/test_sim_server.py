"""The exchange simulator on loopback: real sockets, the venue's protocol, faults."""

import asyncio
import json
from decimal import Decimal

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from buff_dataplane.core.errors import ValidationError
from buff_dataplane.feeds.binance_usdm.parse import parse
from buff_dataplane.sim.faults import parse_faults
from buff_dataplane.sim.server import ExchangeSim, SimConfig


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


async def _collect(sim, streams, n, subscribe=None):
    url = f"{sim.ws_url}/market/stream?streams={'/'.join(streams)}"
    out = []
    try:
        async with connect(url) as ws:
            if subscribe:
                await ws.send(json.dumps({"method": "SUBSCRIBE", "params": subscribe, "id": 7}))
            async for message in ws:
                out.append(message)
                if len(out) >= n:
                    break
    except ConnectionClosed as exc:
        out.append(exc)
    return out


def test_trades_stream_in_tape_order_and_parse_as_the_venue_s():
    async def go():
        async with ExchangeSim(SimConfig(rate=300, duration_s=60)) as sim:
            msgs = await _collect(sim, ["btcusdt@aggTrade"], 50)
            ids = [parse(m.encode()).trades[0].trade_id for m in msgs]
            assert ids == sorted(ids) and ids == list(range(ids[0], ids[0] + 50))
            tape = {t.agg_id: t for t in sim.tapes["BTCUSDT"]}
            first = parse(msgs[0].encode()).trades[0]
            assert first.price == Decimal(tape[first.trade_id].price)

    run(go())


def test_subscribe_is_acknowledged_and_adds_the_stream():
    async def go():
        async with ExchangeSim(SimConfig(rate=300, duration_s=60)) as sim:
            msgs = await _collect(sim, ["btcusdt@aggTrade"], 40, subscribe=["btcusdt@bookTicker"])
            assert json.loads(msgs[0]) == {"result": None, "id": 7} or any(
                json.loads(m) == {"result": None, "id": 7} for m in msgs
            )
            kinds = {parse(m.encode()).kind for m in msgs if '"result"' not in m}
            assert {"aggTrade", "bookTicker"} <= kinds

    run(go())


def test_close_malformed_and_conflict_faults():
    async def go():
        plan = "malformed@3,conflict@5,close:1006@10"
        async with ExchangeSim(SimConfig(rate=300, duration_s=60, faults=plan)) as sim:
            msgs = await _collect(sim, ["btcusdt@aggTrade"], 1000)
            assert isinstance(msgs[-1], ConnectionClosed)  # no close frame: an abnormal close
            texts = msgs[:-1]
            assert len(texts) == 12  # 10 trades, one malformed, one conflicting copy
            assert not texts[3].endswith("}}")
            a, b = parse(texts[5].encode()).trades[0], parse(texts[6].encode()).trades[0]
            assert a.trade_id == b.trade_id and a.size != b.size

    run(go())


def test_rest_pages_by_from_id_match_the_tape_and_count_weight():
    async def go():
        async with ExchangeSim(SimConfig(rate=500, duration_s=60)) as sim:
            await asyncio.sleep(0.5)
            async with httpx.AsyncClient(base_url=sim.rest_url) as client:
                happened = sim.happened("BTCUSDT")
                first = happened[0].agg_id
                r = await client.get(
                    "/fapi/v1/aggTrades",
                    params={"symbol": "BTCUSDT", "fromId": first, "limit": 100},
                )
                assert r.status_code == 200
                assert r.headers["x-mbx-used-weight-1m"] == "20"
                ids = [row["a"] for row in r.json()]
                assert ids == list(range(first, first + 100))
                r = await client.get(
                    "/fapi/v1/aggTrades",
                    params={"symbol": "BTCUSDT", "startTime": 0, "endTime": 3_600_000},
                )
                assert (r.status_code, r.json()["code"]) == (400, -1127)
                r = await client.get("/fapi/v1/aggTrades", params={"symbol": "DOGEUSDT"})
                assert (r.status_code, r.json()["code"]) == (400, -1121)

    run(go())


def test_weight_limit_gives_429_with_retry_after_and_rest_faults_fire_in_order():
    async def go():
        cfg = SimConfig(
            rate=100, duration_s=60, weight_limit_1m=60, faults="rest5xx:1,rest418:1,resthtml:1"
        )
        async with ExchangeSim(cfg) as sim:
            async with httpx.AsyncClient(base_url=sim.rest_url) as client:
                q = {"symbol": "BTCUSDT", "limit": 10}
                codes = [(await client.get("/fapi/v1/aggTrades", params=q)) for _ in range(7)]
            assert [r.status_code for r in codes[:3]] == [200, 418, 503]
            assert codes[0].headers["content-type"] == "text/html"
            assert codes[1].headers["retry-after"] == "1"
            assert [r.status_code for r in codes[3:]] == [200, 200, 200, 429]

    run(go())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("close@5", "close"),
        ("close:1000", "needs @N"),
        ("late@3", "needs :N"),
        ("explode@1", "unknown fault 'explode'"),
        ("rest429", "needs :N"),
        ("close:x@1", "NAME"),
    ],
)
def test_bad_fault_plans_are_refused(text, message):
    if text == "close@5":
        assert parse_faults(text).ws[0].at == 5
        return
    with pytest.raises(ValidationError, match=message):
        parse_faults(text)


def test_simulator_klines_equal_canonical_bars_of_the_same_tape():
    from buff_dataplane.core.bars import TradeEvent, build_bars
    from buff_dataplane.sim.binance_usdm import agg_trade_message
    from buff_dataplane.sim.server import klines
    from buff_dataplane.sim.tape import TapeSpec, generate

    start = 1_723_161_600_000
    tape = generate(
        TapeSpec("BTCUSDT", start, 10 * 60_000, seed=3, rate_per_s=8, quiet_minutes=(4,))
    )
    events = [
        TradeEvent(
            ingest_seq=i + 1,
            ts_ingest_ms=t.ts_ms,
            payload_sha256=b"\0" * 32,
            source="ws",
            segment="s",
            trade=parse(agg_trade_message(t)).trades[0],
        )
        for i, t in enumerate(tape)
    ]
    bars = build_bars(
        events,
        venue="binance-usdm",
        symbol="BTC-USDT-PERP",
        timeframe="1m",
        allowed_lateness_ms=2000,
        apply_late=False,
        window=(start, start + 10 * 60_000),
    ).bars
    rows = {r[0]: r for r in klines(tape, 60_000, start, start + 10 * 60_000, 1500)}
    assert len(bars) == len(rows) == 10
    assert [b.status for b in bars].count("EMPTY") == 1
    for bar in bars:
        row = rows[bar.open_time_ms]
        ours = [
            bar.open,
            bar.high,
            bar.low,
            bar.close,
            bar.volume,
            bar.quote_volume,
            bar.taker_buy_volume,
            bar.taker_buy_quote_volume,
        ]
        theirs = [row[1], row[2], row[3], row[4], row[5], row[7], row[9], row[10]]
        assert [Decimal(x) for x in ours] == [Decimal(x) for x in theirs], bar.open_time_ms
        assert (bar.trade_count, bar.close_time_ms) == (row[8], row[6])
