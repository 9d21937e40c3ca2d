"""A log kept on S3 for years: finding its streams and reading its chains, by request count.

Two costs that grew with the log are bounded here, on moto's server on loopback, and the
S3 requests are counted with a botocore event hook (as bench/objstore_bench.py does):

- ``store_stream_ids`` walks three directory levels with ``list_dirs`` (``Delimiter``):
  its LIST count does not depend on how many segments or manifest entries there are.
- A chain gets a checkpoint every ``CHECKPOINT_EVERY`` entries (monkeypatched to 5 here),
  and ``chain_read`` reads the highest usable one plus the entries after it, byte for
  byte what reading every entry gives. ``verify-log`` checks every checkpoint against the
  entries; a forged one is a ``checkpoint_mismatch``, and a manifest reader, whose hash
  chain a forged checkpoint breaks, falls back to the entries.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from buff_dataplane.core.config import LogConfig
from buff_dataplane.core.errors import ImmutabilityError, StorageError, ValidationError
from buff_dataplane.core.gaps import Gap, new_gap
from buff_dataplane.core.ids import StreamId
from buff_dataplane.storage import layout, objstore
from buff_dataplane.storage.gap_ledger import LEDGER_CHAIN, GapLedger
from buff_dataplane.storage.log import open_log, store_stream_ids
from buff_dataplane.storage.manifest import read_store_manifest
from buff_dataplane.storage.objstore import (
    LocalStore,
    ObjectExists,
    ObjectStore,
    S3Store,
    chain_checkpoint_key,
    chain_entry_key,
)
from buff_dataplane.storage.verify import verify_log

SID = "binance-usdm/trade/BTC-USDT-PERP"
CHAIN = f"log/{SID}/manifest"
T0 = 1_723_161_256_000
CFG = LogConfig(group_commit_events=5, segment_max_events=10, fsync=False)


class Requests:
    """The S3 API calls a client made, by operation (``before-call``: once per call)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def count(self, event_name: str = "", **_: Any) -> None:
        with self._lock:
            self.calls[event_name.rsplit(".", 1)[-1]] += 1

    def take(self) -> dict[str, int]:
        """The calls since the last take, and start counting afresh."""
        with self._lock:
            out = dict(self.calls)
            self.calls.clear()
        return out


@pytest.fixture
def requests(s3: Any) -> Iterator[Requests]:
    counter = Requests()
    s3.meta.events.register("before-call.s3.*", counter.count)
    yield counter
    s3.meta.events.unregister("before-call.s3.*", counter.count)


