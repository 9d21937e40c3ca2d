"""SIGKILL a real writer process at random points, again and again.

After every kill: reopening recovers, verify-log is clean, every acknowledged event is
present exactly once, what is present of each run is a prefix of what it wrote, and
ingest_seq continues densely with no seq ever pointing at different bytes.
"""

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from buff_dataplane.core.config import LogConfig
from buff_dataplane.storage.log import open_log
from buff_dataplane.storage.reader import to_table
from buff_dataplane.storage.verify import verify_log

WRITER = Path(__file__).with_name("crash_writer.py")
STREAMS = ("binance-usdm/trade/BTC-USDT-PERP", "binance-usdm/trade/ETH-USDT-PERP")
KILLS = 24


def _run_and_kill(data_dir, run, delay):
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), str(data_dir), str(run)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    ready = proc.stdout.readline()
    assert ready.strip() == "READY", proc.stderr.read() if proc.stderr else ready
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=30)
    acked = {0: -1, 1: -1}
    for line in out.splitlines():
        if line.startswith("ACK "):
            _, k, r, j = line.split()
            assert int(r) == run
            acked[int(k)] = max(acked[int(k)], int(j))
    return acked


@pytest.mark.slow
def test_sigkill_at_random_points_loses_nothing_acknowledged(tmp_path):
    data_dir = tmp_path / "data"
    rng = random.Random(20240808)
    seen_seq = {s: {} for s in STREAMS}  # seq -> payload, must never change
    acked_total = 0
    for run in range(KILLS):
        acked = _run_and_kill(data_dir, run, rng.uniform(0.0, 0.25))
        log = open_log(data_dir, LogConfig(fsync=False))  # recovers
        log.close()
        report = verify_log(data_dir)
        assert report.ok, [str(f) for f in report.faults]
        reader = open_log(data_dir, readonly=True)
        for k, stream in enumerate(STREAMS):
            table = to_table(reader, [stream], columns=["ingest_seq", "payload_raw"])
            seqs = table.column("ingest_seq").to_pylist()
            payloads = table.column("payload_raw").to_pylist()
            assert seqs == list(range(1, len(seqs) + 1)), "seq must be dense from 1"
            for seq, payload in zip(seqs, payloads, strict=True):
                assert seen_seq[stream].setdefault(seq, payload) == payload, f"seq {seq} reused"
            mine = [p for p in payloads if p.startswith(b"run-%d-" % run)]
            assert len(mine) == len(set(mine)), "an event is present twice"
            assert mine == [b"run-%d-%d" % (run, j) for j in range(len(mine))], "not a prefix"
            assert len(mine) >= acked[k] + 1, f"run {run}: acknowledged event lost on {stream}"
            acked_total += acked[k] + 1
    assert acked_total > 0, "the writer never acknowledged anything; the test proved nothing"
