"""The write-ahead journal: committed events not yet sealed into a segment.

File layout::

    b"BUFFWAL1"  u32 header length  header JSON {"schema_version": 1, "stream_id": ...}
    frame*       u32 body length  u64 xxh64(body)  body

A body is one Arrow IPC record batch of the raw schema (one group commit). A group
commit is durable once its frame is written and fsynced. On recovery, frames are read
until the first one that is short or fails its checksum *at the end of the file*: that
torn tail was never acknowledged and is cut off (its bytes are reported and kept as
evidence by the caller). A bad frame followed by more bytes is corruption, not a torn
write, and raises IntegrityError: nothing is cut.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import xxhash

from buff_dataplane.core.errors import IntegrityError, StorageError
from buff_dataplane.storage.segment import RAW_SCHEMA

MAGIC = b"BUFFWAL1"
_HEADER_LEN = struct.Struct(">I")
_FRAME = struct.Struct(">IQ")
MAX_FRAME_BYTES = 1 << 31


def _header(stream_id: str) -> bytes:
    body = json.dumps({"schema_version": 1, "stream_id": stream_id}, sort_keys=True).encode()
    return MAGIC + _HEADER_LEN.pack(len(body)) + body


class JournalWriter:
    """Appends group-commit frames to one stream's journal file."""

    def __init__(self, path: Path, stream_id: str, *, fsync: bool) -> None:
        self.path = path
        self._fsync = fsync
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
            self._write(_header(stream_id))
        except FileExistsError as exc:
            raise StorageError(f"journal {path} exists; recover the log before writing") from exc
        except OSError as exc:
            raise StorageError(f"cannot create journal {path}: {exc.strerror}") from exc
        if fsync:
            os.fsync(self._fd)
            fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def append(self, batch: pa.RecordBatch) -> int:
        """Write one frame and make it durable; return the bytes written."""
        body = batch.serialize()
        head = _FRAME.pack(body.size, xxhash.xxh64_intdigest(body))
        try:
            written = os.writev(self._fd, [head, body])
            if written != len(head) + body.size:  # a short write: finish it plainly
                self._write((head + body.to_pybytes())[written:])
            if self._fsync:
                os.fdatasync(self._fd)
        except OSError as exc:
            raise StorageError(f"journal append to {self.path} failed: {exc.strerror}") from exc
        return len(head) + int(body.size)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


@dataclass
class JournalContents:
    stream_id: str | None
    batches: list[pa.RecordBatch] = field(default_factory=list)
    good_bytes: int = 0
    torn_bytes: int = 0
    torn_reason: str = ""


def read_journal(path: Path) -> JournalContents:
    """Read every intact frame; describe (do not cut) a torn tail."""
    data = path.read_bytes()
    size = len(data)
    head_len = len(MAGIC) + _HEADER_LEN.size
    if size < head_len or data[: len(MAGIC)] != MAGIC:
        if data[: len(MAGIC)] != MAGIC[: min(size, len(MAGIC))]:
            raise IntegrityError(f"journal {path}: bad magic, not a buff journal")
        return JournalContents(None, torn_bytes=size, torn_reason="torn header")
    (hlen,) = _HEADER_LEN.unpack_from(data, len(MAGIC))
    if head_len + hlen > size:
        return JournalContents(None, torn_bytes=size, torn_reason="torn header")
    try:
        header = json.loads(data[head_len : head_len + hlen])
        stream_id = str(header["stream_id"])
    except (ValueError, KeyError) as exc:
        raise IntegrityError(f"journal {path}: unreadable header") from exc
    out = JournalContents(stream_id)
    pos = head_len + hlen
    while pos < size:
        if pos + _FRAME.size > size:
            out.torn_reason = "short frame header"
            break
        length, digest = _FRAME.unpack_from(data, pos)
        end = pos + _FRAME.size + length
        if length > MAX_FRAME_BYTES or end > size:
            out.torn_reason = "short frame body"
            break
        body = data[pos + _FRAME.size : end]
        if xxhash.xxh64_intdigest(body) != digest:
            if end < size:
                raise IntegrityError(
                    f"journal {path}: frame at byte {pos} fails its checksum and is followed "
                    f"by {size - end} more bytes; corruption, not a torn write"
                )
            out.torn_reason = "checksum mismatch in last frame"
            break
        try:
            batch = pa.ipc.read_record_batch(pa.py_buffer(body), RAW_SCHEMA)
        except pa.ArrowException as exc:
            raise IntegrityError(f"journal {path}: frame at byte {pos} does not decode") from exc
        out.batches.append(batch)
        pos = end
    out.good_bytes = pos
    out.torn_bytes = size - pos
    return out
