"""The okx-swap REST client against the simulator's OKX dialect on loopback: real HTTP.

Time is driven, not waited for: the client sleeps on a fake clock it shares with the
simulator, so backoff and the 2-second pacing cost nothing.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from buff_dataplane.core.errors import ValidationError
from buff_dataplane.feeds.okx_swap.parse import parse
from buff_dataplane.feeds.okx_swap.rest import OkxSwapRest, decode_candles, decode_trades
from buff_dataplane.feeds.rest_common import BadResponse, RestError, RestPolicy
from buff_dataplane.feeds.rest_registry import default_rest_endpoint, history_for
from buff_dataplane.sim import okx_swap as render
from buff_dataplane.sim.server import SimConfig
from tests.rest_sim import run, with_rest

T0 = 1_723_161_600_000  # tapes wholly in the past: REST serves all of them at once
INST = "BTC-USDT-SWAP"


def _cfg(**kw):
    base = {"venue": "okx-swap", "symbols": (INST,), "start_ms": T0, "duration_s": 120}
    return SimConfig(**{**base, "rate": 20.0, **kw})


def _with_rest(cfg, body, *, policy=None):
    return with_rest(OkxSwapRest, cfg, body, policy=policy or RestPolicy(base_backoff_s=0.5))


def _tape_matches(tape):
    """(id, item bytes) of every match of the tape, ascending."""
    out = []
    for t in tape:
        sizes = render.match_sizes(t)
        for n, i in enumerate(range(t.first_id, t.last_id + 1)):
            out.append((i, render.history_item(t, i, sizes[n]).encode()))
    return out


def test_paging_by_from_id_walks_the_after_cursor_and_gives_every_match_ascending():
    async def body(sim, rest, clock):
        tape = sim.tapes[INST]
        matches = _tape_matches(tape)
        next_id, items, requests = tape[0].first_id, [], []
        while True:
            page = await rest.trades(INST, from_id=next_id)
            if not page.ids:
                break
            requests.append(page.request)
            assert page.ids == tuple(range(next_id, next_id + len(page.ids)))
            items += page.items
            next_id = page.ids[-1] + 1
        assert items == [m[1] for m in matches]  # one item per match, exact bytes
        first = tape[0].first_id
        assert requests[:2] == [
            f"/api/v5/market/history-trades?instId={INST}&type=1&after={first + 100}&limit=100",
            f"/api/v5/market/history-trades?instId={INST}&type=1&after={first + 200}&limit=100",
        ]
        assert len(requests) == -(-len(matches) // 100) > 50
        # Many requests in the same 2 s: the pacer keeps them at 20 per 2 s.
        assert rest.stats.waits > 0 and rest.stats.sleep_s >= 2.0
        assert len(requests) / 20 * 2 - 2 <= rest.stats.sleep_s <= len(requests) / 20 * 2

    run(_with_rest(_cfg(), body))


def test_rest_items_of_a_print_of_several_matches_sum_to_the_print():
    async def body(sim, rest, _):
        tape = sim.tapes[INST]
        big = next(t for t in tape if t.last_id - t.first_id >= 2)
        page = await rest.trades(INST, from_id=big.first_id, limit=big.last_id - big.first_id + 1)
        trades = [parse(item).trades[0] for item in page.items]
        assert [t.trade_id for t in trades] == list(range(big.first_id, big.last_id + 1))
        assert sum(t.size for t in trades) == Decimal(big.qty)
        assert {(t.price, t.ts_ms) for t in trades} == {(Decimal(big.price), big.ts_ms)}

    run(_with_rest(_cfg(), body))


def test_a_time_window_finds_the_trade_before_it_then_pages_by_id():
    async def body(sim, rest, _):
        start, end = T0 + 60_000, T0 + 61_500
        page = await rest.trades(INST, start_ms=start, end_ms=end)
        want = [
            m for m in _tape_matches(sim.tapes[INST]) if start <= parse(m[1]).trades[0].ts_ms <= end
        ]
        assert list(page.items) == [m[1] for m in want][:100]
        assert all(start <= t <= end for t in page.ts_ms)
        before = max(t.last_id for t in sim.tapes[INST] if t.ts_ms < start)
        assert page.request.endswith(f"type=1&after={before + 1 + 100}&limit=100")
        assert rest.stats.requests == 2  # the probe (type=2, limit=1) and the page

    run(_with_rest(_cfg(), body))


def test_a_window_at_the_start_of_the_history_walks_down_from_its_end():
    async def body(sim, rest, _):
        page = await rest.trades(INST, start_ms=T0 - 60_000, end_ms=T0 + 20_000)
        first_ids = [m[0] for m in _tape_matches(sim.tapes[INST])][:100]
        assert list(page.ids) == first_ids
        assert rest.stats.requests > 3  # probe, then the cursor walked down several pages

    run(_with_rest(_cfg(), body))


def test_the_latest_page_is_ascending_and_ends_at_the_newest_match():
    async def body(sim, rest, _):
        page = await rest.trades(INST)
        assert page.ids[-1] == sim.tapes[INST][-1].last_id and len(page.ids) == 100
        assert list(page.ids) == sorted(page.ids)
        assert page.request == f"/api/v5/market/history-trades?instId={INST}&limit=100"

    run(_with_rest(_cfg(), body))


def test_a_429_with_50011_is_retried_and_then_succeeds():
    async def body(sim, rest, clock):
        page = await rest.trades(INST, from_id=sim.tapes[INST][0].first_id, limit=5)
        assert len(page.ids) == 5
        assert rest.stats.requests == 3 and rest.stats.retries == 2
        assert sim.rest_requests == 3
        assert clock.slept and min(clock.slept) > 0

    run(_with_rest(_cfg(faults="rest429:2"), body))


def test_a_50011_with_http_200_is_retried_as_a_bad_response_then_reported():
    async def body(sim, rest, _):
        assert await rest.server_time() > 0  # the simulator's one request of the minute
        with pytest.raises(RestError) as info:
            await rest.trades(INST, limit=5)
        assert info.value.reason == "bad_response" and info.value.attempts == 2
        assert "50011" in str(info.value) and "Rate limit reached" in str(info.value)

    policy = RestPolicy(max_attempts=2, base_backoff_s=0.1)
    run(_with_rest(_cfg(weight_limit_1m=1), body, policy=policy))


def test_a_503_is_retried_and_permanent_failure_is_reported_with_attempts():
    async def body(sim, rest, _):
        with pytest.raises(RestError) as info:
            await rest.server_time()
        assert info.value.reason == "server_error" and info.value.attempts == 3
        assert "50001" in str(info.value)

    run(_with_rest(_cfg(faults="rest5xx:3"), body, policy=RestPolicy(max_attempts=3)))


def test_an_unknown_instrument_is_a_validation_error_naming_the_venue_code():
    async def body(sim, rest, _):
        with pytest.raises(ValidationError) as info:
            await rest.trades("ETH-USDT-SWAP", limit=5)
        assert str(info.value) == (
            "okx-swap rejected instId ETH-USDT-SWAP: 51001 Instrument ID does not exist"
        )
        assert sim.rest_requests == 1  # not retried

    run(_with_rest(_cfg(), body))


def test_a_bad_parameter_is_refused_with_http_400_and_its_code():
    async def body(sim, rest, _):
        with pytest.raises(ValidationError) as info:
            await rest.session.get(
                f"/api/v5/market/history-trades?instId={INST}&limit=500",
                weight=1,
                decode=bytes,
                subject=f"instId {INST}",
            )
        assert "51000 Parameter limit error" in str(info.value) and "HTTP 400" in str(info.value)

    run(_with_rest(_cfg(), body))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"from_id": 5, "start_ms": 1, "end_ms": 2}, "not both"),
        ({"start_ms": 5, "end_ms": 1}, "inverted"),
        ({"start_ms": 5}, "both start_ms and end_ms"),
        ({"limit": 101}, "limit=101"),
        ({"from_id": -1}, "from_id=-1"),
    ],
)
def test_requests_the_venue_would_refuse_are_refused_before_sending(kwargs, message):
    async def body(sim, rest, _):
        with pytest.raises(ValidationError, match=message):
            await rest.trades(INST, **kwargs)
        with pytest.raises(ValidationError, match="swap id"):
            await rest.trades("BTCUSDT")
        assert sim.rest_requests == 0

    run(_with_rest(_cfg(), body))


def test_candles_page_newest_first_and_equal_the_tape_s_buckets():
    async def body(sim, rest, _):
        start, end = T0, T0 + 120_000
        klines = await rest.klines(INST, "1s", start, end)
        rows = render.candle_rows(sim.tapes[INST], 1_000, rest.session._now_ms())
        assert [k.open_time_ms for k in klines] == [int(r[0]) for r in rows]
        assert len(klines) > 100  # two pages of 300 at most... of 1 s candles
        assert [(k.open, k.high, k.low, k.close, k.volume) for k in klines] == [
            tuple(r[1:6]) for r in rows
        ]
        assert all(k.quote_volume is None and k.trade_count is None for k in klines)
        one = await rest.klines(INST, "1m", start, end)
        vol = sum(Decimal(t.qty) for t in sim.tapes[INST] if t.ts_ms < T0 + 60_000)
        assert one[0].open_time_ms == T0 and Decimal(one[0].volume) == vol
        assert one[0].open == sim.tapes[INST][0].price and len(one) == 2

    run(_with_rest(_cfg(), body))


def test_candles_older_than_the_candles_horizon_come_from_history_candles():
    async def body(sim, rest, clock):
        clock.ms = T0 + 1_500 * 1_000  # 1,500 s later: /candles keeps the latest 1,440 1s rows
        klines = await rest.klines(INST, "1s", T0, T0 + 120_000)
        assert klines and klines[0].open_time_ms == T0
        assert rest.stats.requests >= 2

    run(_with_rest(_cfg(), body))


def test_a_timeframe_without_candles_is_refused():
    async def body(sim, rest, _):
        with pytest.raises(ValidationError, match="no '8h' candles"):
            await rest.klines(INST, "8h", T0, T0 + 1)

    run(_with_rest(_cfg(), body))


def test_symbols_server_time_and_the_registry():
    async def body(sim, rest, clock):
        assert await rest.symbols() == [INST]
        assert await rest.server_time() == clock.ms

    run(_with_rest(_cfg(), body))
    assert default_rest_endpoint("okx-swap") == "https://www.okx.com"

    async def opened():
        async with history_for("okx-swap", "http://127.0.0.1:9") as client:
            return type(client).__name__, client.paging, client.page_limit

    assert run(opened()) == ("OkxSwapRest", "id", 100)


def test_a_page_out_of_order_or_past_its_cursor_is_a_bad_response():
    item = b'{"instId":"BTC-USDT-SWAP","side":"sell","sz":"3","source":"0","px":"2.5","tradeId":"%d","ts":"1654161646974"}'  # noqa: E501
    body = b'{"code":"0","msg":"","data":[' + item % 7 + b"," + item % 8 + b"]}"
    with pytest.raises(BadResponse, match="not newest first"):
        decode_trades(body, INST, before_id=None, before_ms=None, limit=100)
    body = b'{"code":"0","msg":"","data":[' + item % 9 + b"]}"
    with pytest.raises(BadResponse, match="not before after=9"):
        decode_trades(body, INST, before_id=9, before_ms=None, limit=100)
    with pytest.raises(BadResponse, match="names BTC-USDT-SWAP"):
        decode_trades(body, "ETH-USDT-SWAP", before_id=None, before_ms=None, limit=100)
    with pytest.raises(BadResponse, match="not OKX's envelope"):
        decode_trades(b"<html>", INST, before_id=None, before_ms=None, limit=100)
    with pytest.raises(BadResponse, match="candles not newest first"):
        row = '["%d","1","1","1","1","1","0.01","1","1"]'
        decode_candles(('{"code":"0","data":[' + row % 1 + "," + row % 2 + "]}").encode(), 1)
