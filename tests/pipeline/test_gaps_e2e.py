"""End to end, as a user runs it: capture through faults and a SIGKILL, automatic
back-fill, then ``buff gaps`` and ``buff crosscheck`` over whole minutes.

The simulator runs in a thread of the test process with its clock set ahead of the
wall clock, so that the capture ends just before a minute boundary of exchange time:
the crosscheck then covers complete minutes without waiting a minute for one to end.
The capture runs as a real ``buff capture`` process (it is killed with SIGKILL).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from buff_dataplane.cli import main
from buff_dataplane.core.times import format_utc_ms
from buff_dataplane.sim.background import SimThread
from buff_dataplane.sim.server import SimConfig
from buff_dataplane.storage.verify import verify_log

from .capture_helpers import SYMBOL, logged_trades


def _capture(data, sim, seconds=None):
    argv = [
        sys.executable,
        "-m",
        "buff_dataplane",
        "capture",
        "--venue",
        "binance-usdm",
        "--symbols",
        SYMBOL,
        "--data",
        str(data),
        "--endpoint",
        sim.ws_url,
        "--rest-endpoint",
        sim.rest_url,
        "--silence-timeout",
        "2",
        "--json",
    ]
    if seconds is not None:
        argv += ["--duration", str(seconds)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_faults_and_a_kill_end_backfilled_and_crosscheck_agrees(tmp_path, capsys):
    data = tmp_path / "d"
    wall = time.time_ns() // 1_000_000
    boundary = (wall + 35_000) // 60_000 * 60_000 + 60_000  # >= 35 s of wall time ahead
    offset = boundary - 28_000 - wall  # exchange time now: 28 s before the boundary
    clock = lambda: time.time_ns() // 1_000_000 + offset  # noqa: E731
    start = clock() - 130_000  # the tape has two minutes of history
    config = SimConfig(
        rate=60.0,
        duration_s=600,
        start_ms=start,
        # First connection: closed (1006) after 60 trades. Second: killed with the
        # capture after about 2.5 s (~150 trades). Third: 20 trades dropped after 300,
        # silent after 400 (half-open). The counts keep each fault on its connection.
        faults="close:1006@60,drop:20@300,silence@400",
    )
    with SimThread(config, clock) as sim:
        first = _capture(data, sim)
        time.sleep(4.0)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        time.sleep(0.5)
        second = _capture(data, sim, seconds=13)
        out, errs = second.communicate(timeout=60)
        assert second.returncode == 0, errs
        assert json.loads(out)["reconnects"] >= 1  # the silent socket was replaced
        while clock() < boundary + 500:
            time.sleep(0.1)
        lo, hi = format_utc_ms(boundary - 120_000), format_utc_ms(boundary)

        # The range's edges (before the first and after the last captured trade).
        assert (
            main(
                [
                    "backfill",
                    "--data",
                    str(data),
                    "--rest-endpoint",
                    sim.rest_url,
                    "--from",
                    lo,
                    "--to",
                    hi,
                ]
            )
            == 0
        )
        capsys.readouterr()
        assert main(["gaps", "--data", str(data), "--json"]) == 0
        gaps = json.loads(capsys.readouterr().out)["gaps"]
        kinds = {g["kind"] for g in gaps}
        assert {"restart", "downtime", "trade_id", "edge"} <= kinds, kinds
        assert {g["status"] for g in gaps} == {"BACKFILLED"}
        assert verify_log(data).ok
        ids = [t.trade_id for t in logged_trades(data)]
        assert len(ids) == len(set(ids))

        assert (
            main(
                [
                    "canonicalize",
                    "--data",
                    str(data),
                    "--venue",
                    "binance-usdm",
                    "--timeframes",
                    "1m",
                    "--from",
                    lo,
                    "--to",
                    hi,
                ]
            )
            == 0
        )
        capsys.readouterr()
        # Every 1m bar of the range is COMPLETE: the gaps were repaired, the edges too.
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
                "1m",
                "--from",
                lo,
                "--to",
                hi,
                "--require-complete",
                "--format",
                "json",
            ]
        )
        assert code == 0, capsys.readouterr().err
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert len(rows) == 2 and {r["status"] for r in rows} == {"COMPLETE"}
        assert all(r["backfilled"] for r in rows)
        code = main(
            [
                "crosscheck",
                "--data",
                str(data),
                "--venue",
                "binance-usdm",
                "--symbol",
                SYMBOL,
                "--timeframe",
                "1m",
                "--from",
                lo,
                "--to",
                hi,
                "--rest-endpoint",
                sim.rest_url,
                "--json",
            ]
        )
        report = json.loads(capsys.readouterr().out)
        assert code == 0, report
