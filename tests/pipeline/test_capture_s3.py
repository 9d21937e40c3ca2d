"""``buff capture`` into S3, as a desk runs it: journals in a local state directory,
sealed segments, manifest entries, the gap ledger and quarantine in the store (moto on
loopback), through a malformed frame, a skipped stretch and an abnormal close, with the
automatic back-fill. A reader with nothing but the URI then sees all of it."""

from __future__ import annotations

import json
import time

import boto3

from buff_dataplane.cli import main
from buff_dataplane.sim.background import SimThread
from buff_dataplane.sim.server import SimConfig

FAULTS = "malformed@10,drop:15@60,close:1006@120"


def test_a_capture_seals_into_s3_and_a_reader_elsewhere_sees_it_all(s3_bucket, tmp_path, capsys):
    data, state = f"s3://{s3_bucket}/desk", tmp_path / "state"
    wall = time.time_ns() // 1_000_000
    config = SimConfig(venue="binance-usdm", rate=60.0, duration_s=300, start_ms=wall - 5_000,
                       faults=FAULTS)  # fmt: skip
    with SimThread(config, lambda: time.time_ns() // 1_000_000) as sim:
        argv = ["capture", "--venue", "binance-usdm", "--symbols", "BTC-USDT-PERP", "--data", data]
        argv += ["--state-dir", str(state), "--endpoint", sim.ws_url]
        argv += ["--rest-endpoint", sim.rest_url, "--duration", "4", "--json"]
        assert main(argv) == 0
        summary = json.loads(capsys.readouterr().out)
    assert summary["reconnects"] == 1 and summary["quarantined"] == {"not_json": 1}
    assert summary["gaps"]["found"] == 2 and summary["gaps"]["backfilled"] == 2

    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=s3_bucket)
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    trade = "desk/log/binance-usdm/trade/BTC-USDT-PERP"
    assert any(k.startswith(f"{trade}/segments/") for k in keys)
    assert any(k.startswith(f"{trade}/manifest/") for k in keys)
    assert any(k.startswith("desk/gaps/ledger/") for k in keys)
    assert any(k.startswith("desk/quarantine/binance-usdm/") for k in keys)
    # Sealed at stop: no journal is left, and no segment was ever kept locally.
    assert not list(state.rglob("journal.wal")) and not list(state.rglob("*.parquet"))

    # A reader with only the URI (no state directory): the log, ledger and quarantine.
    assert main(["verify-log", "--data", data, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"]
    assert main(["gaps", "--data", data, "--json"]) == 0
    gaps = json.loads(capsys.readouterr().out)["gaps"]
    assert len(gaps) == 2 and {g["status"] for g in gaps} == {"BACKFILLED"}
    assert main(["log", "quarantine", "--data", data, "--json"]) == 0
    [record] = json.loads(capsys.readouterr().out)["records"]
    assert record["reason"] == "not_json" and record["origin"].startswith("ws:")
    assert main(["canonicalize", "--data", data, "--timeframes", "1m", "--json"]) == 0
    assert main(["replay", "--verify", "--data", data]) == 0
