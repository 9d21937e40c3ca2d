"""The USD-M REST client against the simulator on loopback: real HTTP, no mocks.

Time is driven, not waited for: the client's ``sleep`` records and (where the sim shares
the clock) advances a fake clock, so backoff and Retry-After cost nothing.
"""

import socket

import httpx
import pytest

from buff_dataplane.core.errors import ConfigError, ValidationError
from buff_dataplane.feeds.binance_usdm.rest import (
    BinanceUsdmRest,
    _decode_agg_trades,
    _decode_klines,
    rejection_message,
)
from buff_dataplane.feeds.rest_common import BadResponse, RestError, RestPolicy, compact_items
from buff_dataplane.sim.binance_usdm import rest_agg_trade_item
from buff_dataplane.sim.server import SimConfig, klines
from tests.rest_sim import run, with_rest

T0 = 1_723_161_600_000  # 2024-08-09T00:00Z: tapes wholly in the past, all served at once
SYM = "BTCUSDT"


def _with_rest(cfg, body, *, policy=None, shared_clock=False, **kw):
    """Run ``body(sim, rest, time)`` against a fresh simulator and client."""
    return with_rest(BinanceUsdmRest, cfg, body, policy=policy, shared_clock=shared_clock, **kw)


def _cfg(**kw):
    return SimConfig(**{"start_ms": T0, "duration_s": 120, "rate": 50, **kw})


def test_paging_by_from_id_gives_contiguous_canonical_items_equal_to_the_tape():
    async def body(sim, rest, _):
        tape = sim.tapes[SYM]
        items, next_id, requests = [], tape[0].agg_id, []
        while True:
            page = await rest.agg_trades(SYM, from_id=next_id)
            requests.append(page.request)
            if not page.ids:
                break
            assert page.ids[0] == next_id
            assert list(page.ids) == list(range(page.ids[0], page.ids[-1] + 1))
            items += page.items
            next_id = page.ids[-1] + 1
        assert items == [rest_agg_trade_item(t) for t in tape]
        first = tape[0].agg_id
        assert requests[0] == f"/fapi/v1/aggTrades?symbol=BTCUSDT&fromId={first}&limit=1000"
        assert len(requests) == len(tape) // 1000 + 2
        assert rest.stats.requests == len(requests) and rest.stats.retries == 0

    run(_with_rest(_cfg(), body))


def test_a_time_window_returns_exactly_the_trades_inside_it():
    async def body(sim, rest, _):
        lo, hi = T0 + 30_000, T0 + 39_999
        page = await rest.agg_trades(SYM, start_ms=lo, end_ms=hi)
        want = [t for t in sim.tapes[SYM] if lo <= t.ts_ms <= hi]
        assert 0 < len(want) < 1000
        assert page.items == tuple(rest_agg_trade_item(t) for t in want)
        assert page.ts_ms == tuple(t.ts_ms for t in want)
        assert page.request == (
            f"/fapi/v1/aggTrades?symbol=BTCUSDT&startTime={lo}&endTime={hi}&limit=1000"
        )

    run(_with_rest(_cfg(), body))


def test_a_truncated_page_is_legal_and_the_caller_continues_from_its_last_id():
    async def body(sim, rest, _):
        first = sim.tapes[SYM][0].agg_id
        page = await rest.agg_trades(SYM, from_id=first, limit=100)
        assert page.ids == tuple(range(first, first + 50))
        page = await rest.agg_trades(SYM, from_id=page.ids[-1] + 1, limit=100)
        assert page.ids == tuple(range(first + 50, first + 150))

    run(_with_rest(_cfg(faults="resttruncate:1"), body))


