"""The raw log with its sealed data on S3 (moto's server on loopback), journals local.

Segments and manifest entries go through the store; what lands there is byte for byte
what a local log writes for the same events. Immutability, the crash between upload and
manifest entry, and two writers racing for one manifest position are shown on S3.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from buff_dataplane.core.config import LogConfig
from buff_dataplane.core.errors import ImmutabilityError, StorageError, ValidationError
from buff_dataplane.storage import layout
from buff_dataplane.storage.log import open_log
from buff_dataplane.storage.objstore import ObjectExists, S3Store
from buff_dataplane.storage.reader import to_table
from buff_dataplane.storage.verify import verify_log

SID = "binance-usdm/trade/BTC-USDT-PERP"
SID2 = "binance-usdm/trade/ETH-USDT-PERP"
T0 = 1_723_161_256_000
CFG = LogConfig(group_commit_events=4, segment_max_events=10, fsync=False)
CRASH_WRITER = Path(__file__).with_name("s3_crash_writer.py")


# -- fixtures: s3 and store (an S3Store over a fresh bucket, prefix "desk") are
# tests/storage/conftest.py's, on the session's moto server (tests/conftest.py).


def _fill(log: Any, stream: str, n: int, *, start: int = 0, tag: bytes = b"evt") -> list[int]:
    w = log.writer(stream)
    return [w.append(b"%s-%d" % (tag, i), T0 + i, T0 + 100 + i) for i in range(start, start + n)]


def _payloads(log: Any, stream: str = SID) -> list[bytes]:
    return to_table(log, [stream], columns=["payload_raw"]).column("payload_raw").to_pylist()


# -- tests -------------------------------------------------------------------------------


def test_s3_log_seals_to_the_store_reads_back_and_verifies(store, tmp_path):
    state = tmp_path / "state"
    with open_log(store, CFG, state_dir=state) as log:
        assert _fill(log, SID, 25) == list(range(1, 26))
        _fill(log, SID2, 7)
    # Only the local part is local: no segment or manifest in the state directory.
    local = sorted(p.relative_to(state).as_posix() for p in state.rglob("*") if p.is_file())
    assert local == [".lock", layout.STATE_MARKER]
    keys = store.list()
    assert layout.MARKER in keys
    assert f"log/{SID}/segments/{layout.segment_name(21, 25)}" in keys
    assert f"log/{SID}/manifest/00000000000000000002.json" in keys

    reader = open_log(store, readonly=True, state_dir=state)
    assert _payloads(reader) == [b"evt-%d" % i for i in range(25)]
    assert _payloads(reader, SID2) == [b"evt-%d" % i for i in range(7)]
    report = verify_log(store, state_dir=state)
    assert report.ok, [str(f) for f in report.faults]
    assert (report.streams, report.segments, report.events) == (2, 4, 32)


def test_what_lands_on_s3_is_byte_for_byte_what_a_local_log_writes(store, tmp_path):
    with open_log(store, CFG, state_dir=tmp_path / "state") as log:
        _fill(log, SID, 25)
    data = tmp_path / "data"
    with open_log(data, CFG) as log:
        _fill(log, SID, 25)
    local_manifest = (data / "log" / SID / layout.MANIFEST).read_bytes()
    assert store.chain_read(f"log/{SID}/manifest").data == local_manifest
    for seg in sorted((data / "log" / SID / "segments").iterdir()):
        assert store.get(f"log/{SID}/segments/{seg.name}") == seg.read_bytes()


def test_a_second_upload_of_a_segment_with_different_bytes_is_refused(store, tmp_path):
    with open_log(store, CFG, state_dir=tmp_path / "state") as log:
        _fill(log, SID, 10)
    key = f"log/{SID}/segments/{layout.segment_name(1, 10)}"
    before = store.get(key)
    # Forced through the log: the same range sealed again from other rows...
    other = tmp_path / "other"
    with open_log(other, CFG) as local:
        _fill(local, SID, 10, tag=b"forged")
    forged_table = to_table(open_log(other, readonly=True))
    log = open_log(store, CFG, state_dir=tmp_path / "state")
    with pytest.raises(ImmutabilityError, match="already exists with different bytes"):
        log._publish_segment(log.writer(SID).sid, forged_table, None)
    log.close()
    # ...and directly.
    forged = other / "log" / SID / "segments" / layout.segment_name(1, 10)
    with pytest.raises(ObjectExists):
        store.put_new_file(key, forged)
    assert store.get(key) == before
    assert store.chain_read(f"log/{SID}/manifest").count == 1
    assert verify_log(store).ok


def test_a_seal_retried_after_its_manifest_entry_failed_re_uploads_identical_bytes(
    store, tmp_path, monkeypatch
):
    log = open_log(store, LogConfig(segment_max_events=1000, fsync=False), state_dir=tmp_path)
    _fill(log, SID, 10)
    puts: list[bool] = []
    real_put, real_append = store.put_new_file, store.chain_append

    def spy_put(key: str, path: Path) -> bool:
        puts.append(real_put(key, path))
        return puts[-1]

    def fail_once(name: str, index: int, line: bytes) -> bool:
        monkeypatch.setattr(store, "chain_append", real_append)
        raise StorageError("S3 500 (injected)")

    monkeypatch.setattr(store, "put_new_file", spy_put)
    monkeypatch.setattr(store, "chain_append", fail_once)
    w = log.writer(SID)
    with pytest.raises(StorageError, match="injected"):
        w.seal()
    assert _payloads(open_log(store, readonly=True, state_dir=tmp_path)) == []  # orphan unseen
    entry = w.seal()  # re-encoded from the journal: the same bytes, so put_new accepts them
    assert entry is not None and entry.seq_to == 10
    assert puts == [True, False]
    log.close()
    assert verify_log(store, state_dir=tmp_path).ok


def test_sigkill_between_segment_upload_and_manifest_entry_loses_nothing(
    store, tmp_path, moto_endpoint
):
    state = tmp_path / "state"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }
    uri = f"s3://{store.bucket}/{store.prefix}"
    proc = subprocess.run(
        [sys.executable, str(CRASH_WRITER), uri, str(state), "12"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert proc.stdout.split() == ["ACK", "12"]
    segment = f"log/{SID}/segments/{layout.segment_name(1, 12)}"
    assert store.exists(segment), "the kill was meant to land after the upload"
    assert store.chain_read(f"log/{SID}/manifest").count == 0

    # Readers go by the manifest: the orphan is invisible; verify-log names it.
    assert _payloads(open_log(store, readonly=True, state_dir=state)) == []
    before = verify_log(store, state_dir=state)
    assert [f.kind for f in before.faults] == ["stray_file"]
    assert before.unsealed_events == 12

    log = open_log(store, CFG, state_dir=state)  # recovery
    [report] = log.recovery
    assert report.adopted_segment == layout.segment_name(1, 12)
    assert report.recovered_events == 0
    assert _fill(log, SID, 3, start=12) == [13, 14, 15]  # seq continues
    log.close()
    reader = open_log(store, readonly=True, state_dir=state)
    assert _payloads(reader) == [b"evt-%d" % i for i in range(15)]
    after = verify_log(store, state_dir=state)
    assert after.ok, [str(f) for f in after.faults]
    assert after.unsealed_events == 0


def test_two_writers_appending_the_same_manifest_position_one_is_refused(store, tmp_path):
    # Two machines, two state directories, one bucket: no shared lock between them.
    a = open_log(store, LogConfig(segment_max_events=1000, fsync=False), state_dir=tmp_path / "a")
    b = open_log(store, LogConfig(segment_max_events=1000, fsync=False), state_dir=tmp_path / "b")
    _fill(a, SID, 5, tag=b"a")
    _fill(b, SID, 6, tag=b"b")
    assert a.writer(SID).seal() is not None
    with pytest.raises(ImmutabilityError, match="position 0 was appended by another writer"):
        b.writer(SID).seal()
    a.close()
    chain = store.chain_read(f"log/{SID}/manifest")
    assert (
        chain.count == 1 and b'"segment":"00000000000000000001-00000000000000000005' in chain.data
    )
    assert _payloads(open_log(store, readonly=True, state_dir=tmp_path / "a")) == [
        b"a-%d" % i for i in range(5)
    ]
    # b's uploaded 1..6 is an orphan no reader sees; verify-log names it, nothing else.
    faults = verify_log(store).faults
    assert [(f.kind, f.path.rsplit("/", 1)[-1]) for f in faults] == [
        ("stray_file", layout.segment_name(1, 6))
    ]


def test_bad_configurations_are_refused_before_anything_is_written(store, tmp_path, s3):
    with pytest.raises(ValidationError, match="needs a local state_dir"):
        open_log(store, CFG)
    with pytest.raises(ValidationError, match="no BUFF_DATA"):
        open_log(store, readonly=True, state_dir=tmp_path)
    assert store.list() == []
    open_log(store, CFG, state_dir=tmp_path / "s").close()
    other = S3Store(store.bucket, "elsewhere", s3)
    with pytest.raises(ValidationError, match="belongs to s3://"):
        open_log(other, CFG, state_dir=tmp_path / "s")
    assert other.list() == []
    foreign = S3Store(store.bucket, "foreign", s3)
    foreign.put_new("notes.txt", b"not buff")
    with pytest.raises(ValidationError, match="not empty and is not a buff data store"):
        open_log(foreign, CFG, state_dir=tmp_path / "f")
    with pytest.raises(ValidationError, match="state_dir is only for"):
        open_log(tmp_path / "data", CFG, state_dir=tmp_path / "s")
