"""Bars built per (stream, UTC day) and combined equal the whole-stream build: the engines
on generated logs that cross midnight, and canonicalize on the golden cases and on a
multi-day log with every kind of trouble at midnight."""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buff_dataplane.cli import main
from buff_dataplane.core.bars import TIMEFRAMES, Bar, BuildResult
from buff_dataplane.core.config import LogConfig
from buff_dataplane.core.day_bars import DAY_MS, DayPart, combine_days, segment_days
from buff_dataplane.pipeline.bars_ref import build_bars_ref, build_day_ref
from buff_dataplane.pipeline.bars_sql import build_day_sql
from buff_dataplane.pipeline.canonicalize import canonicalize
from buff_dataplane.pipeline.executors import executor_session
from buff_dataplane.sim import kraken
from buff_dataplane.sim.binance_usdm import agg_trade_message
from buff_dataplane.sim.tape import TapeSpec, TapeTrade, generate
from buff_dataplane.storage.bars_store import ArtifactKey, BarStore
from buff_dataplane.storage.log import open_log
from golden import check
from golden.make import CASES
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


@settings(max_examples=45, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=midnight_scenarios(), data=st.data())
def test_day_parts_combine_into_the_whole_stream_build(scenario, data):
    first = min((e.trade.ts for e in scenario.events), default=T0)
    last = max((e.trade.ts for e in scenario.events), default=T0)
    options = data.draw(build_options(first))
    # 1s bars over more than two days are 170k+ per build: slow, and no different.
    timeframes = ALL if last - first < 2 * DAY_MS else ALL[1:]
    common = {
        "venue": scenario.venue,
        "symbol": SYMBOLS[scenario.venue],
        "timeframes": timeframes,
        "allowed_lateness_ms": 0,
        "apply_late": False,
        "ids_cover": data.draw(st.integers(0, 3)) == 0,  # OKX's rule, over the raw ids
    }
    with tempfile.TemporaryDirectory() as tmp:
        files = write_log(Path(tmp), scenario)
        combined, _ = by_days(files, options, **common)
        for tf in timeframes:
            opts = common | options | {"timeframes": [tf]}
            opts["range_ms"] = _aligned(options["range_ms"], tf)
            want = build_bars_ref(files, **opts)[tf]
            if combined[tf] is not None:  # else canonicalize builds the stream whole
                assert combined[tf] == want, tf


@pytest.mark.parametrize("executor", ["serial", "dask"])
def test_golden_cases_give_their_digests_with_day_partitions(executor):
    """Every golden case built (captured, back-filled, late applied, ledger facts) with a
    task per (stream, UTC day): the committed digests, and replay (per stream) agrees."""
    expected = json.loads(check.DIGESTS.read_text())
    with executor_session(executor, workers=2):
        for name in sorted(CASES):
            target = check.Target(executor=executor, workers=2, partition="day")
            assert check.digests_of(name, target) == expected[name], name


D0 = T0 + 10 * DAY_MS  # a UTC midnight


def _tape(symbol: str, start: int, minutes: int, first_id: int, seed: int) -> list[TapeTrade]:
    spec = TapeSpec(symbol, start, minutes * 60_000, seed=seed, rate_per_s=1.0)
    return generate(dataclasses.replace(spec, first_agg_id=first_id))


def _multi_day(symbol: str, *, cross_day_conflict: bool) -> list[tuple[bytes, int, int]]:
    """(message, exchange ms, ingest ms) over five UTC days, in ingest order.

    Midnight 1 trades through, and the two trades either side of it have their ids
    swapped (id order is not time order there); a day and more without a trade but with
    contiguous ids (EMPTY, the close carried over midnight 2); a trade-id jump right across
    midnight 3; late trades and duplicates just before each traded midnight; with
    ``cross_day_conflict`` one trade id sent again with a time after midnight 1.
    """
    one = _tape(symbol, D0 - 10 * 60_000, 15, 1_000, 1)
    two = _tape(symbol, D0 + DAY_MS + 10 * 60_000, 10, one[-1].agg_id + 1, 2)
    three = _tape(symbol, D0 + 3 * DAY_MS - 5 * 60_000, 10, two[-1].agg_id + 1, 3)
    cut = next(i for i, t in enumerate(three) if t.ts_ms >= D0 + 3 * DAY_MS)
    three = three[:cut] + [dataclasses.replace(t, agg_id=t.agg_id + 40) for t in three[cut:]]
    mid = next(i for i, t in enumerate(one) if t.ts_ms >= D0)
    a, b = one[mid - 1], one[mid]
    one[mid - 1], one[mid] = (
        dataclasses.replace(a, agg_id=b.agg_id),
        dataclasses.replace(b, agg_id=a.agg_id),
    )
    rows = [(agg_trade_message(t), t.ts_ms, t.ts_ms + 40) for t in one + two + three]
    for t in (one[mid - 3], three[cut - 2]):
        rows.append((agg_trade_message(t), t.ts_ms, t.ts_ms + 900))  # a duplicate
    for t in (one[mid - 2], three[cut - 1]):
        rows.append((agg_trade_message(t), t.ts_ms, t.ts_ms + 70_000))  # late
    if cross_day_conflict:
        t = one[mid - 4]
        moved = dataclasses.replace(t, ts_ms=one[mid + 1].ts_ms)
        rows.append((agg_trade_message(moved), moved.ts_ms, moved.ts_ms + 100))
    return sorted(rows, key=lambda r: r[2])


