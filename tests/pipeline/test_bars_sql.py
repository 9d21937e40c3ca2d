"""The SQL bar engine equals the reference engine, on generated logs and on edge cases."""

from __future__ import annotations

import dataclasses
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buff_dataplane.core.bars import TIMEFRAMES, Bar, BuildResult
from buff_dataplane.core.decimals import canonical_decimal
from buff_dataplane.core.errors import StorageError
from buff_dataplane.pipeline.bars_ref import build_bars_ref
from buff_dataplane.pipeline.bars_sql import build_bars_sql
from buff_dataplane.sim.tape import TapeSpec, generate
from tests.pipeline.bars_helpers import (
    SYMBOLS,
    T0,
    GenEvent,
    GenTrade,
    Scenario,
    scenarios,
    write_log,
)

ALL = list(TIMEFRAMES)


def _opts(venue: str = "binance-usdm", **over: Any) -> dict[str, Any]:
    """Build arguments: one stream of ``venue``, 1m bars, nothing late, no window."""
    opts: dict[str, Any] = {
        "venue": venue,
        "symbol": SYMBOLS[venue],
        "timeframes": ["1m"],
        "allowed_lateness_ms": 0,
        "apply_late": False,
        "window": None,
    }
    return opts | over


@st.composite
def build_options(draw: st.DrawFn, first_ts: int = T0) -> dict[str, Any]:
    """apply_late / lateness / window / range_ms / ids_contiguous around ``first_ts``."""
    unit = draw(st.sampled_from((1_000, 60_000, 300_000)))
    start = first_ts - first_ts % unit
    window = None
    if draw(st.integers(0, 3)):  # mostly a window, often covering the whole tape
        lo = start + draw(st.integers(-3, 3)) * unit
        window = (lo, lo + draw(st.sampled_from((0, 7, 40, 10**4))) * unit)
    range_ms = None
    if draw(st.integers(0, 2)) == 0:  # some start after the first trades, some unaligned
        base = start + draw(st.integers(-3, 20)) * unit
        range_ms = (base, base + draw(st.integers(0, 90)) * unit)
    return {
        "allowed_lateness_ms": draw(st.sampled_from((0, 1_000, 60_000, 1_000_000))),
        "apply_late": draw(st.booleans()),
        "window": window,
        "range_ms": range_ms,
        "ids_contiguous": draw(st.integers(0, 4)) > 0,
    }


@st.composite
def cases(draw: st.DrawFn, max_trades: int = 24) -> tuple[Scenario, dict[str, Any]]:
    scenario = draw(scenarios(rest=draw(st.booleans()), max_trades=max_trades))
    first = min((e.trade.ts for e in scenario.events), default=T0)
    return scenario, draw(build_options(first))


def _both(
    scenario: Scenario, options: dict[str, Any], **engine: Any
) -> tuple[dict[str, BuildResult], dict[str, BuildResult]]:
    """(SQL engine, reference) on a fresh log of ``scenario``, for every timeframe."""
    with tempfile.TemporaryDirectory() as tmp:
        files = write_log(Path(tmp), scenario)
        kwargs = _opts(scenario.venue, timeframes=ALL) | options
        got = build_bars_sql(files, **kwargs, **engine)
        want = build_bars_ref(files, **kwargs)
    return got, want


