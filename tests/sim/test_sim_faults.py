"""The simulator's repairable faults on a running server: drop (a WS hole REST can fill)
and restconflict (REST disagrees with the WebSocket about one trade)."""

import asyncio
from dataclasses import replace
from decimal import Decimal

import httpx
import pytest
from websockets.asyncio.client import connect

from buff_dataplane.core.errors import ValidationError
from buff_dataplane.feeds.binance_usdm.parse import parse
from buff_dataplane.feeds.rest_common import compact_items
from buff_dataplane.sim.binance_usdm import rest_agg_trade_item
from buff_dataplane.sim.faults import parse_faults
from buff_dataplane.sim.server import ExchangeSim, SimConfig


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


async def _trade_ids(sim, n):
    """The aggregate ids of the first ``n`` trade messages of one new connection."""
    ids = []
    async with connect(f"{sim.ws_url}/market/stream?streams=btcusdt@aggTrade") as ws:
        async for message in ws:
            ids.append(parse(message.encode()).trades[0].trade_id)
            if len(ids) >= n:
                return ids
    return ids


async def _rest_items(sim, from_id, limit):
    async with httpx.AsyncClient(base_url=sim.rest_url) as client:
        r = await client.get(
            "/fapi/v1/aggTrades", params={"symbol": "BTCUSDT", "fromId": from_id, "limit": limit}
        )
    assert r.status_code == 200
    return [item["a"] for item in r.json()], r


def test_drop_skips_n_trades_on_the_websocket_and_rest_still_serves_them():
    async def go():
        async with ExchangeSim(SimConfig(rate=400, duration_s=60, faults="drop:7@10")) as sim:
            ids = await _trade_ids(sim, 30)
            assert ids[:10] == list(range(ids[0], ids[0] + 10))
            assert ids[10] == ids[9] + 8  # a hole of exactly 7 ids, silently
            assert ids[10:] == list(range(ids[10], ids[10] + 20))
            hole = set(range(ids[9] + 1, ids[10]))
            assert not hole & set(sim.sent_ids["BTCUSDT"])
            served, _ = await _rest_items(sim, ids[9] + 1, 7)
            assert served == sorted(hole)
            again = await _trade_ids(sim, 30)  # fired once: a second connection is whole
            assert again == list(range(again[0], again[0] + 30))

    run(go())


def test_drop_with_a_star_fires_on_every_connection():
    async def go():
        async with ExchangeSim(SimConfig(rate=400, duration_s=60, faults="drop:3@5*")) as sim:
            for _ in range(2):
                ids = await _trade_ids(sim, 12)
                assert ids[5] == ids[4] + 4

    run(go())


def test_restconflict_serves_the_kth_trade_with_another_quantity_every_time():
    async def go():
        cfg = SimConfig(rate=400, duration_s=60, faults="restconflict:200")
        async with ExchangeSim(cfg) as sim:
            tape = sim.tapes["BTCUSDT"]
            target = tape[199]
            async with connect(f"{sim.ws_url}/market/stream?streams=btcusdt@aggTrade") as ws:
                async for message in ws:
                    trade = parse(message.encode()).trades[0]
                    if trade.trade_id >= target.agg_id:
                        break
            assert trade.trade_id == target.agg_id  # the WebSocket sends the true trade
            assert trade.size == Decimal(target.qty)
            changed = replace(target, qty=str(Decimal(target.qty) + Decimal("0.001")))
            while len(sim.happened("BTCUSDT")) < 250:  # REST serves what has happened
                await asyncio.sleep(0.05)
            for _ in range(2):
                served, response = await _rest_items(sim, tape[150].agg_id, 100)
                assert served == [t.agg_id for t in tape[150:250]]
                items = compact_items(response.content)
                assert items[49] == rest_agg_trade_item(changed)
                assert items[:49] + items[50:] == [
                    rest_agg_trade_item(t) for t in tape[150:199] + tape[200:250]
                ]

    run(go())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("drop:5", "needs @N"),
        ("drop@5", "needs :N"),
        ("restconflict", "needs :N"),
        ("restconflict:0", "K >= 1"),
        ("restconflict@3", "needs :N"),
    ],
)
def test_bad_drop_and_restconflict_plans_are_refused(text, message):
    with pytest.raises(ValidationError, match=message):
        parse_faults(text)


def test_good_drop_and_restconflict_plans_parse():
    plan = parse_faults("drop:20@300*,restconflict:3")
    [drop] = plan.ws
    assert (drop.name, drop.arg, drop.at, drop.every) == ("drop", 20, 300, True)
    assert plan.rest == {"restconflict": 3}
