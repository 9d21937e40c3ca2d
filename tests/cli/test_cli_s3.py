"""Every command on ``--data s3://bucket/prefix``, configured by the AWS_* variables only
(moto's server on loopback), and every bad S3 input refused in one line, writing nothing."""

from __future__ import annotations

import hashlib
import json

import boto3
import pytest

from buff_dataplane.cli import main
from golden.make import capture_path

CAPTURE = capture_path("usdm_two_symbols_day_boundary")


def _keys(bucket: str) -> list[str]:
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def _out(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_the_whole_job_runs_on_s3_by_configuration_only(s3_bucket, tmp_path, capsys):
    data = f"s3://{s3_bucket}/desk"
    state = str(tmp_path / "state")
    imp = ["import", str(CAPTURE), "--venue", "binance-usdm", "--format", "ndjson"]
    assert main([*imp, "--data", data, "--state-dir", state, "--json"]) == 0
    events = sum(_out(capsys)["imports"][0]["events"].values())
    assert events > 0
    keys = _keys(s3_bucket)
    assert "desk/BUFF_DATA" in keys
    assert any(k.startswith("desk/log/") and k.endswith(".parquet") for k in keys)
    assert not list((tmp_path / "state").rglob("*.parquet"))  # sealed data is not local

    assert main(["log", "ls", "--data", data, "--json"]) == 0
    assert sum(s["events"] for s in _out(capsys)["streams"]) == events
    assert main(["verify-log", "--data", data, "--state-dir", state, "--json"]) == 0
    report = _out(capsys)
    assert report["ok"] and report["events"] == events and report["root"] == data

    canon = ["canonicalize", "--data", data, "--timeframes", "1m,1h", "--json"]
    assert main([*canon, "--executor", "process", "--workers", "2"]) == 0
    artifacts = _out(capsys)["artifacts"]
    assert len(artifacts) == 4 and all(a["revision"] == 1 for a in artifacts)
    bars_keys = [k for k in _keys(s3_bucket) if k.startswith("desk/bars/")]
    assert sum(k.endswith("/manifest.json") for k in bars_keys) == 4

    assert main(["replay", "--verify", "--data", data, "--json"]) == 0
    items = _out(capsys)["items"]
    assert all(i["ok"] for i in items)
    found = {i["artifact"]: i["found_digest"] for i in items}
    assert found == {a["artifact"]: a["content_digest"] for a in artifacts}
    assert main(["revisions", "--data", data, "--json"]) == 0
    revisions = {r["artifact"]: r["content_digest"] for r in _out(capsys)["revisions"]}
    assert revisions == found
    assert main(["gaps", "--data", data, "--json"]) == 0
    assert _out(capsys)["gaps"] == []
    symbol = artifacts[0]["artifact"].split("/")[1]
    bars = ["bars", "--data", data, "--venue", "binance-usdm", "--symbol", symbol]
    assert main([*bars, "--timeframe", "1h", "--format", "json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows and all(r["timeframe"] == "1h" for r in rows)


def test_a_writer_of_s3_needs_a_state_dir_and_writes_nothing_without_it(s3_bucket, capsys):
    imp = ["import", str(CAPTURE), "--venue", "binance-usdm", "--format", "ndjson"]
    assert main([*imp, "--data", f"s3://{s3_bucket}/desk"]) == 2
    err = capsys.readouterr().err.strip()
    assert "needs --state-dir" in err and len(err.splitlines()) == 1
    assert _keys(s3_bucket) == []


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("s3://", "s3://"),
        ("s3://Bad_Bucket/desk", "Bad_Bucket"),
        ("s3:/one-slash/desk", "s3:/one-slash/desk"),
        ("gs://bucket/desk", "unsupported scheme 'gs'"),
        ("s3://bucket/desk/../up", "bucket/desk/../up"),
    ],
)
def test_a_malformed_uri_is_one_line_exit_2(tmp_path, capsys, uri, message):
    state = tmp_path / "state"
    imp = ["import", str(CAPTURE), "--venue", "binance-usdm", "--format", "ndjson"]
    for argv in (
        [*imp, "--data", uri, "--state-dir", str(state)],
        ["canonicalize", "--data", uri],
        ["replay", "--verify", "--data", uri],
        ["verify-log", "--data", uri],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    assert not state.exists()


def test_no_credentials_is_one_line_exit_2(monkeypatch, moto_endpoint, tmp_path, capsys):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    state = tmp_path / "state"
    imp = ["import", str(CAPTURE), "--venue", "binance-usdm", "--format", "ndjson"]
    assert main([*imp, "--data", "s3://bucket/desk", "--state-dir", str(state)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no AWS credentials" in err and len(err.splitlines()) == 1
    assert not state.exists()


def test_an_unreachable_endpoint_is_one_line_exit_4(s3_bucket, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    state = tmp_path / "state"
    imp = ["import", str(CAPTURE), "--venue", "binance-usdm", "--format", "ndjson"]
    for argv in (
        [*imp, "--data", f"s3://{s3_bucket}/desk", "--state-dir", str(state)],
        ["canonicalize", "--data", f"s3://{s3_bucket}/desk"],
    ):
        assert main(argv) == 4
        err = capsys.readouterr().err.strip()
        assert "127.0.0.1:9" in err and len(err.splitlines()) == 1, err
    assert not state.exists()


def test_a_bucket_that_does_not_exist_is_one_line_exit_2(s3_bucket, tmp_path, capsys):
    state = tmp_path / "state"
    imp = ["import", str(CAPTURE), "--venue", "binance-usdm", "--format", "ndjson"]
    assert main([*imp, "--data", "s3://no-such-bucket-here/desk", "--state-dir", str(state)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no-such-bucket-here" in err and len(err.splitlines()) == 1
    assert not state.exists()
    assert "no-such-bucket-here" not in [
        b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]
    ]


def test_a_refused_payload_is_quarantined_in_the_store(s3_bucket, tmp_path, capsys):
    good = CAPTURE.read_text().splitlines()[0]
    path = tmp_path / "cap.ndjson"
    bad = json.dumps({"raw": "not json at all", "recv_ms": 1723161420050})
    path.write_text(f"{good}\n{bad}\n")
    data = f"s3://{s3_bucket}/desk"
    imp = ["import", str(path), "--venue", "binance-usdm", "--format", "ndjson", "--data", data]
    assert main([*imp, "--state-dir", str(tmp_path / "state")]) == 0
    assert "1 quarantined" in capsys.readouterr().out
    assert [k for k in _keys(s3_bucket) if k.startswith("desk/quarantine/")]
    # A reader elsewhere (no state dir) sees it: the record is in the store.
    assert main(["log", "quarantine", "--data", data, "--json"]) == 0
    [record] = _out(capsys)["records"]
    assert record["venue"] == "binance-usdm" and record["reason"]
    assert record["payload_sha256"] == hashlib.sha256(b"not json at all").hexdigest()


def test_a_state_dir_with_a_local_data_directory_is_refused_not_ignored(tmp_path, capsys):
    data, state = tmp_path / "data", tmp_path / "state"
    imp = ["import", str(CAPTURE), "--venue", "binance-usdm", "--format", "ndjson"]
    assert main([*imp, "--data", str(data)]) == 0
    for argv in (
        [*imp, "--data", str(data), "--state-dir", str(state)],
        ["verify-log", "--data", str(data), "--state-dir", str(state)],
        ["status", "--data", str(data), "--state-dir", str(state)],
    ):
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert "--state-dir is for --data s3://" in err and len(err.splitlines()) == 1
    assert not state.exists()
