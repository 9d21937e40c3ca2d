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
from collections.abc import Iterator
from pathlib import Path
from typing import IO

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


class JournalReader:
    """Reads a journal frame by frame; iterating yields one record batch per frame.

    Only the current frame is in memory, so reading a journal costs memory in
    proportion to one group commit, not to the journal. When iteration ends,
    ``stream_id``, ``frames``, ``rows``, ``good_bytes`` and a torn tail
    (``torn_bytes``, ``torn_reason``; described, not cut) are known. A bad frame
    followed by more bytes raises IntegrityError.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stream_id: str | None = None
        self.frames = self.rows = self.good_bytes = self.torn_bytes = 0
        self.torn_reason = ""

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        path = self.path
        self.stream_id, self.frames, self.rows = None, 0, 0
        self.good_bytes, self.torn_bytes, self.torn_reason = 0, 0, ""
        try:
            fh = path.open("rb")
        except OSError as exc:
            raise StorageError(f"cannot read journal {path}: {exc.strerror}") from exc
        with fh:
            size = os.fstat(fh.fileno()).st_size
            pos = self._read_header(fh, size)
            if pos is None:
                self.torn_bytes = size
                self.torn_reason = "torn header"
                return
            while pos < size:
                head = fh.read(_FRAME.size)
                if len(head) < _FRAME.size:
                    self.torn_reason = "short frame header"
                    break
                length, digest = _FRAME.unpack(head)
                end = pos + _FRAME.size + length
                if length > MAX_FRAME_BYTES or end > size:
                    self.torn_reason = "short frame body"
                    break
                # Read into Arrow memory: the batch is a view of it, and the Arrow pool
                # hands memory back after a seal where the Python heap would keep it.
                body = pa.allocate_buffer(length)
                if fh.readinto(memoryview(body)) < length:
                    self.torn_reason = "short frame body"
                    break
                if xxhash.xxh64_intdigest(memoryview(body)) != digest:
                    if end < size:
                        raise IntegrityError(
                            f"journal {path}: frame at byte {pos} fails its checksum and is "
                            f"followed by {size - end} more bytes; corruption, not a torn write"
                        )
                    self.torn_reason = "checksum mismatch in last frame"
                    break
                try:
                    batch = pa.ipc.read_record_batch(body, RAW_SCHEMA)
                except pa.ArrowException as exc:
                    raise IntegrityError(
                        f"journal {path}: frame at byte {pos} does not decode"
                    ) from exc
                pos = self.good_bytes = end
                self.frames += 1
                self.rows += batch.num_rows
                yield batch
            self.good_bytes = pos
            self.torn_bytes = size - pos

    def _read_header(self, fh: IO[bytes], size: int) -> int | None:
        """Set ``stream_id``; return the offset of the first frame (None: torn header)."""
        head_len = len(MAGIC) + _HEADER_LEN.size
        head = fh.read(head_len)
        if size < head_len or head[: len(MAGIC)] != MAGIC:
            if head[: len(MAGIC)] != MAGIC[: min(size, len(MAGIC))]:
                raise IntegrityError(f"journal {self.path}: bad magic, not a buff journal")
            return None
        (hlen,) = _HEADER_LEN.unpack_from(head, len(MAGIC))
        if head_len + hlen > size:
            return None
        try:
            header = json.loads(fh.read(hlen))
            self.stream_id = str(header["stream_id"])
        except (ValueError, KeyError) as exc:
            raise IntegrityError(f"journal {self.path}: unreadable header") from exc
        self.good_bytes = head_len + hlen
        return self.good_bytes
