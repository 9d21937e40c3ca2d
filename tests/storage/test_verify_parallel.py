"""verify-log as a partition-parallel job: a task per stream (chain, files, journal), then
one per stream and UTC day (its segments), combined in (stream, day) order.

The same tampered log, local and on S3 (moto on loopback), verified serially, by a
process pool and by a local Dask cluster gives the same report, fault for fault.
"""

from __future__ import annotations

import pickle
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from buff_dataplane.core.config import LogConfig
from buff_dataplane.core.errors import ValidationError
from buff_dataplane.core.ids import StreamId
from buff_dataplane.storage import layout
from buff_dataplane.storage.log import open_log
from buff_dataplane.storage.objstore import S3Store
from buff_dataplane.storage.verify import StreamTask, VerifyReport, verify_log

from .conftest import T0

BTC = "binance-usdm/trade/BTC-USDT-PERP"
ETH = "binance-usdm/trade/ETH-USDT-PERP"
SOL = "binance-usdm/trade/SOL-USDT-PERP"
BOOK = "binance-usdm/book_ticker/BTC-USDT-PERP"
CFG = LogConfig(group_commit_events=2, segment_max_events=10, fsync=False)
PARALLEL = [("process", 2), ("dask", 2)]


def _fill(log: Any, stream: str, n: int, *, tag: bytes = b"evt") -> None:
    w = log.writer(stream)
    for i in range(n):
        w.append(b"%s-%d" % (tag, i), T0 + i, T0 + 100 + i)


def _leave_journal(root: Path | S3Store, state_dir: Path | None, stream: str, n: int) -> None:
    """Commit ``n`` events to ``stream``'s journal and die without sealing them."""
    kwargs = {"state_dir": state_dir} if state_dir is not None else {}
    log = open_log(root, CFG, **kwargs)
    _fill(log, stream, n, tag=b"j")
    log._release_lock()


def _forged(data: bytes, seq_index: int) -> bytes:
    """A segment's bytes rewritten with one payload changed (its stored hash kept)."""
    table = pq.read_table(pa.BufferReader(data))
    payloads = table.column("payload_raw").to_pylist()
    payloads[seq_index] = b"evt-forged"
    idx = table.schema.get_field_index("payload_raw")
    table = table.set_column(idx, table.schema.field(idx), pa.array(payloads, pa.binary()))
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def _run(root: Path | S3Store, executor: str, workers: int | None = None, **kw: Any):
    seen: list[int] = []
    report = verify_log(root, seen.append, executor=executor, workers=workers, **kw)
    return report, seen


def _kinds(report: VerifyReport) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in report.faults:
        out[f.kind] = out.get(f.kind, 0) + 1
    return out


