"""The Coinbase REST client against the simulator's Coinbase dialect on loopback: real HTTP.

Time is driven, not waited for: the client sleeps on a fake clock it shares with the
simulator, so backoff and the request bucket cost nothing.
"""

from decimal import Decimal

import pytest

from buff_dataplane.core.errors import ValidationError
from buff_dataplane.feeds.coinbase.parse import parse
from buff_dataplane.feeds.coinbase.rest import CoinbaseRest
from buff_dataplane.feeds.rest_common import KlineRules, RestError, RestPolicy
from buff_dataplane.feeds.rest_registry import default_rest_endpoint, history_for
from buff_dataplane.sim.coinbase import rest_trade_item
from buff_dataplane.sim.server import ExchangeSim, SimConfig
from tests.rest_sim import run, with_rest

T0 = 1_723_161_600_000  # tapes wholly in the past: REST serves all of them at once
SYM = "BTC-USD"


def _cfg(**kw):
    base = {"venue": "coinbase", "symbols": (SYM,), "start_ms": T0, "duration_s": 120}
    return SimConfig(**{**base, "rate": 30, **kw})


def _with_rest(cfg, body, *, policy=None):
    return with_rest(CoinbaseRest, cfg, body, policy=policy)


def test_paging_by_id_walks_the_after_cursor_and_answers_ascending():
    async def body(sim, rest, _):
        tape = sim.tapes[SYM]
        items, next_id, requests = [], tape[0].agg_id, []
        while True:
            page = await rest.trades(SYM, from_id=next_id)
            requests.append(page.request)
            if not page.ids:
                break
            assert page.ids == tuple(range(next_id, next_id + len(page.ids)))
            assert list(page.ts_ms) == sorted(page.ts_ms)
            items += page.items
            next_id = page.ids[-1] + 1
        assert len(tape) > 3_000 and items == [rest_trade_item(t) for t in tape]
        first = tape[0].agg_id
        assert requests[:2] == [
            f"/products/BTC-USD/trades?after={first + 1000}&limit=1000",
            f"/products/BTC-USD/trades?after={first + 2000}&limit=1000",
        ]
        assert len(requests) == len(tape) // 1000 + 2
        assert {parse(i).kind for i in items} == {"rest_trade"}

    run(_with_rest(_cfg(), body))


def test_a_page_starts_at_from_id_ends_at_the_latest_trade_and_none_past_it():
    async def body(sim, rest, _):
        tape = sim.tapes[SYM]
        last = tape[-1].agg_id
        page = await rest.trades(SYM, from_id=last - 4, limit=10)
        assert page.ids == tuple(range(last - 4, last + 1))
        assert page.request == f"/products/BTC-USD/trades?after={last + 6}&limit=10"
        assert (await rest.trades(SYM, from_id=last + 1, limit=10)).ids == ()
        latest = await rest.trades(SYM, limit=3)
        assert latest.ids == (last - 2, last - 1, last)
        assert latest.request == "/products/BTC-USD/trades?limit=3"

    run(_with_rest(_cfg(), body))


def test_time_paging_is_refused_before_any_request():
    async def body(sim, rest, _):
        with pytest.raises(ValidationError) as info:
            await rest.trades(SYM, start_ms=T0, end_ms=T0 + 60_000)
        assert str(info.value) == (
            "coinbase REST trades page by trade id only (cursor `after`), not by time: "
            "a gap without trade ids cannot be located in the venue's history"
        )
        with pytest.raises(ValidationError, match=r"1\.\.1000"):
            await rest.trades(SYM, limit=1001)
        with pytest.raises(ValidationError, match="not a product id like 'BTC-USD'"):
            await rest.trades("BTCUSD")
        with pytest.raises(ValidationError, match="coinbase has no '3m' candles"):
            await rest.klines(SYM, "3m", T0, T0 + 180_000)
        assert sim.rest_requests == 0

    run(_with_rest(_cfg(duration_s=5), body))


def test_429_is_retried_with_backoff_and_the_venue_s_message():
    async def body(sim, rest, clock):
        page = await rest.trades(SYM, limit=10)
        assert len(page.ids) == 10 and sim.rest_requests == 3
        assert len(clock.slept) == 2 and rest.stats.retries == 2
        assert clock.slept[1] > clock.slept[0] > 0  # no Retry-After: exponential backoff

    run(_with_rest(_cfg(faults="rest429:2"), body, policy=RestPolicy(base_backoff_s=0.5)))

    async def gives_up(sim, rest, _):
        with pytest.raises(RestError) as info:
            await rest.trades(SYM, limit=10)
        assert info.value.reason == "rate_limited" and info.value.attempts == 2
        assert 'HTTP 429 \'{"message":"Rate limit exceeded"}\'' in str(info.value)

    run(_with_rest(_cfg(faults="rest429:5"), gives_up, policy=RestPolicy(max_attempts=2)))


