"""The storage seam: LocalStore and S3Store (against moto's server on loopback) behave alike.

Every behavioural test runs on both stores. The S3 tests talk to a real HTTP server on
127.0.0.1 (moto, in memory: data stays tiny); credentials and endpoint come from the
standard AWS_* variables, set by ``aws_env`` (tests/conftest.py) so nothing ever reaches
beyond loopback.
"""

from __future__ import annotations

import hashlib
import socket
import stat
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from buff_dataplane.core.errors import (
    EXIT_IO,
    EXIT_USAGE,
    EXIT_VERIFY_FAILED,
    ImmutabilityError,
    StorageError,
    ValidationError,
    exit_code_for,
)
from buff_dataplane.storage.manifest import (
    MANIFEST_VERSION,
    ManifestEntry,
    genesis,
    line_hash,
    read_manifest,
)
from buff_dataplane.storage.objstore import (
    LocalStore,
    ObjectExists,
    ObjectNotFound,
    ObjectStore,
    S3Store,
    chain_entry_key,
    store_for,
)
from buff_dataplane.storage.segment import RAW_SCHEMA, write_segment_batches

SID = "binance-usdm/trade/BTC-USDT-PERP"
MANIFEST = f"log/{SID}/manifest"
T0 = 1_723_161_256_000


# -- fixtures ---------------------------------------------------------------------------


# moto_endpoint, aws_env, s3_client and bucket are tests/conftest.py's; s3 and s3_store
# tests/storage/conftest.py's, here under this module's prefix. This module's ``store``
# (both kinds) overrides the S3-only one there.


@pytest.fixture
def s3_prefix() -> str:
    return "pre/fix"


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return LocalStore(tmp_path / "data", fsync=True)
    made: S3Store = request.getfixturevalue("s3_store")
    return made


def raw_batch(n: int, *, first_seq: int = 1, payload_size: int = 24) -> pa.RecordBatch:
    # pseudo-random, so zstd cannot shrink them away (the read-amount test needs bulk)
    payloads = [hashlib.shake_128(b"evt-%d" % i).digest(payload_size) for i in range(n)]
    return pa.RecordBatch.from_pydict(
        {
            "stream_id": [SID] * n,
            "ingest_seq": list(range(first_seq, first_seq + n)),
            "event_ts_exchange_ms": [T0 + i for i in range(n)],
            "event_ts_ingest_ms": [T0 + 100 + i for i in range(n)],
            "symbol": ["BTC-USDT-PERP"] * n,
            "channel": ["trade"] * n,
            "payload_raw": payloads,
            "payload_sha256": [hashlib.sha256(p).digest() for p in payloads],
            "source": ["ws"] * n,
            "schema_version": [1] * n,
            "origin": [None] * n,
            "conn_id": [7] * n,
        },
        schema=RAW_SCHEMA,
    )


def manifest_lines(count: int) -> list[bytes]:
    """``count`` chained manifest lines, as RawLog would append them."""
    lines: list[bytes] = []
    prev = genesis(SID)
    for i in range(count):
        entry = ManifestEntry(
            v=MANIFEST_VERSION,
            index=i,
            stream_id=SID,
            segment=f"{10 * i + 1:020d}-{10 * i + 10:020d}.parquet",
            seq_from=10 * i + 1,
            seq_to=10 * i + 10,
            rows=10,
            ts_exchange_min=T0,
            ts_exchange_max=T0 + 9,
            ts_ingest_min=T0,
            ts_ingest_max=T0 + 9,
            payload_bytes=100,
            file_bytes=1000,
            file_sha256="ab" * 32,
            payload_digest="cd" * 32,
            prev=prev,
        )
        line = entry.encode()
        lines.append(line)
        prev = line_hash(line)
    return lines