# -- local -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four streams: BTC forged and with a temp file, ETH missing a segment, SOL with an
    unsealed journal, the book ticker clean; and a stray directory under log/."""
    data = tmp_path_factory.mktemp("verify-parallel") / "data"
    with open_log(data, CFG) as log:
        _fill(log, BTC, 30)
        _fill(log, ETH, 20)
        _fill(log, SOL, 12)
        _fill(log, BOOK, 5)
    _leave_journal(data, None, SOL, 6)
    seg = data / "log" / BTC / "segments" / layout.segment_name(11, 20)
    seg.chmod(0o644)
    seg.write_bytes(_forged(seg.read_bytes(), 3))  # seq 14
    (data / "log" / BTC / "segments" / ".tmp-0001.parquet.1").write_bytes(b"half")
    (data / "log" / ETH / "segments" / layout.segment_name(11, 20)).unlink()
    (data / "log" / "binance-usdm" / "trade" / "btc usdt").mkdir()
    return data


@pytest.fixture(scope="module")
def local_serial(local_log: Path) -> tuple[VerifyReport, list[int]]:
    return _run(local_log, "serial")


def test_serial_verify_of_the_tampered_local_log_names_every_fault(local_log, local_serial):
    report, seen = local_serial
    assert not report.ok
    assert _kinds(report) == {
        "file_hash_mismatch": 1,
        "payload_hash_mismatch": 1,
        "missing_segment": 1,
        "stray_file": 2,  # the temp file (found by BTC's task), the directory (by discovery)
    }
    details = {(f.kind, f.detail) for f in report.faults}
    assert ("payload_hash_mismatch", "seq 14: payload does not hash to its sha256") in details
    assert any(f.path.endswith("btc usdt") for f in report.faults)
    # 4 streams; ETH's second segment is missing, so 3 + 1 + 2 + 1 segments.
    assert (report.streams, report.segments, report.events) == (4, 7, 57)
    assert report.unsealed_events == 6
    assert report.notes == [f"{SOL}: 6 committed events not yet sealed (journal)"]
    # One progress call per stream, in stream (directory) order: book, BTC, ETH, SOL.
    assert seen == [5, 30, 10, 12]


@pytest.mark.parametrize(("executor", "workers"), PARALLEL)
def test_parallel_verify_of_a_local_log_equals_serial(local_log, local_serial, executor, workers):
    serial, serial_seen = local_serial
    report, seen = _run(local_log, executor, workers)
    assert report.to_dict() == serial.to_dict()
    assert seen == serial_seen  # progress is called here, in order, not from the tasks
    assert report.faults == serial.faults  # sorted, whatever finished first


def test_the_default_is_serial_whatever_the_pipeline_default(local_log):
    import inspect

    assert inspect.signature(verify_log).parameters["executor"].default == "serial"


def test_bad_executor_input_is_refused_before_any_work(local_log):
    with pytest.raises(ValidationError, match="unknown executor"):
        verify_log(local_log, executor="threads")
    with pytest.raises(ValidationError, match="--workers"):
        verify_log(local_log, executor="process", workers=0)
    with pytest.raises(ValidationError, match="use it with --executor dask"):
        verify_log(local_log, address="tcp://127.0.0.1:1")


def test_an_empty_data_directory_needs_no_workers(tmp_path):
    report = verify_log(tmp_path, executor="dask", workers=2)  # no log/: no cluster started
    assert report.ok and report.streams == 0


# -- S3 ----------------------------------------------------------------------------------


# moto_endpoint and aws_env (what a task's ``store_for`` reads; spawned workers inherit
# it) are tests/conftest.py's, s3 (the session's client) tests/storage/conftest.py's.


@pytest.fixture(scope="module")
def s3_log(s3: Any, tmp_path_factory: pytest.TempPathFactory):
    """Three streams on S3: BTC forged, ETH missing a segment, SOL with an unsealed
    journal in the state directory; and a stray key under log/."""
    bucket = f"t-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    store = S3Store(bucket, "desk", s3)
    state = tmp_path_factory.mktemp("verify-parallel-s3") / "state"
    with open_log(store, CFG, state_dir=state) as log:
        _fill(log, BTC, 20)
        _fill(log, ETH, 20)
        _fill(log, SOL, 5)
    _leave_journal(store, state, SOL, 4)
    btc = f"desk/log/{BTC}/segments/{layout.segment_name(11, 20)}"
    forged = _forged(s3.get_object(Bucket=bucket, Key=btc)["Body"].read(), 3)
    s3.put_object(Bucket=bucket, Key=btc, Body=forged)  # behind put_new's back
    s3.delete_object(Bucket=bucket, Key=f"desk/log/{ETH}/segments/{layout.segment_name(1, 10)}")
    s3.put_object(Bucket=bucket, Key="desk/log/notes.txt", Body=b"hello")
    serial = _run(store, "serial", state_dir=state)
    return store, state, serial


def test_serial_verify_of_the_tampered_s3_log_names_every_fault(s3_log):
    store, _, (report, seen) = s3_log
    assert report.root == store.url()
    assert _kinds(report) == {
        "file_hash_mismatch": 1,
        "payload_hash_mismatch": 1,
        "missing_segment": 1,
        "stray_file": 1,
    }
    assert {f.path for f in report.faults if f.kind == "stray_file"} == {store.url("log/notes.txt")}
    assert (report.streams, report.segments, report.events) == (3, 4, 35)
    assert report.unsealed_events == 4
    assert report.notes == [f"{SOL}: 4 committed events not yet sealed (journal)"]
    assert seen == [20, 10, 5]  # sorted stream ids: BTC, ETH, SOL


def test_a_stream_task_carries_the_store_url_not_the_store(s3_log):
    store, state, _ = s3_log
    task = StreamTask(store.url(), StreamId.parse(BTC), {}, state / "x")
    assert pickle.loads(pickle.dumps(task)) == task


@pytest.mark.parametrize(("executor", "workers"), PARALLEL)
def test_parallel_verify_of_an_s3_log_equals_serial(s3_log, aws_env, executor, workers):
    store, state, (serial, serial_seen) = s3_log
    report, seen = _run(store, executor, workers, state_dir=state)
    assert report.to_dict() == serial.to_dict()
    assert seen == serial_seen
    assert not report.ok and report.unsealed_events == 4


def test_a_worker_builds_one_store_per_url_and_environment(s3_log, aws_env, monkeypatch):
    from buff_dataplane.storage.objstore import task_store

    store, _, _ = s3_log
    first = task_store(store.url())
    assert first is not store and first.url() == store.url()
    assert task_store(store.url()) is first
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    assert task_store(store.url()) is not first


DAY_MS = 86_400_000


def test_segments_are_checked_by_stream_and_day_in_that_order(tmp_path):
    """Three UTC days of two streams, one segment forged on the second day: each executor
    names the same fault and reports progress per (stream, day), in that order."""
    root = tmp_path / "data"
    with open_log(root, CFG) as log:
        for stream, n in ((BTC, 12), (ETH, 7)):
            w = log.writer(stream)
            for day in range(3):
                for i in range(n):
                    t = T0 + day * DAY_MS + i
                    w.append(b"d%d-%d" % (day, i), t, t + 100)
    entry = next(  # BTC's first segment of the second day
        e
        for e in open_log(root, readonly=True).manifest(StreamId.parse(BTC))
        if e.ts_ingest_min // DAY_MS == (T0 + DAY_MS + 100) // DAY_MS
    )
    seg = root / layout.stream_dir(Path(), StreamId.parse(BTC)) / "segments" / entry.segment
    data = seg.read_bytes()
    seg.chmod(0o644)
    seg.write_bytes(_forged(data, 0))
    reports = {}
    for executor, workers in [("serial", None), *PARALLEL]:
        seen: list[int] = []
        report = verify_log(root, seen.append, executor=executor, workers=workers)
        reports[executor] = (report.to_dict(), seen)
    serial, seen = reports["serial"]
    assert all(r == reports["serial"] for r in reports.values())
    # BTC's three days, then ETH's: 12 and 7 events a day (segments of at most 10).
    assert seen == [12, 12, 12, 7, 7, 7]
    kinds = sorted({f["kind"] for f in serial["faults"]})
    assert kinds == ["file_hash_mismatch", "payload_hash_mismatch"]
    assert all(entry.segment in f["path"] for f in serial["faults"])
    assert serial["streams"] == 2 and serial["events"] == 57
