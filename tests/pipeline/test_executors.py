"""Partition-parallel canonicalize and replay: the same bars and digests whatever runs the
tasks, results combined in partition order, and bad executor input refused up front."""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest

from buff_dataplane.cli import main
from buff_dataplane.core.config import LogConfig
from buff_dataplane.pipeline.executors import map_partitions
from buff_dataplane.sim.binance_usdm import agg_trade_message
from buff_dataplane.sim.tape import TapeSpec, generate
from buff_dataplane.storage.log import open_log

T0 = 1_723_161_600_000
SYMBOLS = {"BTCUSDT": "BTC-USDT-PERP", "ETHUSDT": "ETH-USDT-PERP", "SOLUSDT": "SOL-USDT-PERP"}


def slow_square(n: int) -> int:
    """Later partitions finish first: results must still come back in partition order."""
    time.sleep(0.05 * (4 - n))
    return n * n


def test_results_come_back_in_partition_order_not_completion_order():
    assert map_partitions(slow_square, [1, 2, 3], executor="process", workers=3) == [1, 4, 9]
    assert map_partitions(slow_square, [1, 2, 3], executor="serial") == [1, 4, 9]


def _log(root):
    with open_log(root, LogConfig(fsync=False, segment_max_events=500)) as log:
        for venue_symbol, symbol in SYMBOLS.items():
            tape = generate(TapeSpec(venue_symbol, T0, 300_000, rate_per_s=5.0))
            log.writer(f"binance-usdm/trade/{symbol}").append_batch(
                [agg_trade_message(t) for t in tape],
                [t.ts_ms for t in tape],
                [t.ts_ms + 5 for t in tape],
            )


def _artifacts(capsys, data, *extra):
    capsys.readouterr()
    argv = ["canonicalize", "--data", str(data), "--timeframes", "1m,5m", "--json", *extra]
    assert main(argv) == 0
    return [
        (a["artifact"], a["content_digest"])
        for a in json.loads(capsys.readouterr().out)["artifacts"]
    ]


def test_serial_and_process_executors_publish_the_same_bars_and_verify(tmp_path, capsys):
    _log(tmp_path / "serial")
    shutil.copytree(tmp_path / "serial", tmp_path / "process")
    serial = _artifacts(capsys, tmp_path / "serial")
    process = _artifacts(capsys, tmp_path / "process", "--executor", "process", "--workers", "2")
    assert serial == process
    assert [k for k, _ in serial] == sorted(k for k, _ in serial)  # combined in sorted order
    assert len(serial) == 6
    argv = ["replay", "--verify", "--data", str(tmp_path / "process"), "--json"]
    assert main([*argv, "--executor", "process", "--workers", "2"]) == 0
    items = json.loads(capsys.readouterr().out)["items"]
    assert [i["found_digest"] for i in items] == [d for _, d in serial]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--executor", "threads"], "unknown executor 'threads'"),
        (["--executor", "process", "--workers", "0"], "--workers"),
    ],
)
def test_an_executor_that_cannot_run_is_exit_2(tmp_path, capsys, extra, message):
    _log(tmp_path / "d")
    for command in (["canonicalize"], ["replay", "--verify"]):
        assert main([*command, "--data", str(tmp_path / "d"), *extra]) == 2
        assert message in capsys.readouterr().err


def die_once(marker_and_n: tuple[str, int]) -> int:
    """The first run of partition 2 kills its worker process; the rerun completes."""
    marker, n = marker_and_n
    if n == 2 and not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        os._exit(1)  # the worker dies mid-task, as a lost machine would
    return n * n


def test_a_dask_worker_killed_mid_task_is_retried_and_the_job_completes(tmp_path):
    marker = str(tmp_path / "died")
    parts = [(marker, n) for n in (1, 2, 3)]
    assert map_partitions(die_once, parts, executor="dask", workers=2) == [1, 4, 9]
    assert os.path.exists(marker)  # it did die once


def test_serial_and_dask_publish_the_same_bars(tmp_path, capsys):
    _log(tmp_path / "serial")
    shutil.copytree(tmp_path / "serial", tmp_path / "dask")
    serial = _artifacts(capsys, tmp_path / "serial")
    dask = _artifacts(capsys, tmp_path / "dask", "--executor", "dask", "--workers", "2")
    assert serial == dask
    argv = ["replay", "--verify", "--data", str(tmp_path / "dask"), "--executor", "dask"]
    assert main([*argv, "--workers", "2"]) == 0