def race(fn: Callable[[str], object]) -> dict[str, object]:
    """Run ``fn("a")`` and ``fn("b")`` from two threads released together."""
    barrier = threading.Barrier(2)
    out: dict[str, object] = {}

    def run(tag: str) -> None:
        barrier.wait()
        try:
            out[tag] = fn(tag)
        except ObjectExists as exc:
            out[tag] = exc

    threads = [threading.Thread(target=run, args=(tag,)) for tag in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


# -- put_new / get / list ---------------------------------------------------------------


def test_put_new_then_get(store: ObjectStore) -> None:
    created = store.put_new("bars/x/rev-0001/diff.json", b'{"added":[]}\n')

    assert created is True
    assert store.get("bars/x/rev-0001/diff.json") == b'{"added":[]}\n'
    assert store.exists("bars/x/rev-0001/diff.json") is True
    assert store.size("bars/x/rev-0001/diff.json") == 13
    assert store.url("bars/x/rev-0001/diff.json").endswith("/bars/x/rev-0001/diff.json")


def test_local_object_is_read_only_with_no_temp_left(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, fsync=True)

    store.put_new("a/b.bin", b"sealed")

    mode = stat.S_IMODE((tmp_path / "a" / "b.bin").stat().st_mode)
    assert mode == 0o444
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b.bin"]


def test_identical_second_write_is_accepted(store: ObjectStore) -> None:
    assert store.put_new("log/seg.parquet", b"PAR1 bytes") is True

    again = store.put_new("log/seg.parquet", b"PAR1 bytes")

    assert again is False
    assert store.get("log/seg.parquet") == b"PAR1 bytes"
    assert store.list("") == ["log/seg.parquet"]


def test_different_second_write_is_refused_and_object_unchanged(store: ObjectStore) -> None:
    store.put_new("log/seg.parquet", b"original")

    with pytest.raises(ObjectExists) as caught:
        store.put_new("log/seg.parquet", b"tampered")

    assert caught.value.exit_code == EXIT_VERIFY_FAILED
    assert "already exists with different bytes" in str(caught.value)
    assert store.get("log/seg.parquet") == b"original"
    assert store.list("") == ["log/seg.parquet"]


def test_put_new_file_streams_a_local_file(store: ObjectStore, tmp_path: Path) -> None:
    src = tmp_path / "upload.bin"
    src.write_bytes(bytes(range(256)) * 40)
    other = tmp_path / "other.bin"
    other.write_bytes(b"different" * 10)

    first = store.put_new_file("log/s/segments/a.parquet", src)
    retry = store.put_new_file("log/s/segments/a.parquet", src)
    with pytest.raises(ObjectExists):
        store.put_new_file("log/s/segments/a.parquet", other)

    assert (first, retry) == (True, False)
    assert store.get("log/s/segments/a.parquet") == bytes(range(256)) * 40


def test_list_is_sorted_and_scoped(store: ObjectStore) -> None:
    keys = [
        "log/v/trade/B/segments/00000000000000000011-00000000000000000020.parquet",
        "bars/v/B/1m/rev-0001/manifest.json",
        "log/v/trade/A/segments/00000000000000000001-00000000000000000010.parquet",
        "log/v/trade/B/segments/00000000000000000001-00000000000000000010.parquet",
        "BUFF_DATA",
    ]
    for key in keys:
        store.put_new(key, key.encode())

    assert store.list("") == sorted(keys)
    assert store.list("log/v/trade/B") == [
        "log/v/trade/B/segments/00000000000000000001-00000000000000000010.parquet",
        "log/v/trade/B/segments/00000000000000000011-00000000000000000020.parquet",
    ]
    assert store.list("log/v/trade/C") == []
    assert store.list("log/v/trade/B/segments/00000000000000000001") == []  # not a prefix match


def test_missing_object_is_not_found(store: ObjectStore) -> None:
    for read in (store.get, store.size, store.open_input):
        with pytest.raises(ObjectNotFound) as caught:
            read("log/none.parquet")
        assert caught.value.exit_code == EXIT_IO
        assert "log/none.parquet: no such object" in str(caught.value)
    assert store.exists("log/none.parquet") is False


@pytest.mark.parametrize(
    "key", ["", "/abs", "a//b", "../x", "a/../b", "a/./b", ".tmp-x", "a/.lock", "a b", "a\\b", "é"]
)
def test_invalid_keys_are_refused_before_anything_is_written(store: ObjectStore, key: str) -> None:
    with pytest.raises(ValidationError) as caught:
        store.put_new(key, b"x")

    assert caught.value.exit_code == EXIT_USAGE
    assert "invalid object key" in str(caught.value)
    assert store.list("") == []


# -- the manifest chain -----------------------------------------------------------------


def test_manifest_entry_race_one_writer_wins(store: ObjectStore) -> None:
    for position in range(8):
        key = chain_entry_key(MANIFEST, position)

        out = race(lambda tag, key=key: store.put_new(key, f"writer {tag}\n".encode()))

        winners = [tag for tag, result in out.items() if result is True]
        losers = [tag for tag, result in out.items() if isinstance(result, ObjectExists)]
        assert len(winners) == 1 and len(losers) == 1, out
        assert store.get(key) == f"writer {winners[0]}\n".encode()
    assert store.list(MANIFEST) == [chain_entry_key(MANIFEST, i) for i in range(8)]


def test_chain_append_race_one_writer_wins(store: ObjectStore) -> None:
    out = race(lambda tag: store.chain_append(MANIFEST, 0, f'{{"writer":"{tag}"}}'.encode()))

    winners = [tag for tag, result in out.items() if result is True]
    loser = next(result for result in out.values() if isinstance(result, ObjectExists))
    assert len(winners) == 1
    assert "position 0 holds a different entry" in str(loser)
    read = store.chain_read(MANIFEST)
    assert (read.count, read.data) == (1, f'{{"writer":"{winners[0]}"}}\n'.encode())


def test_two_writers_appending_concurrently_never_fork_the_chain(store: ObjectStore) -> None:
    def writer(tag: str) -> int:
        conflicts = 0
        for k in range(5):
            while True:
                at = store.chain_read(MANIFEST).count
                try:
                    store.chain_append(MANIFEST, at, f"{tag}-{k}".encode())
                    break
                except ObjectExists:
                    conflicts += 1  # lost position ``at``: re-read and go on after it
        return conflicts

    out = race(writer)

    read = store.chain_read(MANIFEST)
    assert read.count == 10 and read.faults == []
    assert sorted(read.lines()) == sorted(f"{t}-{k}".encode() for t in "ab" for k in range(5))
    # each writer's own entries stay in its order
    for tag in "ab":
        mine = [line for line in read.lines() if line.startswith(tag.encode())]
        assert mine == [f"{tag}-{k}".encode() for k in range(5)]
    assert all(isinstance(n, int) for n in out.values())


def test_chain_bytes_are_the_manifest_jsonl(store: ObjectStore, tmp_path: Path) -> None:
    lines = manifest_lines(3)

    appended = [store.chain_append(MANIFEST, i, line) for i, line in enumerate(lines)]
    retry = store.chain_append(MANIFEST, 2, lines[2])

    read = store.chain_read(MANIFEST)
    assert appended == [True, True, True] and retry is False
    assert read.data == b"".join(line + b"\n" for line in lines)
    assert (read.count, read.torn_tail, read.faults) == (3, b"", [])
    as_file = tmp_path / "manifest.jsonl"
    as_file.write_bytes(read.data)
    parsed = read_manifest(as_file, SID)
    assert parsed.faults == []
    assert [e.encode() for e in parsed.entries] == lines


def test_local_chain_is_todays_manifest_file(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, fsync=True)
    lines = manifest_lines(2)

    for i, line in enumerate(lines):
        store.chain_append(MANIFEST, i, line)

    path = tmp_path / "log" / SID / "manifest.jsonl"
    assert path.read_bytes() == lines[0] + b"\n" + lines[1] + b"\n"
    assert [e.index for e in read_manifest(path, SID).entries] == [0, 1]


def test_s3_chain_is_one_object_per_entry_under_the_prefix(
    s3_store: S3Store, s3, bucket: str
) -> None:
    store = s3_store
    lines = manifest_lines(2)

    for i, line in enumerate(lines):
        store.chain_append(MANIFEST, i, line)

    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [o["Key"] for o in listed] == [
        f"pre/fix/log/{SID}/manifest/00000000000000000000.json",
        f"pre/fix/log/{SID}/manifest/00000000000000000001.json",
    ]
    body = s3.get_object(Bucket=bucket, Key=listed[1]["Key"])["Body"].read()
    assert body == lines[1] + b"\n"


def test_chain_append_refuses_a_hole_and_a_multi_line_entry(store: ObjectStore) -> None:
    store.chain_append(MANIFEST, 0, b"first")

    with pytest.raises(ImmutabilityError) as hole:
        store.chain_append(MANIFEST, 2, b"third")
    with pytest.raises(ValidationError):
        store.chain_append(MANIFEST, 1, b"two\nlines")

    assert "cannot append position 2" in str(hole.value)
    assert store.chain_read(MANIFEST).data == b"first\n"


def test_local_chain_with_a_torn_tail_refuses_appends(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, fsync=False)
    store.chain_append(MANIFEST, 0, b"whole")
    with store.chain_path(MANIFEST).open("ab") as fh:
        fh.write(b'{"torn')

    read = store.chain_read(MANIFEST)
    with pytest.raises(StorageError) as caught:
        store.chain_append(MANIFEST, 1, b"next")

    assert (read.data, read.count, read.torn_tail) == (b"whole\n", 1, b'{"torn')
    assert "torn line" in str(caught.value)


def test_s3_chain_reports_missing_positions_and_strays(s3_store: S3Store, s3, bucket) -> None:
    store = s3_store
    for i, line in enumerate([b"zero", b"one", b"two"]):
        store.chain_append(MANIFEST, i, line)
    s3.delete_object(Bucket=bucket, Key=f"pre/fix/{chain_entry_key(MANIFEST, 1)}")
    s3.put_object(Bucket=bucket, Key=f"pre/fix/{MANIFEST}/stray.txt", Body=b"x")

    read = store.chain_read(MANIFEST)

    assert read.data == b"zero\ntwo\n"
    assert read.faults == [
        f"s3://{bucket}/pre/fix/{MANIFEST}/stray.txt: not a chain entry",
        f"s3://{bucket}/pre/fix/{MANIFEST}: position 1 is missing",
    ]


# -- Parquet: pyarrow reads it back from the store, DuckDB queries the Arrow data ------


def test_segment_parquet_read_by_pyarrow_and_queried_by_duckdb(
    store: ObjectStore, tmp_path: Path
) -> None:
    batch = raw_batch(300)
    local = tmp_path / "seal.parquet"
    written = write_segment_batches(local, [batch], zstd_level=3, fsync=False)
    key = f"log/{SID}/segments/{1:020d}-{300:020d}.parquet"

    store.put_new_file(key, local)
    table = pq.ParquetFile(store.open_input(key)).read()
    con = duckdb.connect()
    con.register("raw", table)
    row = con.execute(
        "select count(*), min(ingest_seq), max(ingest_seq), sum(octet_length(payload_raw)), "
        "count(distinct payload_sha256) from raw"
    ).fetchone()

    assert hashlib.sha256(store.get(key)).hexdigest() == written.file_sha256
    assert store.size(key) == written.file_bytes
    assert table.equals(pa.Table.from_batches([batch]))
    assert row == (300, 1, 300, 300 * 24, 300)


def test_s3_parquet_column_read_fetches_only_what_it_needs(
    s3_store: S3Store, tmp_path: Path
) -> None:
    store = s3_store
    local = tmp_path / "seal.parquet"
    write_segment_batches(local, [raw_batch(2000, payload_size=200)], zstd_level=1, fsync=False)
    store.put_new_file("seg.parquet", local)
    fetched: list[int] = []
    real = store.get_range

    def counting(key: str, start: int, length: int) -> bytes:
        fetched.append(length)
        return real(key, start, length)

    store.get_range = counting  # type: ignore[method-assign]

    seqs = pq.ParquetFile(store.open_input("seg.parquet")).read(columns=["ingest_seq"])

    assert seqs.column("ingest_seq").to_pylist() == list(range(1, 2001))
    assert 0 < sum(fetched) < store.size("seg.parquet") // 4


def test_s3_read_failure_surfaces_as_storage_error(s3_store: S3Store) -> None:
    store = s3_store
    store.put_new("seg.parquet", b"not parquet at all, but bytes")

    def failing(key: str, start: int, length: int) -> bytes:
        raise StorageError(f"{store.url(key)}: get failed: S3 500 (injected)")

    store.get_range = failing  # type: ignore[method-assign]

    with pytest.raises(StorageError) as caught:
        pq.ParquetFile(store.open_input("seg.parquet"))
    assert caught.value.exit_code == EXIT_IO
    assert "injected" in str(caught.value)


def test_s3_operation_on_a_deleted_bucket_is_a_storage_error(
    s3_store: S3Store, s3, bucket: str
) -> None:
    store = s3_store
    s3.delete_bucket(Bucket=bucket)

    with pytest.raises(StorageError) as caught:
        store.get("log/x.parquet")

    assert not isinstance(caught.value, ObjectNotFound)
    assert exit_code_for(caught.value) == EXIT_IO
    assert "NoSuchBucket" in str(caught.value)


# -- store_for: bad input is one clear line and writes nothing -------------------------


def test_store_for_a_local_path_is_a_local_store(tmp_path: Path) -> None:
    made = store_for(tmp_path / "data")

    assert isinstance(made, LocalStore)
    assert made.root == tmp_path / "data"
    assert not (tmp_path / "data").exists()  # choosing a store writes nothing


def test_store_for_s3_maps_bucket_and_prefix(aws_env: str, bucket: str) -> None:
    made = store_for(f"s3://{bucket}/desk/prod/")

    assert isinstance(made, S3Store)
    assert (made.bucket, made.prefix) == (bucket, "desk/prod")
    assert made.url("BUFF_DATA") == f"s3://{bucket}/desk/prod/BUFF_DATA"
    assert made.client.meta.endpoint_url == aws_env


def _assert_one_line(exc: BaseException, code: int, *needles: str) -> None:
    text = str(exc)
    assert "\n" not in text
    assert exit_code_for(exc) == code
    for needle in needles:
        assert needle in text, text


@pytest.mark.parametrize(
    ("uri", "needle"),
    [
        ("s3://", "no bucket name"),
        ("s3:///x", "no bucket name"),
        ("s3://Bad_Bucket", "invalid bucket name 'Bad_Bucket'"),
        ("s3://ab", "invalid bucket name 'ab'"),
        ("s3://192.168.1.1/x", "invalid bucket name"),
        ("s3://bucket//x", "invalid prefix"),
        ("s3://bucket/../x", "invalid prefix"),
        ("s3://bucket/a b", "invalid prefix"),
        ("ftp://x", "unsupported scheme 'ftp'"),
        ("S3://bucket/x", "unsupported scheme 'S3'"),
        ("s3:bucket/x", "unsupported scheme"),
        ("", "expected a directory or s3://bucket/prefix"),
    ],
)
def test_malformed_uri_is_refused_and_nothing_written(
    uri: str,
    needle: str,
    aws_env: str,
    s3,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    buckets = [b["Name"] for b in s3.list_buckets()["Buckets"]]

    with pytest.raises(ValidationError) as caught:
        store_for(uri)

    _assert_one_line(caught.value, EXIT_USAGE, needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == buckets


def test_no_credentials_is_refused(
    aws_env: str, s3, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")

    with pytest.raises(ValidationError) as caught:
        store_for(f"s3://{bucket}/p")

    _assert_one_line(caught.value, EXIT_USAGE, f"s3://{bucket}/p", "no AWS credentials")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_unreachable_endpoint_is_an_io_error(aws_env: str, monkeypatch) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # a closed port: connection refused
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")

    with pytest.raises(StorageError) as caught:
        store_for("s3://bucket/p")

    _assert_one_line(
        caught.value, EXIT_IO, "cannot reach the S3 endpoint", f"http://127.0.0.1:{port}"
    )


def test_missing_bucket_is_refused_and_not_created(aws_env: str, s3) -> None:
    name = f"t-missing-{uuid.uuid4().hex[:8]}"

    with pytest.raises(ValidationError) as caught:
        store_for(f"s3://{name}/p")

    _assert_one_line(caught.value, EXIT_USAGE, f"bucket '{name}' does not exist", aws_env)
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_s3_without_the_extra_installed_says_how_to_get_it(
    aws_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # import boto3 -> ImportError

    with pytest.raises(ValidationError) as caught:
        store_for("s3://bucket/p")

    _assert_one_line(caught.value, EXIT_USAGE, "pip install 'buff_dataplane[s3]'")