def test_the_venue_s_refusals_and_failures_have_their_error_shapes():
    async def refused(sim, rest, _):
        with pytest.raises(ValidationError) as info:
            await rest.trades("DOGE-USD", limit=3)
        assert str(info.value) == (
            "coinbase rejected product DOGE-USD: NotFound "
            "(GET /products/DOGE-USD/trades?limit=3, HTTP 404)"
        )
        assert sim.rest_requests == 1

    run(_with_rest(_cfg(), refused))

    async def down(sim, rest, clock):
        with pytest.raises(RestError) as info:
            await rest.trades(SYM, limit=3)
        assert (info.value.reason, info.value.attempts, info.value.exit_code) == (
            "server_error",
            3,
            4,
        )
        assert '{"message":"Service Unavailable"}' in str(info.value)

    run(_with_rest(_cfg(faults="rest5xx:9"), down, policy=RestPolicy(max_attempts=3)))

    async def html(sim, rest, _):
        with pytest.raises(RestError) as info:
            await rest.trades(SYM, limit=3)
        assert info.value.reason == "bad_response" and "text/html" in str(info.value)

    run(_with_rest(_cfg(faults="resthtml:9"), html, policy=RestPolicy(max_attempts=2)))


def test_a_page_cut_short_is_a_bad_response_not_a_hole():
    async def body(sim, rest, _):
        first = sim.tapes[SYM][0].agg_id
        with pytest.raises(RestError) as info:
            await rest.trades(SYM, from_id=first + 10, limit=10)
        assert info.value.reason == "bad_response"
        assert "the page was cut short" in str(info.value)
        # the next answer is whole
        page = await rest.trades(SYM, from_id=first + 10, limit=10)
        assert page.ids == tuple(range(first + 10, first + 20))

    run(_with_rest(_cfg(faults="resttruncate:1"), body))


def test_the_client_keeps_to_the_venue_s_10_per_second_bucket():
    async def body(sim, rest, clock):
        for _ in range(25):
            await rest.trades(SYM, limit=1)
        # 15 at once (the burst), then one per 0.1 s
        assert rest.stats.waits == 10 and sim.rest_requests == 25
        assert clock.slept == pytest.approx([0.1] * 10, abs=0.002)

    run(_with_rest(_cfg(duration_s=5), body))


def test_candles_page_by_300_leave_empty_buckets_out_and_equal_the_tape():
    cfg = _cfg(duration_s=600 * 60, rate=0.02)  # about 1.2 trades a minute: many empty

    async def body(sim, rest, _):
        got = await rest.klines(SYM, "1m", T0, T0 + 600 * 60_000)
        tape = sim.tapes[SYM]
        minutes = sorted({t.ts_ms - t.ts_ms % 60_000 for t in tape})
        assert 300 < len(minutes) < 500  # the others had no trade: no candle
        assert [k.open_time_ms for k in got] == minutes
        assert sim.rest_requests == 2  # 600 buckets, 300 a request
        for k in got:
            rows = [t for t in tape if k.open_time_ms <= t.ts_ms < k.open_time_ms + 60_000]
            prices = [Decimal(t.price) for t in rows]
            assert (Decimal(k.open), Decimal(k.close)) == (prices[0], prices[-1])
            assert (Decimal(k.low), Decimal(k.high)) == (min(prices), max(prices))
            assert Decimal(k.volume) == sum(Decimal(t.qty) for t in rows)
            assert (k.quote_volume, k.trade_count, k.taker_buy_volume) == (None, None, None)
        assert rest.kline_rules == KlineRules(omits_empty=True)
        five = await rest.klines(SYM, "5m", T0 + 60_000, T0 + 16 * 60_000)
        assert [k.open_time_ms for k in five] == [
            b
            for b in (T0 + 300_000 * i for i in (1, 2, 3))
            if any(b <= t.ts_ms < b + 300_000 for t in tape)
        ]

    run(_with_rest(cfg, body))


def test_symbols_and_server_time():
    async def body(sim, rest, clock):
        assert await rest.symbols() == ["BTC-USD", "ETH-USD"]
        assert await rest.server_time() == clock.now()

    run(_with_rest(_cfg(symbols=("ETH-USD", SYM), duration_s=5), body))


def test_the_registry_opens_the_coinbase_client():
    assert default_rest_endpoint("coinbase") == "https://api.exchange.coinbase.com"

    async def go():
        async with (
            ExchangeSim(_cfg(duration_s=5)) as sim,
            history_for("coinbase", sim.rest_url) as rest,
        ):
            assert isinstance(rest, CoinbaseRest)
            assert (rest.paging, rest.page_limit) == ("id", 1000)
            assert await rest.symbols() == [SYM]

    run(go())