def test_an_unreachable_dask_scheduler_is_exit_4_and_publishes_nothing(tmp_path, capsys):
    _log(tmp_path / "d")
    argv = ["canonicalize", "--data", str(tmp_path / "d"), "--executor", "dask", "--json"]
    assert main([*argv, "--address", "tcp://127.0.0.1:9"]) == 4
    err = capsys.readouterr().err
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "d" / "bars").exists()


def test_an_address_without_the_dask_executor_is_exit_2(tmp_path, capsys):
    _log(tmp_path / "d")
    argv = ["canonicalize", "--data", str(tmp_path / "d"), "--address", "tcp://127.0.0.1:9"]
    assert main(argv) == 2
    assert "use it with --executor dask" in capsys.readouterr().err


def _log_with_holes(root):
    """Three trade streams, each missing a different run of trades (id gaps)."""
    with open_log(root, LogConfig(fsync=False, segment_max_events=200)) as log:
        for k, (venue_symbol, symbol) in enumerate(SYMBOLS.items()):
            tape = generate(TapeSpec(venue_symbol, T0, 120_000, rate_per_s=5.0))
            kept = [t for i, t in enumerate(tape) if not 100 + 50 * k <= i < 110 + 60 * k]
            log.writer(f"binance-usdm/trade/{symbol}").append_batch(
                [agg_trade_message(t) for t in kept],
                [t.ts_ms for t in kept],
                [t.ts_ms + 5 for t in kept],
            )


@pytest.mark.parametrize("executor", ["process", "dask"])
def test_backfill_planning_finds_the_same_gaps_on_every_executor(tmp_path, executor):
    from buff_dataplane.pipeline.backfill import scan_ledger, trade_streams
    from buff_dataplane.storage.gap_ledger import ledger_for

    found = {}
    for name in ("serial", executor):
        _log_with_holes(tmp_path / name)
        with open_log(tmp_path / name) as log:
            streams = trade_streams(log, "binance-usdm", None)
            gaps = scan_ledger(
                log, ledger_for(log), streams, now_ms=T0 + 10**7, executor=name, workers=2
            )
        found[name] = [(g.gap_id, g.stream_id, g.id_from, g.id_to, g.kind) for g in gaps]
    assert found[executor] == found["serial"]
    assert [f[1] for f in found["serial"]] == sorted(
        f"binance-usdm/trade/{s}" for s in SYMBOLS.values()
    )
    assert all(kind == "trade_id" for *_, kind in found["serial"])


def die_always(n: int) -> int:
    if n == 2:
        os._exit(1)
    return n


def test_a_process_worker_that_dies_is_one_error_exit_4_not_a_traceback(tmp_path):
    from buff_dataplane.core.errors import ExecutorError, exit_code_for

    with pytest.raises(ExecutorError, match="a worker process died while running die_always") as e:
        map_partitions(die_always, [1, 2, 3], executor="process", workers=2)
    assert exit_code_for(e.value) == 4


def build_dying_once(task):
    """canonicalize's build task, except that the first build of ETH kills its worker."""
    from buff_dataplane.pipeline import canonicalize as canonicalize_mod

    marker = os.environ["BUFF_TEST_DIE_MARKER"]
    if task.symbol == "ETH-USDT-PERP" and not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        os._exit(1)  # the worker dies mid-job, as a lost machine would
    return canonicalize_mod._build(task)


def test_a_dask_worker_killed_mid_canonicalize_still_gives_the_same_digests(
    tmp_path, capsys, monkeypatch
):
    from buff_dataplane.pipeline import canonicalize as canonicalize_mod

    _log(tmp_path / "serial")
    shutil.copytree(tmp_path / "serial", tmp_path / "dask")
    serial = _artifacts(capsys, tmp_path / "serial", "--executor", "serial")
    marker = tmp_path / "died"
    monkeypatch.setenv("BUFF_TEST_DIE_MARKER", str(marker))  # the workers inherit it
    monkeypatch.setattr(canonicalize_mod, "_build", build_dying_once)
    dask = _artifacts(capsys, tmp_path / "dask", "--executor", "dask", "--workers", "2")
    assert marker.exists()  # a worker did die mid-job
    assert dask == serial and len(dask) == 6
    argv = ["replay", "--verify", "--data", str(tmp_path / "dask"), "--executor", "serial"]
    assert main(argv) == 0


def test_an_unknown_partition_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys):
    _log(tmp_path / "d")
    assert main(["canonicalize", "--data", str(tmp_path / "d"), "--partition", "week"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown partition 'week'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "d" / "bars").exists()
