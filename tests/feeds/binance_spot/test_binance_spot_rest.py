"""The spot REST client against the simulator's spot dialect on loopback: real HTTP.

Time is driven, not waited for: the client sleeps on a fake clock it shares with the
simulator, so Retry-After and backoff cost nothing.
"""

import pytest

from buff_dataplane.core.errors import ValidationError
from buff_dataplane.feeds.binance_spot.rest import BinanceSpotRest
from buff_dataplane.feeds.rest_common import RestError, RestPolicy
from buff_dataplane.feeds.rest_registry import default_rest_endpoint, history_for, rest_venues
from buff_dataplane.sim.binance_spot import rest_agg_trade_item
from buff_dataplane.sim.server import ExchangeSim, SimConfig, klines
from tests.rest_sim import run, with_rest

T0 = 1_723_161_600_000  # tapes wholly in the past: REST serves all of them at once
SYM = "BTCUSDT"


def _cfg(**kw):
    base = {"venue": "binance-spot", "start_ms": T0, "duration_s": 120, "rate": 50}
    return SimConfig(**{**base, **kw})


def _with_rest(cfg, body, *, policy=None):
    return with_rest(BinanceSpotRest, cfg, body, policy=policy)


def test_paging_by_from_id_gives_the_tape_as_spot_items_at_weight_4():
    async def body(sim, rest, _):
        tape = sim.tapes[SYM]
        items, next_id, requests = [], tape[0].agg_id, []
        while True:
            page = await rest.agg_trades(SYM, from_id=next_id)
            requests.append(page.request)
            if not page.ids:
                break
            assert page.ids == tuple(range(next_id, next_id + len(page.ids)))
            items += page.items
            next_id = page.ids[-1] + 1
        assert items == [rest_agg_trade_item(t) for t in tape]
        assert items[0].endswith(b',"M":true}')
        assert requests[0] == f"/api/v3/aggTrades?symbol=BTCUSDT&fromId={tape[0].agg_id}&limit=1000"
        assert len(requests) == len(tape) // 1000 + 2
        assert rest.session.used_weight == 4 * len(requests)

    run(_with_rest(_cfg(), body))


def test_the_weight_budget_counts_4_per_page():
    async def body(sim, rest, clock):
        first = sim.tapes[SYM][0].agg_id
        for i in range(7):
            assert (await rest.agg_trades(SYM, from_id=first + i, limit=1)).ids == (first + i,)
        # a budget of 12 holds three pages of weight 4 a minute: two waits in seven pages
        assert (rest.stats.waits, rest.stats.retries, sim.rest_requests) == (2, 0, 7)

    async def limited(sim, rest, clock):
        rest.session.weight_limit_1m = 12
        return await body(sim, rest, clock)

    run(_with_rest(_cfg(), limited, policy=RestPolicy(weight_headroom=1.0)))


def test_a_window_longer_than_an_hour_and_a_start_alone_are_spot_requests():
    async def body(sim, rest, _):
        tape = sim.tapes[SYM]
        page = await rest.agg_trades(SYM, start_ms=T0, end_ms=T0 + 2 * 3_600_000, limit=20)
        assert page.ids == tuple(t.agg_id for t in tape[:20])
        assert page.request.endswith(f"startTime={T0}&endTime={T0 + 7_200_000}&limit=20")
        later = tape[30].ts_ms
        page = await rest.agg_trades(SYM, start_ms=later, limit=5)
        assert page.ids == tuple(t.agg_id for t in tape if t.ts_ms >= later)[:5]

    run(_with_rest(_cfg(duration_s=7_300, rate=0.05), body))


def test_429_is_retried_after_at_least_retry_after():
    async def body(sim, rest, clock):
        page = await rest.agg_trades(SYM, limit=10)
        assert len(page.ids) == 10 and sim.rest_requests == 3
        assert clock.slept[0] >= 1.0 and clock.slept[2] >= 1.0
        assert (rest.stats.retries, rest.stats.waits) == (2, 2)

    run(_with_rest(_cfg(faults="rest429:2"), body))


