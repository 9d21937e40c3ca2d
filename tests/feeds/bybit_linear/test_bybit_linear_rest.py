"""The Bybit linear REST client against the simulator's Bybit dialect on loopback: real HTTP.

Time is driven, not waited for: the client sleeps on a fake clock it shares with the
simulator, so Retry-After and backoff cost nothing.
"""

import itertools
from typing import ClassVar

import pytest

from buff_dataplane.core.errors import ValidationError
from buff_dataplane.feeds.bybit_linear.parse import parse
from buff_dataplane.feeds.bybit_linear.rest import BybitLinearRest, open_envelope
from buff_dataplane.feeds.rest_common import KlineRules, RestError, VenueBusy
from buff_dataplane.feeds.rest_registry import default_rest_endpoint, history_for
from buff_dataplane.sim.bybit_linear import exec_int, klines, recent_trade_item
from buff_dataplane.sim.server import ExchangeSim, SimConfig
from tests.rest_sim import run, with_rest

T0 = 1_723_161_600_000  # tapes wholly in the past: REST serves all of them at once
SYM = "BTCUSDT"


def _cfg(**kw):
    base = {"venue": "bybit-linear", "start_ms": T0, "duration_s": 120, "rate": 20}
    return SimConfig(**{**base, **kw})


def _with_rest(cfg, body, *, policy=None, cls=BybitLinearRest, **kw):
    return with_rest(cls, cfg, body, policy=policy, **kw)


def test_the_client_states_the_venue_facts_the_contract_needs():
    assert BybitLinearRest.paging == "recent" and BybitLinearRest.page_limit == 1000
    assert BybitLinearRest.kline_rules == KlineRules(open_is_previous_close=True)
    assert BybitLinearRest.retention_ms >= 100 * 365 * 86_400_000  # the page decides
    assert default_rest_endpoint("bybit-linear") == "https://api.bybit.com"
    assert "1m" in BybitLinearRest.intervals and "1s" not in BybitLinearRest.intervals


def test_the_recent_page_is_the_latest_trades_ascending_as_parseable_items():
    async def body(sim, rest, _):
        page = await rest.trades(SYM)
        small = await rest.trades(SYM, limit=3)
        return page, small, sim.tapes[SYM], sim.rest_requests

    page, small, tape, requests = run(_with_rest(_cfg(), body))
    assert len(tape) > 2_000 and requests == 2
    latest = tape[-1000:]
    assert page.request == "/v5/market/recent-trade?category=linear&symbol=BTCUSDT&limit=1000"
    assert list(page.ids) == [exec_int(t) for t in latest]
    assert list(page.ts_ms) == [t.ts_ms for t in latest]
    assert list(page.items) == [recent_trade_item(t).encode() for t in latest]
    assert {parse(i).kind for i in page.items} == {"recentTrade"}
    assert list(small.ids) == [exec_int(t) for t in tape[-3:]]


def test_history_by_id_or_time_is_refused_before_any_request():
    async def body(sim, rest, _):
        for kw in ({"from_id": 1}, {"start_ms": T0, "end_ms": T0 + 1}, {"limit": 1001}):
            with pytest.raises(ValidationError) as info:
                await rest.trades(SYM, **kw)
            messages.append(str(info.value))
        with pytest.raises(ValidationError, match="not a venue symbol"):
            await rest.trades("btc/usdt")
        return sim.rest_requests

    messages = []
    assert run(_with_rest(_cfg(), body)) == 0
    assert "serves only its latest trades" in messages[0] == messages[1]
    assert messages[2] == "recent-trade limit=1001: expected 1..1000"


def test_a_symbol_the_venue_does_not_list_is_its_retcode_as_a_validation_error():
    async def body(sim, rest, _):
        with pytest.raises(ValidationError) as info:
            await rest.trades("NOPEUSDT")
        return str(info.value), rest.stats.requests

    message, requests = run(_with_rest(_cfg(), body))
    assert message == (
        "bybit-linear rejected symbol NOPEUSDT: 10001 params error: symbol or category invalid "
        "(GET /v5/market/recent-trade?category=linear&symbol=NOPEUSDT&limit=1000)"
    )
    assert requests == 1  # never retried


def test_429_is_retried_after_retry_after_then_the_page_comes():
    async def body(sim, rest, clock):
        page = await rest.trades(SYM, limit=10)
        return page, rest.stats, clock.slept, sim.rest_requests

    page, stats, slept, requests = run(_with_rest(_cfg(faults="rest429:2"), body))
    assert len(page.ids) == 10 and requests == 3
    assert (stats.requests, stats.retries) == (3, 2)
    assert all(s >= 1.0 for s in slept[:2])  # Retry-After: 1


