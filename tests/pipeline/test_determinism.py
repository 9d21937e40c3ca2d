"""Builds in different processes, hash seeds and thread counts give identical digests."""

import json
import os
import subprocess
import sys

import pytest

from golden.make import capture_path


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["reference", "sql"])
def test_builds_in_other_processes_agree(tmp_path, engine):
    digests = []
    for seed, threads in (("1", "1"), ("4242", "2")):
        data = tmp_path / f"data-{seed}"
        env = {**os.environ, "PYTHONHASHSEED": seed}
        run = [sys.executable, "-m", "buff_dataplane"]
        subprocess.run(
            [
                *run,
                "import",
                str(capture_path("usdm_two_symbols_day_boundary")),
                "--venue",
                "binance-usdm",
                "--format",
                "ndjson",
                "--data",
                str(data),
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        out = subprocess.run(
            [
                *run,
                "canonicalize",
                "--data",
                str(data),
                "--timeframes",
                "1m,5m,1h",
                "--engine",
                engine,
                "--threads",
                threads,
                "--json",
            ],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        digests.append({a["artifact"]: a["content_digest"] for a in json.loads(out)["artifacts"]})
    assert digests[0] == digests[1]
    assert len(digests[0]) == 6