@settings(max_examples=45, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_sql_engine_equals_reference_on_every_timeframe(case):
    scenario, options = case
    got, want = _both(scenario, options)
    assert list(got) == ALL
    for tf in ALL:
        assert got[tf] == want[tf], tf


def test_reference_itself_is_the_oracle_without_rest_items():
    trades = [
        GenTrade(10 + i, "61800.3", "0.5", i % 2 == 0, T0 + i * 7_000, 100 + 2 * i, 101 + 2 * i)
        for i in range(30)
    ]
    events = [GenEvent(t, "usdm_agg", t.ts + 5) for t in trades]
    events.append(GenEvent(trades[3], "agg_spaced", trades[3].ts + 10))  # the exact path
    with tempfile.TemporaryDirectory() as tmp:
        files = write_log(Path(tmp), Scenario("binance-usdm", tuple(events), 4))
        opts = _opts(timeframes=ALL, window=(T0, T0 + 3_600_000))
        got = build_bars_sql(files, **opts)
        assert got == build_bars_ref(files, **opts)
    assert got["1m"].duplicates == 1
    assert [b.status for b in got["1m"].bars] == ["COMPLETE"] * 4


def test_no_segments_and_empty_ranges():
    opts = _opts("binance-spot", timeframes=["1m", "1h"])
    assert build_bars_sql([], **opts) == build_bars_ref([], **opts)
    ranged = build_bars_sql([], range_ms=(T0, T0 + 180_000), **opts)
    assert ranged == build_bars_ref([], range_ms=(T0, T0 + 180_000), **opts)
    assert [b.status for b in ranged["1m"].bars] == ["GAP_UNRESOLVED"] * 3


def _tape(minutes: int, *, rate: float = 20.0, seed: int = 3) -> Scenario:
    """A simulated aggTrade tape, quiet in minutes 4, 5 and 11, logged as captured."""
    spec = TapeSpec(
        symbol="BTCUSDT",
        start_ms=T0,
        duration_ms=minutes * 60_000,
        rate_per_s=rate,
        seed=seed,
        quiet_minutes=(4, 5, 11),
    )
    trades = [
        GenTrade(t.agg_id, t.price, t.qty, not t.buyer_maker, t.ts_ms, t.first_id, t.last_id)
        for t in generate(spec)
    ]
    events = [GenEvent(t, "usdm_agg", t.ts + 3 + (i % 7) * 40) for i, t in enumerate(trades)]
    return Scenario("binance-usdm", tuple(events), segment_max_events=5_000)


def test_five_minute_bars_aggregate_the_one_minute_bars():
    with tempfile.TemporaryDirectory() as tmp:
        files = write_log(Path(tmp), _tape(30))
        out = build_bars_sql(
            files,
            **_opts(
                timeframes=["1m", "5m"],
                allowed_lateness_ms=60_000,
                window=(T0, T0 + 30 * 60_000),
            ),
        )
    ones = {b.open_time_ms: b for b in out["1m"].bars}
    checked = 0
    for five in out["5m"].bars:
        if five.status != "COMPLETE":
            continue
        parts = [ones[five.open_time_ms + k * 60_000] for k in range(5)]
        assert all(p.status in ("COMPLETE", "EMPTY") for p in parts)
        traded = [p for p in parts if p.event_count]

        def total(field: str, bars: list[Bar] = traded) -> str:
            return canonical_decimal(sum((Decimal(getattr(p, field)) for p in bars), Decimal(0)))

        assert five.open == traded[0].open and five.close == traded[-1].close
        assert five.high == canonical_decimal(max(Decimal(p.high) for p in traded))
        assert five.low == canonical_decimal(min(Decimal(p.low) for p in traded))
        for field in ("volume", "quote_volume", "taker_buy_volume", "taker_buy_quote_volume"):
            assert getattr(five, field) == total(field), field
        assert five.trade_count == sum(p.trade_count for p in traded)
        assert five.event_count == sum(p.event_count for p in traded)
        assert (five.first_trade_id, five.last_trade_id) == (
            traded[0].first_trade_id,
            traded[-1].last_trade_id,
        )
        checked += 1
    assert checked >= 3
    quiet = ones[T0 + 4 * 60_000]  # an empty minute repeats the previous close
    assert quiet.status == "EMPTY" and quiet.close == ones[T0 + 3 * 60_000].close


def test_thread_count_does_not_change_the_result():
    base = _tape(12, rate=60.0, seed=9)
    events = list(base.events)
    events += [dataclasses.replace(e, ingest_ms=e.ingest_ms + 90_000) for e in events[::50]]
    events += [dataclasses.replace(e, shape="usdm_agg_bare") for e in events[3::60]]
    events += [
        dataclasses.replace(e, trade=dataclasses.replace(e.trade, qty="9.999"), shape="spot_agg")
        for e in events[7::400]
    ]
    scenario = dataclasses.replace(base, events=tuple(events), segment_max_events=3_000)
    options = {"allowed_lateness_ms": 1_000}
    one, want = _both(scenario, options, threads=1)
    two, _ = _both(scenario, options, threads=2, memory_limit="256MB")
    assert one == two == want
    assert one["1m"].conflicts and one["1m"].late and one["1m"].duplicates


def test_a_segment_given_twice_counts_its_trades_as_duplicates_like_the_reference():
    scenario = dataclasses.replace(_tape(3, rate=5.0), segment_max_events=300)
    opts = _opts(timeframes=["1m", "1s"], window=(T0, T0 + 180_000))
    with tempfile.TemporaryDirectory() as tmp:
        files = write_log(Path(tmp), scenario)
        twice = [*files, files[0]]
        got = build_bars_sql(twice, **opts)
        assert got == build_bars_ref(twice, **opts)
    assert got["1m"].duplicates == 300


def _two_trades(tmp: str, price: str) -> list[Path]:
    """Segments of one trade each: seq 1 at 2.5, seq 2 at ``price``."""
    trade = GenTrade(tid=7, price=price, qty="1", buy=True, ts=T0 + 5, first=1, last=1)
    other = dataclasses.replace(trade, tid=8, price="2.5")
    events = (GenEvent(other, "usdm_agg", T0 + 9), GenEvent(trade, "usdm_agg", T0 + 10))
    return write_log(Path(tmp), Scenario("binance-usdm", events, segment_max_events=1))


def test_eleven_fractional_digits_raise_instead_of_rounding():
    with tempfile.TemporaryDirectory() as tmp:
        files = _two_trades(tmp, "0.12345678901")
        with pytest.raises(StorageError, match=r"00000000000000000002\.parquet: seq 2") as err:
            build_bars_sql(files, **_opts())
        assert "DECIMAL(38,10)" in str(err.value)
    with tempfile.TemporaryDirectory() as tmp:  # trailing zeros are exact: no error
        files = _two_trades(tmp, "0.12345678900")
        got = build_bars_sql(files, **_opts())
        assert got == build_bars_ref(files, **_opts())
        assert (got["1m"].bars[0].high, got["1m"].bars[0].low) == ("2.5", "0.123456789")


def test_a_payload_the_parser_refuses_raises_like_the_reference():
    with tempfile.TemporaryDirectory() as tmp:
        files = _two_trades(tmp, "-1.5")
        for build in (build_bars_ref, build_bars_sql):
            with pytest.raises(StorageError, match="seq 2 holds no trade the parser accepts"):
                build(files, **_opts())


def test_a_rest_item_with_an_unknown_field_is_read_like_the_reference():
    # Binance adds fields to REST items (``nq``): they are kept in the bytes and ignored.
    trade = GenTrade(tid=7, price="2.5", qty="1", buy=True, ts=T0 + 5, first=1, last=1)
    events = (GenEvent(trade, "rest_agg_unknown_field", T0 + 9, "rest_backfill"),)
    with tempfile.TemporaryDirectory() as tmp:
        files = write_log(Path(tmp), Scenario("binance-spot", events, segment_max_events=1))
        ref = build_bars_ref(files, **_opts("binance-spot"))
        sql = build_bars_sql(files, **_opts("binance-spot"))
        assert ref == sql
        [bar] = ref["1m"].bars
        assert (bar.trade_count, bar.close, bar.backfilled) == (1, "2.5", True)
