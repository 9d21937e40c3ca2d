"""Bars built per (stream, UTC day) and combined equal the whole-stream build: the engines
on generated logs that cross midnight, and canonicalize on the golden cases and on a
multi-day log with every kind of trouble at midnight."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buff_dataplane.core.bars import TIMEFRAMES, BuildResult
from buff_dataplane.core.day_bars import DAY_MS, DayPart, combine_days, segment_days
from buff_dataplane.pipeline.bars_ref import build_bars_ref, build_day_ref
from buff_dataplane.pipeline.bars_sql import build_day_sql
from tests.pipeline.bars_helpers import SYMBOLS, T0, Scenario, scenarios, write_log
from tests.pipeline.test_bars_sql import build_options

ALL = list(TIMEFRAMES)


def _ranges(files: list[Path]) -> list[tuple[int, int]]:
    """Each segment's exchange-time range, as its manifest entry records it."""
    out = []
    for f in files:
        col = pq.read_table(f, columns=["event_ts_exchange_ms"]).column(0)
        out.append((pc.min(col).as_py(), pc.max(col).as_py()))
    return out


def by_days(
    files: list[Path], options: dict[str, Any], **common: Any
) -> tuple[dict[str, BuildResult | None], list[dict[str, DayPart]]]:
    """The day parts (SQL engine, checked equal to the reference's) and their combine."""
    ranges = _ranges(files)
    days = sorted({d for r in ranges for d in segment_days(*r)})
    day_opts = {k: v for k, v in (common | options).items() if k != "range_ms"}
    parts = []
    for day in days:
        mine = [(f, r) for f, r in zip(files, ranges, strict=True) if day in segment_days(*r)]
        args = ([f for f, _ in mine], [r for _, r in mine], day)
        part = build_day_sql(*args, **day_opts)
        assert part == build_day_ref(*args, **day_opts)
        parts.append(part)
    combined = {
        tf: combine_days(
            [p[tf] for p in parts],
            venue=common["venue"],
            symbol=common["symbol"],
            timeframe=tf,
            window=options.get("window"),
            range_ms=_aligned(options.get("range_ms"), tf),
            ids_contiguous=options.get("ids_contiguous", True),
        )
        for tf in common["timeframes"]
    }
    return combined, parts


def _aligned(range_ms: tuple[int, int] | None, tf: str) -> tuple[int, int] | None:
    if range_ms is None:
        return None
    unit = TIMEFRAMES[tf]
    lo, hi = range_ms
    return lo - lo % unit, hi + (-hi) % unit


@st.composite
def midnight_scenarios(draw: st.DrawFn) -> Scenario:
    """bars_helpers scenarios moved to end just after a UTC midnight, some with a later part
    moved on by whole days (empty days, an id jump or a conflict across midnight)."""
    scenario = draw(scenarios(rest=draw(st.booleans()), max_trades=24))
    times = sorted(e.trade.ts for e in scenario.events)
    if not times:
        return scenario
    cut = draw(st.sampled_from(times))
    extra = draw(st.sampled_from((0, 0, DAY_MS, 2 * DAY_MS + 7_000, 3 * DAY_MS - 60_000)))
    middle = times[len(times) // 2]
    shift = (T0 + DAY_MS - middle % DAY_MS) - T0 + draw(st.integers(-90_000, 90_000))

    def moved(e: Any) -> Any:
        d = shift + (extra if e.trade.ts >= cut else 0)
        t = dataclasses.replace(e.trade, ts=e.trade.ts + d)
        return dataclasses.replace(e, trade=t, ingest_ms=e.ingest_ms + d)

    return dataclasses.replace(scenario, events=tuple(moved(e) for e in scenario.events))


FALLBACKS: list[int] = [0, 0]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=midnight_scenarios(), data=st.data())
def test_day_parts_combine_into_the_whole_stream_build(scenario, data):
    first = min((e.trade.ts for e in scenario.events), default=T0)
    options = data.draw(build_options(first))
    common = {
        "venue": scenario.venue,
        "symbol": SYMBOLS[scenario.venue],
        "timeframes": ALL,
        "allowed_lateness_ms": 0,
        "apply_late": False,
    }
    with tempfile.TemporaryDirectory() as tmp:
        files = write_log(Path(tmp), scenario)
        combined, _ = by_days(files, options, **common)
        for tf in ALL:
            opts = common | options | {"timeframes": [tf]}
            opts["range_ms"] = _aligned(options["range_ms"], tf)
            want = build_bars_ref(files, **opts)[tf]
            FALLBACKS[combined[tf] is None] += 1
            if combined[tf] is not None:
                assert combined[tf] == want, tf