def test_5xx_and_an_html_page_are_retried():
    async def body(sim, rest, _):
        page = await rest.trades(SYM, limit=10)
        return page, rest.stats

    page, stats = run(_with_rest(_cfg(faults="rest5xx:1,resthtml:1"), body))
    assert len(page.ids) == 10 and (stats.requests, stats.retries) == (3, 2)


def test_403_ip_ban_ends_the_call_at_once_as_banned():
    async def body(sim, rest, _):
        with pytest.raises(RestError) as info:
            await rest.trades(SYM)
        return info.value, sim.rest_requests

    exc, requests = run(_with_rest(_cfg(faults="rest418:1"), body))
    assert (exc.reason, exc.attempts, requests) == ("banned", 1, 1)
    assert "HTTP 403 (banned) 'access too frequent'" in str(exc)


def test_past_the_simulated_ip_limit_the_venue_answers_403():
    async def body(sim, rest, _):
        for _ in range(3):
            await rest.server_time()
        with pytest.raises(RestError) as info:
            await rest.server_time()
        return info.value

    exc = run(_with_rest(_cfg(weight_limit_1m=3), body, weight_limit_1m=100))
    assert exc.reason == "banned"


def test_a_retcode_that_means_busy_is_retried_any_other_is_a_rejection():
    busy = b'{"retCode":10006,"retMsg":"Too many visits!","result":{},"retExtInfo":{},"time":1}'
    with pytest.raises(VenueBusy) as info:
        open_envelope(busy, None, "/v5/market/time")
    assert info.value.reason == "rate_limited"
    down = busy.replace(b"10006", b"10016")
    with pytest.raises(VenueBusy) as info:
        open_envelope(down, None, "/v5/market/time")
    assert info.value.reason == "server_error"
    bad = busy.replace(b"10006", b"10029").replace(b"Too many visits!", b"symbol invalid")
    with pytest.raises(ValidationError, match="rejected: 10029 symbol invalid"):
        open_envelope(bad, None, "/v5/market/time")


def test_a_path_that_is_not_the_api_is_a_rest_error_not_retried():
    async def body(sim, rest, _):
        rest.session.base_url += "/nope"
        with pytest.raises(RestError) as info:
            await rest.server_time()
        return info.value

    exc = run(_with_rest(_cfg(), body))
    assert (exc.reason, exc.attempts) == ("bad_response", 1)
    assert "HTTP 404" in str(exc)


class SmallPages(BybitLinearRest):
    klines_limit: ClassVar[int] = 50
    instruments_limit: ClassVar[int] = 2


def test_klines_walk_back_in_pages_and_open_at_the_previous_close():
    cfg = _cfg(duration_s=7_200, rate=0.5)
    start, end = T0 + 600_000, T0 + 6_600_000  # 100 minutes: two pages of 50, newest first

    async def body(sim, rest, _):
        got = await rest.klines(SYM, "1m", start, end)
        return got, sim.tapes[SYM], rest.stats.requests

    got, tape, requests = run(_with_rest(cfg, body, cls=SmallPages))
    assert requests == 2
    assert [k.open_time_ms for k in got] == list(range(start, end, 60_000))
    want = list(reversed(klines(tape, 60_000, start, end - 1, 1000)))
    assert [[str(k.open_time_ms), k.open, k.high, k.low, k.close] for k in got] == [
        w[:5] for w in want
    ]
    assert [(k.volume, k.quote_volume) for k in got] == [(w[5], w[6]) for w in want]
    for prev, cur in itertools.pairwise(got):
        assert cur.open == prev.close
    first = got[0]
    before = [t for t in tape if t.ts_ms < start]
    assert first.open == before[-1].price
    assert first.close_time_ms == start + 59_999 and first.trade_count is None
    assert first.taker_buy_volume is None


def test_an_interval_the_venue_has_not_is_refused():
    async def body(sim, rest, _):
        with pytest.raises(ValidationError, match="no '1s' klines"):
            await rest.klines(SYM, "1s", T0, T0 + 60_000)
        return sim.rest_requests

    assert run(_with_rest(_cfg(), body)) == 0


def test_symbols_follow_the_instruments_cursor_and_the_clock_is_the_venues():
    cfg = _cfg(symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDC", "DOGEUSDT"), rate=1)

    async def body(sim, rest, clock):
        return await rest.symbols(), await rest.server_time(), clock.now(), rest.stats

    symbols, venue_now, now, stats = run(_with_rest(cfg, body, cls=SmallPages))
    assert symbols == ["BTCUSDT", "DOGEUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDC"]
    assert stats.requests == 4  # three pages of two, then the clock
    assert venue_now == now


def test_history_for_opens_the_client_of_the_venue():
    async def go():
        async with ExchangeSim(_cfg()) as sim, history_for("bybit-linear", sim.rest_url) as rest:
            return type(rest), len((await rest.trades(SYM, limit=5)).ids)

    assert run(go()) == (BybitLinearRest, 5)