def _write_multi_day(root: Path) -> None:
    with open_log(root, LogConfig(fsync=False, segment_max_events=97)) as log:
        for venue_symbol, symbol, conflict in (
            ("BTCUSDT", "BTC-USDT-PERP", False),
            ("ETHUSDT", "ETH-USDT-PERP", True),
        ):
            rows = _multi_day(venue_symbol, cross_day_conflict=conflict)
            log.writer(f"binance-usdm/trade/{symbol}").append_batch(
                [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]
            )


def _canonicalize(capsys: Any, data: Path, *extra: str) -> list[dict[str, Any]]:
    capsys.readouterr()
    argv = ["canonicalize", "--data", str(data), "--timeframes", "1m,5m,1h,1d", "--json"]
    assert main([*argv, *extra]) == 0
    artifacts: list[dict[str, Any]] = json.loads(capsys.readouterr().out)["artifacts"]
    return artifacts


def _all_bars(data: Path) -> dict[str, list[Bar]]:
    log = open_log(data, readonly=True)
    store = BarStore.over(log.store)
    out = {}
    for venue, symbol in (("binance-usdm", "BTC-USDT-PERP"), ("binance-usdm", "ETH-USDT-PERP")):
        for tf in ("1m", "5m", "1h", "1d"):
            key = ArtifactKey(venue, symbol, tf)
            rev = store.latest(key)
            assert rev is not None
            out[f"{key} rev {rev}"] = store.read_bars(key, rev)
    log.close()
    return out


def test_a_multi_day_log_gives_the_same_bars_by_day_and_by_stream(tmp_path, capsys, monkeypatch):
    combined = _spy_combine(monkeypatch)
    _write_multi_day(tmp_path / "stream")
    shutil.copytree(tmp_path / "stream", tmp_path / "day")
    results = []
    for extra in ([], ["--apply-late"], ["--no-apply-late", "--lateness-ms", "0"]):
        stream = _canonicalize(capsys, tmp_path / "stream", "--executor", "serial", *extra)
        day = _canonicalize(
            capsys, tmp_path / "day", "--partition", "day", "--executor", "process", *extra
        )
        assert day == stream, extra
        results.append(stream)
        assert _all_bars(tmp_path / "day") == _all_bars(tmp_path / "stream")
    # BTC came from five days' parts; ETH's cross-day conflict made it a whole-stream build.
    assert set(combined) == {("BTC-USDT-PERP", 5, True), ("ETH-USDT-PERP", 5, False)}
    first = {a["artifact"]: a for a in results[0]}  # lateness 2s, late left out
    btc, eth = first["binance-usdm/BTC-USDT-PERP/1m"], first["binance-usdm/ETH-USDT-PERP/1m"]
    assert btc["status_counts"].keys() >= {"COMPLETE", "EMPTY", "GAP_UNRESOLVED"}
    assert btc["late_candidates"] == 2 and btc["duplicates"] == 2
    assert eth["conflicts"] and eth["status_counts"]["CONFLICT"] == 2
    assert main(["replay", "--verify", "--data", str(tmp_path / "day"), "--json"]) == 0


def _spy_combine(monkeypatch: Any) -> list[tuple[str, int, bool]]:
    from buff_dataplane.pipeline import canonicalize as canonicalize_mod

    seen: list[tuple[str, int, bool]] = []
    real = canonicalize_mod.combine_day_parts

    def spy(parts: Any, **kw: Any) -> Any:
        out = real(parts, **kw)
        seen.append((kw["symbol"], len(parts), out is not None))
        return out

    monkeypatch.setattr(canonicalize_mod, "combine_day_parts", spy)
    return seen


@pytest.mark.parametrize(("segment_events", "combined"), [(1, False), (1_000, True)])
def test_a_batch_whose_trades_cross_midnight(tmp_path, monkeypatch, segment_events, combined):
    """A Kraken push holds several trades; its exchange time (and its segment's manifest
    range) is the earliest. A push at 23:59:59.5 with a trade at 00:00:00.2, alone in its
    segment, leaves that trade outside every day its segment is read for: the days
    cannot be combined and the stream is built whole. In a segment reaching the next day
    the trade is read by that day's task, and the days combine."""
    seen = _spy_combine(monkeypatch)
    tape = _tape("BTC/USD", D0 - 120_000, 4, 500, 4)
    pushes = [tape[i : i + 3] for i in range(0, len(tape), 3)]
    cross = [p for p in pushes if p[0].ts_ms < D0 <= p[-1].ts_ms]
    if not cross:  # move one push to straddle midnight
        k = next(i for i, p in enumerate(pushes) if p[0].ts_ms >= D0)
        first = dataclasses.replace(pushes[k][0], ts_ms=D0 - 500)
        pushes[k] = [first, *pushes[k][1:]]
        assert pushes[k - 1][-1].ts_ms <= first.ts_ms
    config = LogConfig(fsync=False, segment_max_events=segment_events)
    for name in ("stream", "day"):
        with open_log(tmp_path / name, config) as log:
            log.writer("kraken/trade/BTC-USD").append_batch(
                [kraken.trade_message(p).encode() for p in pushes],
                [p[0].ts_ms for p in pushes],
                [p[-1].ts_ms + 30 for p in pushes],
            )
    built = {}
    for name in ("stream", "day"):
        log = open_log(tmp_path / name, readonly=True)
        outcomes = canonicalize(
            log, venue="kraken", timeframes=("1m", "1h"), executor="serial", partition=name
        )
        built[name] = [o.to_dict() for o in outcomes]
        log.close()
    assert built["day"] == built["stream"]
    assert seen == [("BTC-USD", 2, combined)]