def test_429_is_retried_after_at_least_retry_after():
    async def body(sim, rest, fake):
        page = await rest.agg_trades(SYM, from_id=sim.tapes[SYM][0].agg_id, limit=10)
        assert len(page.ids) == 10
        assert sim.rest_requests == 3
        # Each 429: Retry-After (1 s), then the rest of the minute the venue says is spent.
        assert fake.slept[0] >= 1.0 and fake.slept[2] >= 1.0
        assert (rest.stats.requests, rest.stats.retries, rest.stats.waits) == (3, 2, 2)
        assert rest.stats.sleep_s == pytest.approx(sum(fake.slept))
        assert fake.ms % 60_000 < 1_000

    run(_with_rest(_cfg(faults="rest429:2"), body))


def test_418_is_honoured_then_succeeds_and_a_ban_outlasting_the_policy_is_reported():
    async def ok(sim, rest, fake):
        page = await rest.agg_trades(SYM, limit=5)
        assert len(page.ids) == 5 and fake.slept[0] >= 1.0 and sim.rest_requests == 2

    run(_with_rest(_cfg(faults="rest418:1"), ok))

    async def too_long(sim, rest, fake):
        with pytest.raises(RestError) as info:
            await rest.agg_trades(SYM, limit=5)
        assert (info.value.reason, info.value.attempts) == ("banned", 1)
        assert "Retry-After too long" in str(info.value) and fake.slept == []

    run(_with_rest(_cfg(faults="rest418:1"), too_long, policy=RestPolicy(max_retry_after_s=0.5)))


def test_5xx_is_retried_with_growing_backoff_then_succeeds():
    async def body(sim, rest, fake):
        page = await rest.agg_trades(SYM, limit=5)
        assert len(page.ids) == 5 and sim.rest_requests == 3
        first, second = fake.slept
        assert 0.4 <= first <= 0.6 and 0.8 <= second <= 1.2  # 0.5 s, then 1 s, +-20%

    run(_with_rest(_cfg(faults="rest5xx:2"), body))


def test_permanent_5xx_gives_up_after_exactly_max_attempts():
    async def body(sim, rest, fake):
        with pytest.raises(RestError) as info:
            await rest.agg_trades(SYM, limit=5)
        err = info.value
        assert (err.reason, err.attempts, err.exit_code) == ("server_error", 4, 4)
        assert sim.rest_requests == 4 and len(fake.slept) == 3
        text = str(err)
        assert "\n" not in text
        assert f"GET {sim.rest_url}/fapi/v1/aggTrades?symbol=BTCUSDT&limit=5" in text
        assert "HTTP 503" in text and "after 4 attempts" in text

    run(_with_rest(_cfg(faults="rest5xx:100"), body, policy=RestPolicy(max_attempts=4)))


def test_an_html_page_is_a_bad_response_retried_then_reported():
    async def once(sim, rest, _):
        assert len((await rest.agg_trades(SYM, limit=3)).ids) == 3
        assert sim.rest_requests == 2

    run(_with_rest(_cfg(faults="resthtml:1"), once))

    async def always(sim, rest, _):
        with pytest.raises(RestError) as info:
            await rest.agg_trades(SYM, limit=3)
        assert (info.value.reason, info.value.attempts) == ("bad_response", 2)
        assert "text/html" in str(info.value) and "maintenance" in str(info.value)

    run(_with_rest(_cfg(faults="resthtml:9"), always, policy=RestPolicy(max_attempts=2)))


def test_an_invalid_symbol_is_a_validation_error_naming_it_and_is_not_retried():
    async def body(sim, rest, _):
        with pytest.raises(ValidationError) as info:
            await rest.agg_trades("DOGEUSDT", limit=3)
        text = str(info.value)
        assert "symbol DOGEUSDT" in text and "-1121 Invalid symbol." in text
        assert info.value.exit_code == 2 and sim.rest_requests == 1

    run(_with_rest(_cfg(), body))


def test_the_weight_budget_waits_for_the_next_minute_instead_of_earning_a_429():
    async def body(sim, rest, fake):
        first = sim.tapes[SYM][0].agg_id
        for i in range(9):
            page = await rest.agg_trades(SYM, from_id=first + i, limit=1)
            assert page.ids == (first + i,)
        # 100 * 0.8 = 80: four requests of weight 20 per minute, then a wait.
        assert rest.stats.waits == 2 and rest.stats.retries == 0
        assert sim.rest_requests == 9
        assert all(s <= 60 for s in fake.slept) and fake.ms % 60_000 < 1_000

    run(
        _with_rest(_cfg(weight_limit_1m=100), body, shared_clock=True, weight_limit_1m=100),
    )


