"""Canonical bars honour the gap ledger: UNRESOLVED gaps and conflicts reach the bars,
consumers needing complete data are refused, and replay applies the recorded facts."""

from __future__ import annotations

import time

import pytest

from buff_dataplane.api import open_store
from buff_dataplane.cli import main
from buff_dataplane.core.errors import IncompleteDataError
from buff_dataplane.pipeline.backfill import BackfillConfig
from buff_dataplane.pipeline.capture import CaptureConfig
from buff_dataplane.sim.server import SimConfig
from buff_dataplane.storage.gap_ledger import GapLedger

from .capture_helpers import SYMBOL, run_capture

QUICK = CaptureConfig(backfill=BackfillConfig(max_attempts=2, retry_pause_ms=10, grace_ms=200))


def _canonicalize(data, capsys) -> None:
    assert (
        main(
            [
                "canonicalize",
                "--data",
                str(data),
                "--venue",
                "binance-usdm",
                "--timeframes",
                "1s,1m",
            ]
        )
        == 0
    )
    capsys.readouterr()


def _statuses(data, timeframe="1s"):
    bars = open_store(data).bars("binance-usdm", SYMBOL, timeframe, allow_incomplete=True)
    return {b["open_time_ms"]: b["status"] for b in bars.iter_rows(named=True)}


def test_an_unresolved_gap_makes_its_bars_gap_unresolved_and_refused(tmp_path, capsys):
    data = tmp_path / "d"
    run_capture(
        data,
        SimConfig(rate=300.0, duration_s=60, faults="drop:200@600,rest5xx:100000"),
        config=QUICK,
        backfill=True,
        duration=4.5,
    )
    [gap] = GapLedger(data).rows()
    assert gap.status == "UNRESOLVED"
    _canonicalize(data, capsys)
    statuses = _statuses(data)
    touched = [t for t in statuses if t <= gap.ts_to_ms and t + 999 >= gap.ts_from_ms]
    assert touched and {statuses[t] for t in touched} == {"GAP_UNRESOLVED"}
    first, last = min(statuses), max(statuses)
    assert first not in touched and last not in touched  # inside the window, not its edges
    assert {statuses[t] for t in statuses if t not in (first, last, *touched)} == {"COMPLETE"}

    code = main(
        [
            "bars",
            "--data",
            str(data),
            "--venue",
            "binance-usdm",
            "--symbol",
            SYMBOL,
            "--timeframe",
            "1s",
            "--require-complete",
        ]
    )
    assert code == 3
    assert gap.gap_id in capsys.readouterr().err
    with pytest.raises(IncompleteDataError, match=gap.gap_id):
        open_store(data).bars("binance-usdm", SYMBOL, "1s")
    # Replay re-derives the bars with the ledger facts the build recorded.
    assert main(["replay", "--verify", "--data", str(data)]) == 0


def test_a_conflict_makes_its_bucket_conflict_with_neither_version(tmp_path, capsys):
    data = tmp_path / "d"
    cfg = SimConfig(
        rate=300.0,
        duration_s=60,
        start_ms=int(time.time() * 1000) + 1_000,
        faults="drop:5@40,restconflict:50",
    )
    sim, _, _ = run_capture(data, cfg, config=QUICK, backfill=True, duration=3.0)
    [conflict] = [g for g in GapLedger(data).rows() if g.kind == "conflict"]
    _canonicalize(data, capsys)
    statuses = _statuses(data)
    bucket = conflict.ts_from_ms - conflict.ts_from_ms % 1000
    assert statuses[bucket] == "CONFLICT"
    assert list(statuses.values()).count("CONFLICT") == 1
    frame = open_store(data).bars("binance-usdm", SYMBOL, "1s", allow_incomplete=True)
    bar = next(b for b in frame.iter_rows(named=True) if b["open_time_ms"] == bucket)
    trade = next(t for t in sim.tapes["BTCUSDT"] if t.agg_id == conflict.id_from)
    same_bucket = [t for t in sim.tapes["BTCUSDT"] if t.ts_ms - t.ts_ms % 1000 == bucket]
    # The conflicting trade is left out of the bar: the rest of its bucket is counted.
    assert bar["trade_count"] == sum(t.last_id - t.first_id + 1 for t in same_bucket) - (
        trade.last_id - trade.first_id + 1
    )
    assert main(["replay", "--verify", "--data", str(data)]) == 0


def test_bars_published_over_a_hole_get_a_backfill_revision_once_repaired(tmp_path, capsys):
    import asyncio
    import dataclasses

    import httpx

    from buff_dataplane.feeds.binance_usdm.rest import BinanceUsdmRest
    from buff_dataplane.pipeline.backfill import backfill_log
    from buff_dataplane.sim.server import ExchangeSim
    from buff_dataplane.storage.bars_store import ArtifactKey, BarStore
    from buff_dataplane.storage.log import open_log

    from .capture_helpers import FAST

    data = tmp_path / "d"
    cfg = SimConfig(rate=300.0, duration_s=60, faults="drop:60@600")
    sim, _, _ = run_capture(data, cfg, duration=4.0)  # records the hole, no REST
    _canonicalize(data, capsys)
    [gap] = GapLedger(data).rows()
    hole = [t for t in _statuses(data) if t <= gap.ts_to_ms and t + 999 >= gap.ts_from_ms]
    assert hole and {_statuses(data)[t] for t in hole} == {"GAP_UNRESOLVED"}

    async def repair():
        again = dataclasses.replace(cfg, start_ms=sim.start_ms, faults="")
        async with ExchangeSim(again) as rest, httpx.AsyncClient() as client:
            with open_log(data) as log:
                history = BinanceUsdmRest(client, rest.rest_url, FAST)
                return await backfill_log(log, history, now_ms=rest.clock)

    report = asyncio.run(repair())
    assert [o.appended for o in report.outcomes] == [60]
    _canonicalize(data, capsys)
    store = BarStore(data)
    key = ArtifactKey("binance-usdm", SYMBOL, "1s")
    assert store.revisions(key) == [1, 2]
    assert store.manifest(key, 2)["reason"] == "backfill"
    frame = open_store(data).bars("binance-usdm", SYMBOL, "1s", allow_incomplete=True)
    repaired = {b["open_time_ms"]: b for b in frame.iter_rows(named=True)}
    assert {repaired[t]["status"] for t in hole} == {"COMPLETE"}
    assert all(repaired[t]["backfilled"] for t in hole)
    # Revision 1 stays readable, as published.
    old = open_store(data).bars("binance-usdm", SYMBOL, "1s", revision=1, allow_incomplete=True)
    assert {b["status"] for b in old.iter_rows(named=True) if b["open_time_ms"] in hole} == {
        "GAP_UNRESOLVED"
    }