@pytest.fixture
def every5(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(objstore, "CHECKPOINT_EVERY", 5)
    return 5


def _line(i: int) -> bytes:
    return b'{"entry":%d,"pad":"%s"}' % (i, b"x" * (i % 7))


def _append(store: ObjectStore, n: int, *, start: int = 0, name: str = CHAIN) -> bytes:
    for i in range(start, start + n):
        assert store.chain_append(name, i, _line(i)) is True
    return b"".join(_line(i) + b"\n" for i in range(start + n))


def _raw_put(store: S3Store, key: str, body: bytes) -> None:
    """Replace an object behind the store's back (a forger with bucket access)."""
    full = f"{store.prefix}/{key}"
    store.client.delete_object(Bucket=store.bucket, Key=full)
    store.client.put_object(Bucket=store.bucket, Key=full, Body=body)


# -- list_dirs and store_stream_ids ------------------------------------------------------


@pytest.fixture(params=["local", "s3"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return LocalStore(tmp_path / "data", fsync=False)
    store: ObjectStore = request.getfixturevalue("store")
    return store


def test_list_dirs_names_the_immediate_subdirectories(any_store: ObjectStore) -> None:
    for key in ("a/b/x", "a/b/y/z", "a/c/w", "a/file", "top"):
        any_store.put_new(key, b"1")
    if isinstance(any_store, LocalStore):  # a temp or staging directory is never a name
        (any_store.root / "a" / ".staging").mkdir()
    assert any_store.list_dirs() == ["a"]
    assert any_store.list_dirs("a") == ["b", "c"]
    assert any_store.list_dirs("a/b") == ["y"]
    assert any_store.list_dirs("a/c") == []
    assert any_store.list_dirs("a/file") == []
    assert any_store.list_dirs("nothing") == []


def _old_store_stream_ids(store: ObjectStore) -> list[StreamId]:
    """store_stream_ids as it was: every key under log/ listed."""
    out: set[StreamId] = set()
    for key in store.list(layout.LOG_DIR):
        parts = key.split("/")
        if len(parts) < 5:
            continue
        try:
            out.add(StreamId.of(parts[1], parts[2], parts[3]))
        except ValidationError:
            continue
    return sorted(out, key=str)


STREAMS = [
    f"{v}/{c}/{s}"
    for v in ("binance-usdm", "bybit-linear")
    for c in ("trade", "depth")
    for s in ("BTC-USDT-PERP", "ETH-USDT-PERP")
]
STRAYS = [
    "log/Not-A-Venue/trade/BTC-USDT/segments/x.parquet",
    "log/binance-usdm/no-such-channel/BTC-USDT/segments/x.parquet",
    "log/binance-usdm/trade/btc-usdt/segments/x.parquet",
    "log/binance-usdm/trade/SOL-USDT",  # a file where a stream directory would be
    "log/binance-usdm/notes.txt",
    "log/stray.txt",
    "elsewhere/binance-usdm/trade/XRP-USDT/segments/x.parquet",
]


def _put_many(store: S3Store, keys: list[str]) -> None:
    def put(key: str) -> None:
        store.client.put_object(Bucket=store.bucket, Key=f"{store.prefix}/{key}", Body=b"x")

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(put, keys))


def _stream_keys(segments: int, start: int = 0, *, entries: bool = True) -> list[str]:
    keys = []
    for sid in STREAMS:
        for i in range(start, start + segments):
            keys.append(f"log/{sid}/segments/{i:08d}-{i:08d}.parquet")
            if entries:
                keys.append(f"log/{sid}/manifest/{i:020d}.json")
    return keys


def test_finding_the_streams_costs_the_same_lists_however_many_segments(
    store: S3Store, requests: Requests
) -> None:
    _put_many(store, _stream_keys(1) + STRAYS)
    requests.take()
    few = store_stream_ids(store)
    lists_few = requests.take()
    assert _old_store_stream_ids(store) == few
    old_few = requests.take()
    assert [str(s) for s in few] == sorted(STREAMS)

    # 130 more segments a stream: 1,040 more keys under log/, a second LIST page for the
    # old walk (a year of hourly segments would be ~9k a stream: ~1,000 pages for dozens).
    _put_many(store, _stream_keys(130, start=1, entries=False))
    requests.take()
    many = store_stream_ids(store)
    lists_many = requests.take()
    assert _old_store_stream_ids(store) == many == few
    old_many = requests.take()

    # 1 (venues) + 2 venues (channels) + 2x2 channels (symbols): 7 LISTs, both times.
    assert lists_few == lists_many == {"ListObjectsV2": 7}
    assert old_few == {"ListObjectsV2": 1}
    assert old_many == {"ListObjectsV2": 2}


def test_a_log_on_s3_finds_its_streams_as_before(store: S3Store, tmp_path: Path) -> None:
    with open_log(store, CFG, state_dir=tmp_path / "state") as log:
        for sid in STREAMS[:3]:
            w = log.writer(sid)
            for i in range(12):
                w.append(b"evt-%d" % i, T0 + i, T0 + 100 + i)
    reader = open_log(store, readonly=True)
    assert [str(s) for s in reader.stream_ids()] == sorted(STREAMS[:3])
    assert store_stream_ids(store) == _old_store_stream_ids(store)
    reader.close()


# -- checkpoints: the chain ---------------------------------------------------------------


def test_a_chain_gets_a_checkpoint_every_n_entries_and_reads_through_it(
    store: S3Store, every5: int, requests: Requests
) -> None:
    expected = _append(store, 23)
    assert store.list(f"{CHAIN}-checkpoints") == [
        chain_checkpoint_key(CHAIN, n) for n in (5, 10, 15, 20)
    ]
    assert store.list(CHAIN) == [chain_entry_key(CHAIN, i) for i in range(23)]
    for n in (5, 10, 15, 20):
        assert store.get(chain_checkpoint_key(CHAIN, n)) == b"".join(
            _line(i) + b"\n" for i in range(n)
        )

    requests.take()
    full = store.chain_read(CHAIN, use_checkpoints=False)
    full_requests = requests.take()
    read = store.chain_read(CHAIN)
    read_requests = requests.take()

    assert full.data == read.data == expected
    assert (full.count, full.checkpoint, full.faults) == (23, 0, [])
    assert (read.count, read.checkpoint, read.faults) == (23, 20, [])
    assert full_requests == {"ListObjectsV2": 1, "GetObject": 23}
    # One LIST of the checkpoints, one of the entries from 19 on; checkpoint 20 + 3 entries.
    assert read_requests == {"ListObjectsV2": 2, "GetObject": 4}


def test_a_chain_ending_at_a_checkpoint_checks_its_last_entry(
    store: S3Store, every5: int, requests: Requests
) -> None:
    expected = _append(store, 20)
    requests.take()
    read = store.chain_read(CHAIN)
    assert (read.data, read.count, read.checkpoint) == (expected, 20, 20)
    # Nothing follows checkpoint 20, so entry 19 is read to anchor its last line.
    assert requests.take() == {"ListObjectsV2": 2, "GetObject": 2}


def test_appending_checks_the_position_with_one_head_not_a_listing(
    store: S3Store, every5: int, requests: Requests
) -> None:
    _append(store, 3)
    requests.take()
    assert store.chain_append(CHAIN, 3, _line(3)) is True
    assert requests.take() == {"HeadObject": 1, "PutObject": 1}
    # Position 4 completes 5 entries: the checkpoint is built from a read of the chain.
    assert store.chain_append(CHAIN, 4, _line(4)) is True
    assert requests.take() == {"HeadObject": 1, "PutObject": 2, "ListObjectsV2": 2, "GetObject": 5}
    # The next one reads checkpoint 5 and the 5 entries after it, not all 10.
    _append(store, 4, start=5)
    requests.take()
    store.chain_append(CHAIN, 9, _line(9))
    assert requests.take() == {"HeadObject": 1, "PutObject": 2, "ListObjectsV2": 2, "GetObject": 6}

    with pytest.raises(ImmutabilityError, match="position 11 does not exist"):
        store.chain_append(CHAIN, 12, _line(12))
    assert store.chain_append(CHAIN, 3, _line(3)) is False  # an idempotent retry
    assert store.chain_append(CHAIN, 4, _line(4)) is False  # ...at a checkpoint too
    with pytest.raises(ObjectExists, match="position 3 holds a different entry"):
        store.chain_append(CHAIN, 3, _line(99))
    assert store.chain_read(CHAIN).data == store.chain_read(CHAIN, use_checkpoints=False).data


def test_a_chain_written_before_checkpoints_reads_as_before_and_gets_them_later(
    store: S3Store, monkeypatch: pytest.MonkeyPatch, requests: Requests
) -> None:
    expected = _append(store, 23)  # CHECKPOINT_EVERY is 1,000: none written
    assert store.list(f"{CHAIN}-checkpoints") == []
    requests.take()
    read = store.chain_read(CHAIN)
    assert (read.data, read.count, read.checkpoint) == (expected, 23, 0)
    assert requests.take() == {"ListObjectsV2": 2, "GetObject": 23}

    monkeypatch.setattr(objstore, "CHECKPOINT_EVERY", 5)
    expected = _append(store, 2, start=23)  # entry 24 completes 25: built from every entry
    assert store.list(f"{CHAIN}-checkpoints") == [chain_checkpoint_key(CHAIN, 25)]
    read = store.chain_read(CHAIN)
    assert (read.data, read.count, read.checkpoint) == (expected, 25, 25)


def test_a_checkpoint_that_cannot_be_used_is_skipped(
    store: S3Store, every5: int, caplog: pytest.LogCaptureFixture
) -> None:
    expected = _append(store, 23)
    # Checkpoint 20 cut short, and a checkpoint 30 where the chain has only 23 entries.
    _raw_put(store, chain_checkpoint_key(CHAIN, 20), expected[: expected.index(b"\n") + 1])
    _raw_put(store, chain_checkpoint_key(CHAIN, 30), expected + b"{}\n" * 7)
    with caplog.at_level(logging.WARNING, logger="buff_dataplane.storage.objstore"):
        read = store.chain_read(CHAIN)
    assert (read.data, read.count, read.checkpoint) == (expected, 23, 15)
    assert "entry 29 does not exist" in caplog.text
    assert "not 20 complete lines" in caplog.text


def test_a_forged_checkpoint_with_nothing_after_it_is_skipped(store: S3Store, every5: int) -> None:
    expected = _append(store, 10)
    forged = expected.replace(b'"entry":9,', b'"entry":99,')
    _raw_put(store, chain_checkpoint_key(CHAIN, 10), forged)
    read = store.chain_read(CHAIN)
    assert (read.data, read.count, read.checkpoint) == (expected, 10, 5)


def test_a_checkpoint_that_cannot_be_written_is_logged_not_fatal(
    store: S3Store, every5: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = store.put_new

    def put_new(key: str, data: bytes) -> bool:
        if "-checkpoints/" in key:
            raise StorageError(f"{key}: put failed: S3 503 (SlowDown)")
        return real(key, data)

    monkeypatch.setattr(store, "put_new", put_new)
    with caplog.at_level(logging.WARNING, logger="buff_dataplane.storage.objstore"):
        expected = _append(store, 7)
    assert "checkpoint not written" in caplog.text
    assert store.list(f"{CHAIN}-checkpoints") == []
    assert store.chain_read(CHAIN).data == expected

    # A different checkpoint already there (say a forger's) refuses the put: logged too.
    monkeypatch.setattr(store, "put_new", real)
    store.client.put_object(
        Bucket=store.bucket, Key=f"{store.prefix}/{chain_checkpoint_key(CHAIN, 10)}", Body=b"x\n"
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="buff_dataplane.storage.objstore"):
        expected = _append(store, 3, start=7)
    assert "already exists with different bytes" in caplog.text
    assert store.chain_read(CHAIN).data == expected


# -- checkpoints: a real log, its readers and verify-log ----------------------------------


def _write_log(store: S3Store, state: Path, events: int, *, tag: bytes = b"evt") -> None:
    with open_log(store, CFG, state_dir=state) as log:
        w = log.writer(SID)
        for i in range(events):
            w.append(b"%s-%d" % (tag, i), T0 + i, T0 + 100 + i)


def test_a_log_with_checkpoints_verifies_clean_and_its_readers_use_them(
    store: S3Store, every5: int, tmp_path: Path, requests: Requests
) -> None:
    _write_log(store, tmp_path / "state", 230)  # 23 segments of 10 events
    assert store.list(f"{CHAIN}-checkpoints") == [
        chain_checkpoint_key(CHAIN, n) for n in (5, 10, 15, 20)
    ]
    report = verify_log(store, state_dir=tmp_path / "state")
    assert report.ok, [str(f) for f in report.faults]
    assert (report.streams, report.segments, report.events) == (1, 23, 230)

    reader = open_log(store, readonly=True)
    full = store.chain_read(CHAIN, use_checkpoints=False)
    requests.take()
    entries = reader.manifest(StreamId.parse(SID))
    assert requests.take() == {"ListObjectsV2": 2, "GetObject": 4}
    assert b"".join(e.encode() + b"\n" for e in entries) == full.data
    assert [e.index for e in entries] == list(range(23))
    reader.close()


def _forged_manifest(tmp_path: Path, events: int) -> bytes:
    """The manifest of other events, same stream: a consistent chain, not this log's."""
    data = tmp_path / "forged"
    with open_log(data, CFG) as log:
        w = log.writer(SID)
        for i in range(events):
            w.append(b"forged-%d" % i, T0 + i, T0 + 100 + i)
    return (data / "log" / SID / layout.MANIFEST).read_bytes()


def test_a_forged_checkpoint_is_a_verify_fault_and_readers_read_the_entries(
    store: S3Store, every5: int, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _write_log(store, tmp_path / "state", 70)  # 7 segments: checkpoint 5, entries 5 and 6
    true = store.chain_read(CHAIN, use_checkpoints=False).data
    key = chain_checkpoint_key(CHAIN, 5)
    assert store.get(key) == b"".join(true.splitlines(keepends=True)[:5])
    forged = b"".join(_forged_manifest(tmp_path, 50).splitlines(keepends=True)[:5])
    assert forged != store.get(key) and forged.count(b"\n") == 5
    _raw_put(store, key, forged)

    report = verify_log(store, state_dir=tmp_path / "state")
    assert [(f.kind, f.path) for f in report.faults] == [("checkpoint_mismatch", store.url(key))]
    assert "differs from entries 0..4 at entry 0" in report.faults[0].detail
    assert report.segments == 7  # the segments and the chain of entries are still checked

    # The store trusts a checkpoint whose line count is right...
    assert store.chain_read(CHAIN).checkpoint == 5
    # ...but entry 5 holds the hash of the true entry 4: the manifest's chain breaks, and
    # the reader reads the entries instead.
    with caplog.at_level(logging.WARNING, logger="buff_dataplane.storage.manifest"):
        read = read_store_manifest(store, CHAIN, SID)
    assert read.faults == []
    assert b"".join(e.encode() + b"\n" for e in read.entries) == true
    assert "reading its entries instead" in caplog.text
    reader = open_log(store, readonly=True)
    assert len(reader.manifest(StreamId.parse(SID))) == 7
    reader.close()


def test_a_forged_last_checkpoint_is_caught_by_its_last_entry(
    store: S3Store, every5: int, tmp_path: Path
) -> None:
    _write_log(store, tmp_path / "state", 50)  # exactly 5 segments: nothing after checkpoint 5
    key = chain_checkpoint_key(CHAIN, 5)
    _raw_put(store, key, _forged_manifest(tmp_path, 50))
    assert store.chain_read(CHAIN).checkpoint == 0  # its last line is not entry 4
    report = verify_log(store, state_dir=tmp_path / "state")
    assert [(f.kind, f.path) for f in report.faults] == [("checkpoint_mismatch", store.url(key))]


def test_verify_names_a_stray_key_among_the_checkpoints_and_a_checkpoint_too_long(
    store: S3Store, every5: int, tmp_path: Path
) -> None:
    _write_log(store, tmp_path / "state", 70)
    stray = f"log/{SID}/manifest-checkpoints/notes.txt"
    store.put_new(stray, b"hello\n")
    too_long = chain_checkpoint_key(CHAIN, 10)
    store.put_new(too_long, store.chain_read(CHAIN).data + b"{}\n" * 3)
    faults = sorted((f.kind, f.path, f.detail) for f in verify_log(store).faults)
    assert faults == [
        ("checkpoint_mismatch", store.url(too_long), "names 10 entries, the chain holds 7"),
        ("stray_file", store.url(stray), "not a manifest checkpoint"),
    ]


def _gap(id_from: int) -> Gap:
    return new_gap(
        SID,
        "trade_id",
        id_from=id_from,
        id_to=id_from + 2,
        ts_from_ms=1_000 + id_from,
        ts_to_ms=2_000 + id_from,
        detected_at_ms=10,
    )


def test_the_gap_ledger_checkpoints_are_verified_too(store: S3Store, every5: int) -> None:
    ledger = GapLedger.over(store)
    for i in range(12):
        ledger.add_found([_gap(10 * i)])
    assert store.list(f"{LEDGER_CHAIN}-checkpoints") == [
        chain_checkpoint_key(LEDGER_CHAIN, n) for n in (5, 10)
    ]
    assert [g.id_from for g in ledger.history()] == [10 * i for i in range(12)]
    assert verify_log(store).ok

    key = chain_checkpoint_key(LEDGER_CHAIN, 10)
    _raw_put(store, key, store.get(key).replace(b'"id_from":0,', b'"id_from":1,'))
    assert [(f.kind, f.path) for f in verify_log(store).faults] == [
        ("checkpoint_mismatch", store.url(key))
    ]