def test_a_429_marks_the_minute_spent_so_the_retry_waits_for_the_next_one():
    async def body(sim, rest, fake):
        for _ in range(8):
            assert len((await rest.agg_trades(SYM, limit=1)).ids) == 1
        assert rest.stats.retries == 1 and rest.stats.waits == 1
        assert sim.rest_requests == 9

    # The client believes the limit is 2400, the venue says 100: it learns by one 429.
    run(_with_rest(_cfg(weight_limit_1m=100), body, shared_clock=True))


def test_a_timeout_and_a_refused_connection_are_retried_then_reported():
    async def slow(sim, rest, _):
        with pytest.raises(RestError) as info:
            await rest.agg_trades(SYM, limit=3)
        assert (info.value.reason, info.value.attempts) == ("timeout", 2)
        assert "timed out" in str(info.value)

    policy = RestPolicy(max_attempts=2, timeout_s=0.1)
    run(_with_rest(_cfg(faults="restslow:400"), slow, policy=policy))

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def refused():
        async with httpx.AsyncClient() as client:
            rest = BinanceUsdmRest(client, f"http://127.0.0.1:{port}", policy, sleep=_no_sleep)
            with pytest.raises(RestError) as info:
                await rest.symbols()
            assert (info.value.reason, info.value.attempts) == ("timeout", 2)
            assert "ConnectError" in str(info.value)

    run(refused())


async def _no_sleep(_seconds):
    return None


def test_klines_page_by_1500_and_equal_the_venue_s_rows():
    minutes = 1_600

    async def body(sim, rest, _):
        got = await rest.klines(SYM, "1m", T0, T0 + minutes * 60_000)
        want = klines(sim.tapes[SYM], 60_000, T0, T0 + minutes * 60_000 - 1, 10_000)
        assert len(got) == len(want) == minutes
        assert sim.rest_requests == 2
        for k, row in zip(got, want, strict=True):
            assert [
                k.open_time_ms,
                k.open,
                k.high,
                k.low,
                k.close,
                k.volume,
                k.close_time_ms,
                k.quote_volume,
                k.trade_count,
                k.taker_buy_volume,
                k.taker_buy_quote_volume,
            ] == row[:11]
        part = await rest.klines(SYM, "5m", T0 + 5 * 60_000, T0 + 20 * 60_000)
        assert [k.open_time_ms for k in part] == [T0 + m * 60_000 for m in (5, 10, 15)]

    run(_with_rest(_cfg(duration_s=minutes * 60, rate=0.2), body))


def test_symbols_lists_the_trading_symbols_sorted():
    async def body(sim, rest, _):
        assert await rest.symbols() == ["BTCUSDT", "ETHUSDT"]

    run(_with_rest(_cfg(symbols=("ETHUSDT", "BTCUSDT"), duration_s=5), body))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"from_id": 1, "start_ms": T0}, "not both"),
        ({"start_ms": T0, "end_ms": T0 + 3_600_000}, "at most 3599999"),
        ({"start_ms": T0, "end_ms": T0 - 1}, "inverted"),
        ({"limit": 1001}, "1..1000"),
        ({"from_id": -1}, ">= 0"),
    ],
)
def test_requests_the_venue_would_refuse_are_refused_before_sending(kwargs, message):
    async def body(sim, rest, _):
        with pytest.raises(ValidationError, match=message):
            await rest.agg_trades(SYM, **kwargs)
        with pytest.raises(ValidationError, match="venue symbol"):
            await rest.agg_trades("btc/usdt")
        with pytest.raises(ValidationError, match="no '1s' klines"):
            await rest.klines(SYM, "1s", T0, T0 + 60_000)
        assert sim.rest_requests == 0

    run(_with_rest(_cfg(duration_s=5), body))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_attempts", 0),
        ("max_attempts", 51),
        ("base_backoff_s", -1.0),
        ("timeout_s", 0.0),
        ("weight_headroom", 1.5),
        ("max_backoff_s", float("nan")),
    ],
)
def test_rest_policy_refuses_out_of_range_values(field, value):
    with pytest.raises(ConfigError, match=field):
        RestPolicy(**{field: value})


