"""The Arrow schema of the raw log and sealed Parquet segments.

A segment holds one stream's events for one contiguous ingest_seq range. It is written
once (temp file, fsync, read-only, link to its final name) and never rewritten.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from buff_dataplane.core.errors import ImmutabilityError, StorageError
from buff_dataplane.storage.layout import write_file_atomic

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


def encode_segment(table: pa.Table, *, zstd_level: int) -> bytes:
    """Parquet bytes of ``table`` with the project's pinned writer options."""
    if not table.schema.equals(RAW_SCHEMA, check_metadata=False):
        raise StorageError("segment table does not have the raw_event v1 schema")
    sink = pa.BufferOutputStream()
    pq.write_table(
        table.replace_schema_metadata(RAW_SCHEMA.metadata),
        sink,
        compression="zstd",
        compression_level=zstd_level,
        use_dictionary=_DICTIONARY_COLUMNS,
        column_encoding=_DELTA_COLUMNS,
        row_group_size=ROW_GROUP_ROWS,
        write_statistics=True,
        store_schema=True,
    )
    return bytes(sink.getvalue().to_pybytes())


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

    Hashes the column's contiguous buffer instead of looping over rows.
    """
    if isinstance(hashes, pa.ChunkedArray):
        hashes = hashes.combine_chunks()
    if hashes.null_count:
        raise StorageError("payload_sha256 holds nulls")
    buf = hashes.buffers()[1]
    if buf is None:  # an empty column
        return hashlib.sha256(b"").hexdigest()
    start = hashes.offset * 32
    return hashlib.sha256(memoryview(buf)[start : start + 32 * len(hashes)]).hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
