"""The Arrow schema of the raw log and sealed Parquet segments.

A segment holds one stream's events for one contiguous ingest_seq range. It is written
once (temp file, fsync, read-only, link to its final name) and never rewritten. It is
encoded as a stream of record batches, one row group in memory at a time, so sealing a
segment costs memory in proportion to a row group, not to the segment.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from buff_dataplane.core.errors import ImmutabilityError, IntegrityError, StorageError
from buff_dataplane.core.ids import StreamId
from buff_dataplane.storage.layout import atomic_file, segment_key, write_all, write_file_atomic
from buff_dataplane.storage.objstore import LocalStore, ObjectStore

RAW_SCHEMA = pa.schema(
    [
        pa.field("stream_id", pa.string(), nullable=False),
        pa.field("ingest_seq", pa.int64(), nullable=False),
        pa.field("event_ts_exchange_ms", pa.int64(), nullable=True),
        pa.field("event_ts_ingest_ms", pa.int64(), nullable=False),
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("channel", pa.string(), nullable=False),
        pa.field("payload_raw", pa.binary(), nullable=False),
        pa.field("payload_sha256", pa.binary(32), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("schema_version", pa.int16(), nullable=False),
        pa.field("origin", pa.string(), nullable=True),
        pa.field("conn_id", pa.int64(), nullable=True),
    ],
    metadata={"buff.schema": "raw_event", "buff.schema_version": "1"},
)

_DICTIONARY_COLUMNS = ["stream_id", "symbol", "channel", "source", "origin"]
_DELTA_COLUMNS = {
    "ingest_seq": "DELTA_BINARY_PACKED",
    "event_ts_exchange_ms": "DELTA_BINARY_PACKED",
    "event_ts_ingest_ms": "DELTA_BINARY_PACKED",
    "conn_id": "DELTA_BINARY_PACKED",
}
ROW_GROUP_ROWS = 131_072


# The pinned writer options. Changing any of them changes segment bytes (file_sha256).
WRITER_OPTIONS: dict[str, object] = {
    "compression": "zstd",
    "use_dictionary": _DICTIONARY_COLUMNS,
    "column_encoding": _DELTA_COLUMNS,
    "write_statistics": True,
    "store_schema": True,
}


@dataclass
class SegmentStats:
    """The manifest statistics of a run of raw rows, accumulated batch by batch.

    Holds a few integers and a running SHA-256, never the rows: a writer keeps one for
    its committed, unsealed events, and sealing recomputes one from what it encodes.
    ``add`` refuses rows whose ingest_seq does not continue densely.
    """

    rows: int = 0
    seq_from: int | None = None
    seq_to: int | None = None
    ts_exchange_min: int | None = None
    ts_exchange_max: int | None = None
    ts_ingest_min: int | None = None
    ts_ingest_max: int | None = None
    payload_bytes: int = 0
    _hashes: hashlib._Hash = field(default_factory=hashlib.sha256, repr=False, compare=False)

    def add(self, batch: pa.RecordBatch) -> None:
        n = batch.num_rows
        if n == 0:
            return
        seqs = batch.column("ingest_seq")
        first = seqs[0].as_py()
        if self.seq_to is not None and first != self.seq_to + 1:
            raise IntegrityError(f"rows resume at seq {first}, expected {self.seq_to + 1}")
        if not seqs.equals(pa.arange(first, first + n)):
            raise IntegrityError(f"ingest_seq is not dense in rows from seq {first}")
        self._hashes.update(hashes_view(batch.column("payload_sha256")))
        if self.seq_from is None:
            self.seq_from = first
        self.seq_to = first + n - 1
        self.rows += n
        ex = pc.min_max(batch.column("event_ts_exchange_ms"))
        ing = pc.min_max(batch.column("event_ts_ingest_ms"))
        self.ts_exchange_min = _min(self.ts_exchange_min, ex["min"].as_py())
        self.ts_exchange_max = _max(self.ts_exchange_max, ex["max"].as_py())
        self.ts_ingest_min = _min(self.ts_ingest_min, ing["min"].as_py())
        self.ts_ingest_max = _max(self.ts_ingest_max, ing["max"].as_py())
        self.payload_bytes += int(pc.sum(pc.binary_length(batch.column("payload_raw"))).as_py())

    @property
    def payload_digest(self) -> str:
        """SHA-256 over the concatenated payload hashes so far (see :func:`hashes_digest`)."""
        return self._hashes.hexdigest()

    def summary(self) -> dict[str, object]:
        """Every manifest field these stats determine."""
        return {
            "rows": self.rows,
            "seq_from": self.seq_from,
            "seq_to": self.seq_to,
            "ts_exchange_min": self.ts_exchange_min,
            "ts_exchange_max": self.ts_exchange_max,
            "ts_ingest_min": self.ts_ingest_min,
            "ts_ingest_max": self.ts_ingest_max,
            "payload_bytes": self.payload_bytes,
            "payload_digest": self.payload_digest,
        }


def _min(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


class _HashingSink:
    """A write-only file object over ``fd`` that hashes what it writes (for ParquetWriter)."""

    closed = False

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        write_all(self._fd, data)
        self.size += len(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True  # the fd belongs to atomic_file


def _row_groups(
    batches: Iterable[pa.RecordBatch], stats: SegmentStats
) -> Iterator[list[pa.RecordBatch]]:
    """Cut the stream into row groups of ROW_GROUP_ROWS, keeping the batch boundaries.

    This is exactly how ``pq.write_table`` slices one table made of these batches, so the
    Parquet bytes equal those of encoding the whole table at once.
    """
    group: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        if not batch.schema.equals(RAW_SCHEMA, check_metadata=False):
            raise StorageError("segment rows do not have the raw_event v1 schema")
        stats.add(batch)
        while batch.num_rows:
            take = min(ROW_GROUP_ROWS - rows, batch.num_rows)
            group.append(batch.slice(0, take))
            rows += take
            batch = batch.slice(take)
            if rows == ROW_GROUP_ROWS:
                yield group
                group, rows = [], 0
    if group:
        yield group


@dataclass(frozen=True)
class WrittenSegment:
    file_sha256: str
    file_bytes: int
    stats: SegmentStats


def write_segment_batches(
    path: Path,
    batches: Iterable[pa.RecordBatch],
    *,
    zstd_level: int,
    fsync: bool,
    check: Callable[[SegmentStats], None] | None = None,
) -> WrittenSegment:
    """Encode ``batches`` as a Parquet segment and publish it read-only at ``path``.

    Streams: one row group is in memory at a time, and the stats, the file's SHA-256
    and size are computed on the way. ``check`` sees the final stats before the file is
    published; if it (or anything else) raises, nothing is published. Never overwrites.
    """
    exists = ImmutabilityError(
        f"segment {path} already exists; sealed segments are never rewritten"
    )
    if path.exists():
        raise exists
    stats = SegmentStats()
    try:
        with atomic_file(path, fsync=fsync, read_only=True) as fd:
            sink = _HashingSink(fd)
            writer = pq.ParquetWriter(
                sink, RAW_SCHEMA, compression_level=zstd_level, **WRITER_OPTIONS
            )
            try:
                for group in _row_groups(batches, stats):
                    table = pa.Table.from_batches(group, schema=RAW_SCHEMA)
                    writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
                    del table, group  # else they live on while the next group is read
            except BaseException:
                with contextlib.suppress(Exception):
                    writer.close()  # the temp file is removed; keep the first error
                raise
            writer.close()
            if not stats.rows:
                raise StorageError(f"segment {path}: no rows to seal")
            if check is not None:
                check(stats)
    except FileExistsError as exc:
        raise exists from exc
    return WrittenSegment(sink.sha256.hexdigest(), sink.size, stats)


def write_segment(path: Path, data: bytes, *, fsync: bool) -> str:
    """Publish ``data`` at ``path`` read-only; return its SHA-256 hex. Never overwrites."""
    if path.exists():
        raise ImmutabilityError(
            f"segment {path} already exists; sealed segments are never rewritten"
        )
    try:
        write_file_atomic(path, data, fsync=fsync, read_only=True)
    except FileExistsError as exc:
        raise ImmutabilityError(
            f"segment {path} already exists; sealed segments are never rewritten"
        ) from exc
    return hashlib.sha256(data).hexdigest()


def read_segment(path: Path, columns: list[str] | None = None) -> pa.Table:
    try:
        return pq.read_table(path, columns=columns)
    except (OSError, pa.ArrowException) as exc:
        raise StorageError(f"cannot read segment {path}: {exc}") from exc


def hashes_digest(hashes: pa.Array | pa.ChunkedArray) -> str:
    """payload_digest: SHA-256 over the concatenated 32-byte hashes, in row order.

    Hashes each chunk's contiguous buffer instead of looping over rows; since it is a
    hash of a concatenation, :class:`SegmentStats` computes it incrementally.
    """
    h = hashlib.sha256()
    chunks = hashes.chunks if isinstance(hashes, pa.ChunkedArray) else [hashes]
    for chunk in chunks:
        h.update(hashes_view(chunk))
    return h.hexdigest()


def hashes_view(hashes: pa.Array) -> memoryview:
    """The contiguous 32-byte values of a fixed_size_binary(32) array, without copying."""
    if hashes.null_count:
        raise StorageError("payload_sha256 holds nulls")
    buf = hashes.buffers()[1]
    if buf is None:  # an empty column
        return memoryview(b"")
    start = hashes.offset * 32
    return memoryview(buf)[start : start + 32 * len(hashes)]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def object_sha256(store: ObjectStore, key: str) -> str:
    """The SHA-256 of a stored segment, streamed (a local file is read as before)."""
    if isinstance(store, LocalStore):
        return file_sha256(store.path(key))
    h = hashlib.sha256()
    with store.open_input(key) as source:
        while chunk := source.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def segment_source(store: ObjectStore, key: str) -> str | pa.NativeFile:
    """What ``pq.ParquetFile`` / ``pq.read_table`` should open for a stored segment.

    A local segment is opened by its path, as it always was; an object elsewhere
    through the store's random-access reader (ranged GETs: footer, then row groups).
    """
    if isinstance(store, LocalStore):
        return str(store.path(key))
    return store.open_input(key)


class SegmentFiles:
    """Local files of stored segments, for readers that need a path (DuckDB).

    On a local directory a segment is its file, used in place. In another store (S3) it
    is downloaded on first use into a temp directory that is removed on exit, hashing on
    the way, so its SHA-256 costs no second read. A task runs in its own process or on
    its own machine, so each task makes its own copies.
    """

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._tmp: Path | None = None
        self._fetched: dict[str, tuple[Path, str]] = {}

    def __enter__(self) -> SegmentFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
            self._fetched.clear()

    @staticmethod
    def key(stream_id: str, segment: str) -> str:
        return segment_key(StreamId.parse(stream_id), segment)

    def url(self, stream_id: str, segment: str) -> str:
        return self.store.url(self.key(stream_id, segment))

    def exists(self, stream_id: str, segment: str) -> bool:
        key = self.key(stream_id, segment)
        return key in self._fetched or self.store.exists(key)

    def path(self, stream_id: str, segment: str) -> Path:
        """The segment as a local file (downloaded once if the store is not local)."""
        key = self.key(stream_id, segment)
        if isinstance(self.store, LocalStore):
            return self.store.path(key)
        return self._fetch(key)[0]

    def sha256(self, stream_id: str, segment: str) -> str:
        key = self.key(stream_id, segment)
        if isinstance(self.store, LocalStore):
            return file_sha256(self.store.path(key))
        return self._fetch(key)[1]

    def _fetch(self, key: str) -> tuple[Path, str]:
        got = self._fetched.get(key)
        if got is not None:
            return got
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="buff-segments-"))
        # The key's own layout, so the file keeps its segment name (bars cite it).
        path = self._tmp.joinpath(*key.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        try:
            with self.store.open_input(key) as source, path.open("wb") as out:
                while chunk := source.read(1 << 20):
                    h.update(chunk)
                    out.write(chunk)
        except OSError as exc:
            raise StorageError(f"cannot copy {self.store.url(key)} to {path}: {exc}") from exc
        got = self._fetched[key] = (path, h.hexdigest())
        return got