def test_rest_policy_refuses_a_base_backoff_above_the_cap():
    with pytest.raises(ConfigError, match="base_backoff_s"):
        RestPolicy(base_backoff_s=5.0, max_backoff_s=1.0)


# --- the pure decoders ------------------------------------------------------------------

ITEM = '{"a":%d,"p":"0.01633102","q":"4.70443515","f":27781,"l":27781,"T":1498793709153,"m":true}'


def test_compact_items_keeps_key_order_escapes_and_number_text():
    body = b'[ {"a" : 1, "p":"1.50", "x": 1.0e5, "s":"a b\\u00e9" } ,\n {"a":2}]'
    assert compact_items(body) == [b'{"a":1,"p":"1.50","x":1.0e5,"s":"a b\\u00e9"}', b'{"a":2}']
    with pytest.raises(BadResponse, match="not a JSON array"):
        compact_items(b'{"code":-1,"msg":"x"}')


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (f"[{ITEM % 5},{ITEM % 7}]", "not contiguous"),
        (f"[{ITEM % 5},{ITEM % 5}]", "not increasing"),
        (f"[{ITEM % 3}]", "before fromId=4"),
        ('[{"a":5}]', "not an aggTrades item"),
        ('[{"result":null,"id":1}]', "subscription_ack message"),
        ("<html></html>", "not a JSON array"),
    ],
)
def test_a_page_of_the_wrong_shape_is_a_bad_response(body, message):
    with pytest.raises(BadResponse, match=message):
        _decode_agg_trades(body.encode(), "/r", 4, None, 1000)


def test_a_page_outside_its_window_or_over_its_limit_is_a_bad_response():
    body = f"[{ITEM % 5},{ITEM % 6}]".encode()
    with pytest.raises(BadResponse, match="outside the window"):
        _decode_agg_trades(body, "/r", None, (1498793709154, 1498793709999), 1000)
    with pytest.raises(BadResponse, match="2 items for limit=1"):
        _decode_agg_trades(body, "/r", None, None, 1)


def test_klines_of_the_wrong_shape_are_a_bad_response():
    row = '[1616338800000,"1","2","0.5","1.5","4",1616338859999,"6",7,"1","2","0"]'
    assert _decode_klines(f"[{row}]".encode())[0].close == "1.5"
    with pytest.raises(BadResponse, match="12-column"):
        _decode_klines(f"[{row[:-5]}]]".encode())
    with pytest.raises(BadResponse, match="12-column"):
        _decode_klines(row.replace('"1.5"', "1.5").join("[]").encode())
    with pytest.raises(BadResponse, match="out of order"):
        _decode_klines(f"[{row},{row}]".encode())


def test_rejection_message_reads_only_the_venue_s_error_body():
    assert rejection_message(b'{"code":-1121,"msg":"Invalid symbol."}') == "-1121 Invalid symbol."
    assert rejection_message(b"<html>Not Found</html>") is None
    assert rejection_message(b"[]") is None


def test_regression_rest_items_with_nq_parse_as_trades() -> None:
    from buff_dataplane.feeds.binance_usdm.parse import parse

    item = (
        b'{"a":26129,"p":"0.01633102","q":"4.70443515","nq":"4.70443515",'
        b'"f":27781,"l":27781,"T":1498793709153,"m":true}'
    )
    parsed = parse(item)
    assert parsed.kind == "restAggTrade" and bool(parsed.trades)
    assert parsed.trades[0].trade_id == 26129
