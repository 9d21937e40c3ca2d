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
        SimConfig(rate=300.0, duration_s=60, faults="drop:200@100,rest5xx:100000"),
        config=QUICK,
        backfill=True,
        duration=3.0,
    )
    [gap] = GapLedger(data).rows()
    assert gap.status == "UNRESOLVED"
    _canonicalize(data, capsys)
    statuses = _statuses(data)
    touched = [t for t in statuses if t <= gap.ts_to_ms and t + 999 >= gap.ts_from_ms]
    assert touched and {statuses[t] for t in touched} == {"GAP_UNRESOLVED"}
    assert "COMPLETE" in statuses.values()

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
