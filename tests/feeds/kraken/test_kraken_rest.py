"""Kraken REST client against the simulator's Kraken dialect on loopback: Trades paged by
``since`` (time), errors inside an HTTP 200, throttling with retry, OHLC, pair names."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import httpx
import pytest

from buff_dataplane.core.errors import ValidationError
from buff_dataplane.feeds.kraken.parse import parse
from buff_dataplane.feeds.kraken.rest import KLINE_RULES, REST_PAIRS, KrakenRest
from buff_dataplane.feeds.rest_common import RestError, RestPolicy
from buff_dataplane.feeds.rest_registry import default_rest_endpoint, rest_venues
from buff_dataplane.sim.server import ExchangeSim, SimConfig

T0 = 1_723_161_600_000  # 2024-08-09T00:00Z
FAST = RestPolicy(max_attempts=3, base_backoff_s=0.01, max_backoff_s=0.05)


def run(body, *, faults="", symbols=("BTC/USD",), rate=20.0, duration_s=600, start_ms=T0,
        policy=FAST, weight=None, **client_kw):  # fmt: skip
    """``body(rest, sim)`` against a simulator whose tape is wholly in the past."""
    cfg = SimConfig(
        venue="kraken",
        symbols=symbols,
        start_ms=start_ms,
        duration_s=duration_s,
        rate=rate,
        faults=faults,
        weight_limit_1m=weight,
    )

    async def go():
        async with ExchangeSim(cfg) as sim, httpx.AsyncClient() as client:
            kw = {"min_interval_s": 0, **client_kw}
            rest = KrakenRest(client, sim.rest_url, policy, **kw)
            return await body(rest, sim)

    return asyncio.run(asyncio.wait_for(go(), 30))


def test_kraken_is_registered_with_its_paging_and_rules():
    assert "kraken" in rest_venues()
    assert default_rest_endpoint("kraken") == "https://api.kraken.com"
    assert (KrakenRest.paging, KrakenRest.page_limit) == ("time", 1000)
    assert KLINE_RULES.omits_empty and not KLINE_RULES.open_is_previous_close
    assert REST_PAIRS["BTC/USD"] == ("XBTUSD", "XXBTZUSD")


def test_trades_are_walked_by_since_over_several_pages():
    async def body(rest, sim):
        tape = sim.tapes["BTC/USD"]
        start, end = tape[10].ts_ms, tape[400].ts_ms
        pages, w = [], start
        while True:  # the back-fill's time walk: continue at the last trade's millisecond
            page = await rest.trades("BTC/USD", start_ms=w, end_ms=end, limit=100)
            pages.append(page)
            if len(page.ids) < 100:
                break
            w = page.ts_ms[-1]
        return tape, pages

    tape, pages = run(body)
    assert len(pages) >= 4
    first = pages[0]
    assert first.request == (
        f"/0/public/Trades?pair=XBTUSD&since={tape[10].ts_ms * 10**6 - 1}&count=100"
    )
    seen: dict[int, bytes] = {}
    for page in pages:
        assert list(page.ids) == sorted(set(page.ids)) and list(page.ts_ms) == sorted(page.ts_ms)
        assert all(tape[10].ts_ms <= t <= tape[400].ts_ms for t in page.ts_ms)
        for i, item in zip(page.ids, page.items, strict=True):
            assert seen.setdefault(i, item) == item  # an overlap repeats the same row
        assert page.last_ns >= page.ts_ms[-1] * 10**6
    # every trade of the window, from the first of its millisecond, and nothing else
    first_ms = [t for t in tape if t.ts_ms >= tape[10].ts_ms and t.ts_ms <= tape[400].ts_ms]
    assert sorted(seen) == [t.agg_id for t in first_ms]
    row = parse(seen[tape[10].agg_id]).trades[0]
    assert (row.price, row.size, row.ts_ms) == (
        Decimal(tape[10].price),
        Decimal(tape[10].qty),
        tape[10].ts_ms,
    )
    assert row.taker_side == ("sell" if tape[10].buyer_maker else "buy")


def test_the_latest_trades_without_since():
    async def body(rest, sim):
        return sim.tapes["BTC/USD"], await rest.trades("BTC/USD", limit=5)

    tape, page = run(body)
    assert page.ids == tuple(t.agg_id for t in tape[-5:])
    assert "since" not in page.request


def test_a_pair_the_venue_does_not_know_is_refused_without_retry():
    async def body(rest, sim):
        with pytest.raises(ValidationError) as info:
            await rest.trades("ETH/USD", start_ms=T0, end_ms=T0 + 1000)
        return info.value, rest.stats, sim.rest_requests

    err, stats, requests = run(body)
    assert str(err) == "kraken rejected pair ETHUSD: EQuery:Unknown asset pair"
    assert (stats.requests, stats.retries, requests) == (1, 0, 1)


def test_a_pair_outside_the_table_is_learned_from_asset_pairs():
    async def body(rest, sim):
        page = await rest.trades("ADA/EUR", start_ms=T0, end_ms=T0 + 60_000, limit=3)
        return page, await rest.symbols()

    page, symbols = run(body, symbols=("ADA/EUR", "BTC/USD"))
    assert page.request.startswith("/0/public/Trades?pair=ADAEUR&since=")
    assert len(page.ids) == 3
    assert symbols == ["ADA/EUR", "BTC/USD"]  # the v1 wsname XBT/USD read as BTC/USD


@pytest.mark.parametrize(
    ("faults", "reason"),
    [
        ("rest429:2", "rate_limited"),  # {"error":["EGeneral:Too many requests"]} in a 200
        ("rest418:2", "rate_limited"),  # EAPI:Rate limit exceeded
        ("rest5xx:2", "server_error"),  # HTTP 503 EService:Unavailable
        ("resthtml:2", "bad_response"),
    ],
)
def test_throttling_and_outages_are_retried_then_answered(faults, reason):
    async def body(rest, sim):
        page = await rest.trades("BTC/USD", start_ms=T0, end_ms=T0 + 10_000)
        return page, rest.stats

    page, stats = run(body, faults=faults)
    assert stats.retries == 2 and stats.requests == 3 and len(page.ids) > 10

    async def gives_up(rest, sim):
        with pytest.raises(RestError) as info:
            await rest.trades("BTC/USD", start_ms=T0, end_ms=T0 + 10_000)
        return info.value

    err = run(gives_up, faults=faults.replace(":2", ":9"))
    assert (err.reason, err.attempts) == (reason, 3)


def test_the_venue_throttles_past_its_per_minute_budget():
    async def body(rest, sim):
        await rest.server_time()  # not counted by the venue
        await rest.trades("BTC/USD", start_ms=T0, end_ms=T0 + 1000)
        await rest.trades("BTC/USD", start_ms=T0, end_ms=T0 + 1000)
        with pytest.raises(RestError) as info:
            await rest.trades("BTC/USD", start_ms=T0, end_ms=T0 + 1000)
        return info.value

    err = run(body, weight=2)
    assert err.reason == "rate_limited" and "EGeneral:Too many requests" in str(err)


def test_requests_are_kept_a_second_apart():
    naps: list[float] = []
    clock = [T0]

    async def sleep(s):
        naps.append(s)
        clock[0] += int(s * 1000)

    async def body(rest, sim):
        await rest.server_time()
        clock[0] += 300
        await rest.trades("BTC/USD", start_ms=T0, end_ms=T0 + 1000)
        clock[0] += 5_000
        await rest.trades("BTC/USD", start_ms=T0, end_ms=T0 + 1000)
        return rest.stats

    stats = run(body, sleep=sleep, now_ms=lambda: clock[0], min_interval_s=None)
    assert naps == [0.7] and stats.waits == 1


def test_ohlc_rows_are_the_tape_bars_with_no_row_where_nothing_traded():
    now = time.time_ns() // 1_000_000
    start = now - now % 60_000 - 30 * 60_000  # 30 whole minutes, the last one open

    async def body(rest, sim):
        klines = await rest.klines("BTC/USD", "1m", start, now - now % 60_000)
        return sim.tapes["BTC/USD"], klines, rest.stats

    tape, klines, stats = run(body, rate=0.02, duration_s=3_600, start_ms=start)
    buckets: dict[int, list] = {}
    for t in tape:
        if start <= t.ts_ms < now - now % 60_000:
            buckets.setdefault(t.ts_ms - t.ts_ms % 60_000, []).append(t)
    assert [k.open_time_ms for k in klines] == sorted(buckets)  # empty minutes: no row
    assert 0 < len(klines) < 30
    for k in klines:
        group = buckets[k.open_time_ms]
        assert (k.open, k.close) == (group[0].price, group[-1].price)
        assert Decimal(k.high) == max(Decimal(t.price) for t in group)
        assert Decimal(k.volume) == sum(Decimal(t.qty) for t in group)
        assert k.trade_count == len(group)
        assert (k.quote_volume, k.taker_buy_volume, k.close_time_ms) == (None, None, None)
    assert stats.requests == 1


def test_ohlc_serves_only_the_latest_720_intervals():
    # Keep clear of a minute boundary, so the test and the simulator agree on which 720
    # minutes are the latest.
    while not 5_000 <= time.time_ns() // 1_000_000 % 60_000 <= 50_000:
        time.sleep(0.5)
    now = time.time_ns() // 1_000_000
    start = now - 1_000 * 60_000

    async def body(rest, sim):
        return await rest.klines("BTC/USD", "1m", start, now), sim.tapes["BTC/USD"]

    klines, tape = run(body, rate=0.5, duration_s=1_000 * 60, start_ms=start)
    oldest = now - now % 60_000 - 719 * 60_000
    # Kraken omits an empty interval (at 0.5 trades/s the current minute may be one yet).
    traded = sorted({t.ts_ms - t.ts_ms % 60_000 for t in tape if t.ts_ms < now})
    expected = [m for m in traded if m >= oldest]
    assert klines[0].open_time_ms == oldest
    assert [k.open_time_ms for k in klines] == expected and 719 <= len(klines) <= 720
    assert traded[0] < oldest  # the tape is longer: older intervals exist and are not served


def test_time_and_symbols():
    async def body(rest, sim):
        return await rest.server_time(), sim.clock(), await rest.symbols()

    server, clock, symbols = run(body)
    assert server == clock // 1000 * 1000 or server == clock // 1000 * 1000 - 1000
    assert symbols == ["BTC/USD"]


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"from_id": 5}, "pages trades by time"),
        ({"start_ms": T0, "limit": 1001}, "count=1001"),
        ({"start_ms": T0 + 5, "end_ms": T0}, "inverted"),
    ],
)
def test_requests_the_venue_cannot_answer_are_refused_before_sending(kwargs, text):
    async def body(rest, sim):
        with pytest.raises(ValidationError) as info:
            await rest.trades("BTC/USD", **kwargs)
        return info.value, sim.rest_requests

    err, requests = run(body)
    assert text in str(err) and requests == 0


def test_an_interval_kraken_has_not_is_refused():
    async def body(rest, sim):
        with pytest.raises(ValidationError) as info:
            await rest.klines("BTC/USD", "3m", T0, T0 + 600_000)
        return info.value

    assert "no '3m' OHLC" in str(run(body))