def test_the_venue_s_refusals_and_failures_have_their_error_shapes():
    async def refused(sim, rest, _):
        with pytest.raises(ValidationError) as info:
            await rest.agg_trades("DOGEUSDT", limit=3)
        assert str(info.value) == (
            "binance-spot rejected symbol DOGEUSDT: -1121 Invalid symbol. "
            "(GET /api/v3/aggTrades?symbol=DOGEUSDT&limit=3, HTTP 400)"
        )
        assert sim.rest_requests == 1

    run(_with_rest(_cfg(), refused))

    async def down(sim, rest, clock):
        with pytest.raises(RestError) as info:
            await rest.agg_trades(SYM, limit=3)
        assert (info.value.reason, info.value.attempts, info.value.exit_code) == (
            "server_error",
            3,
            4,
        )
        assert f"GET {sim.rest_url}/api/v3/aggTrades?symbol=BTCUSDT&limit=3" in str(info.value)
        assert "HTTP 503" in str(info.value) and len(clock.slept) == 2

    run(_with_rest(_cfg(faults="rest5xx:9"), down, policy=RestPolicy(max_attempts=3)))

    async def html(sim, rest, _):
        with pytest.raises(RestError) as info:
            await rest.agg_trades(SYM, limit=3)
        assert info.value.reason == "bad_response" and "text/html" in str(info.value)

    run(_with_rest(_cfg(faults="resthtml:9"), html, policy=RestPolicy(max_attempts=2)))


def test_requests_the_venue_would_refuse_are_refused_before_sending():
    async def body(sim, rest, _):
        with pytest.raises(ValidationError, match="not both"):
            await rest.agg_trades(SYM, from_id=1, start_ms=T0)
        with pytest.raises(ValidationError, match=r"1\.\.1000"):
            await rest.agg_trades(SYM, limit=1001)
        with pytest.raises(ValidationError, match="binance-spot symbol 'btc-usdt'"):
            await rest.agg_trades("btc-usdt")
        with pytest.raises(ValidationError, match="binance-spot has no '2m' klines"):
            await rest.klines(SYM, "2m", T0, T0 + 60_000)
        assert sim.rest_requests == 0

    run(_with_rest(_cfg(duration_s=5), body))


def test_klines_page_by_1000_including_1s_and_equal_the_venue_s_rows():
    async def body(sim, rest, _):
        got = await rest.klines(SYM, "1m", T0, T0 + 1_200 * 60_000)
        want = klines(sim.tapes[SYM], 60_000, T0, T0 + 1_200 * 60_000 - 1, 10_000)
        assert len(got) == len(want) == 1_200 and sim.rest_requests == 2
        assert [(k.open_time_ms, k.close, k.volume, k.trade_count) for k in got] == [
            (r[0], r[4], r[5], r[8]) for r in want
        ]
        seconds = await rest.klines(SYM, "1s", T0 + 60_000, T0 + 70_000)
        assert [k.open_time_ms for k in seconds] == [T0 + 60_000 + 1_000 * i for i in range(10)]
        assert rest.session.used_weight == 2 * 3

    run(_with_rest(_cfg(duration_s=1_200 * 60, rate=0.2), body))


def test_symbols_and_server_time():
    async def body(sim, rest, clock):
        assert await rest.symbols() == ["BTCUSDT", "ETHUSDT"]
        assert await rest.server_time() == clock.now()
        assert rest.session.used_weight == 20 + 1

    run(_with_rest(_cfg(symbols=("ETHUSDT", "BTCUSDT"), duration_s=5), body))


def test_the_registry_opens_the_spot_client():
    assert {"binance-spot", "binance-usdm"} <= set(rest_venues())
    assert default_rest_endpoint("binance-spot") == "https://api.binance.com"

    async def go():
        async with (
            ExchangeSim(_cfg(duration_s=5)) as sim,
            history_for("binance-spot", sim.rest_url) as rest,
        ):
            assert isinstance(rest, BinanceSpotRest)
            assert await rest.symbols() == ["BTCUSDT"]

    run(go())
