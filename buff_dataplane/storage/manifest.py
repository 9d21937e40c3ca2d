"""The per-stream manifest: one hash-chained JSON line per sealed segment.

Each line is the canonical JSON (sorted keys, no spaces) of a :class:`ManifestEntry`,
ending in a newline. ``prev`` is the SHA-256 of the previous line's bytes (without its
newline); the first line's ``prev`` is :func:`genesis` of the stream. ``index`` counts
lines from 0. An edit, a removal or a reordering of any line breaks the chain at the
next line (or leaves a sealed segment that no line names).

The chain is kept by an :class:`~buff_dataplane.storage.objstore.ObjectStore`
(:func:`read_store_manifest`; appended with ``chain_append``): a local directory keeps
it as ``manifest.jsonl``, S3 as one object per line (plus a checkpoint every 1,000
lines); the bytes and the checks are the same.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from buff_dataplane.core.errors import StorageError
from buff_dataplane.storage.objstore import ChainRead, LocalStore, ObjectStore

logger = logging.getLogger(__name__)

MANIFEST_VERSION = 1


class ManifestEntry(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    v: int
    index: int
    stream_id: str
    segment: str
    seq_from: int
    seq_to: int
    rows: int
    ts_exchange_min: int | None
    ts_exchange_max: int | None
    ts_ingest_min: int
    ts_ingest_max: int
    payload_bytes: int
    file_bytes: int
    file_sha256: str
    payload_digest: str
    prev: str

    def encode(self) -> bytes:
        return msgspec.json.encode(self, order="sorted")


def genesis(stream_id: str) -> str:
    return hashlib.sha256(b"buff-manifest-v1\x00" + stream_id.encode()).hexdigest()


def line_hash(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


_decoder = msgspec.json.Decoder(ManifestEntry)


@dataclass
class ManifestRead:
    entries: list[ManifestEntry] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    torn_tail: bytes = b""
    # Byte offset just past the last complete line (where a torn tail starts).
    good_bytes: int = 0

    @property
    def head(self) -> str | None:
        return None if not self.entries else line_hash(self.entries[-1].encode())


def read_manifest(path: Path, stream_id: str) -> ManifestRead:
    """Parse and check the whole chain; collect every fault instead of stopping at one."""
    if not path.exists():
        return ManifestRead()
    data = path.read_bytes()
    cut = data.rfind(b"\n") + 1
    out = parse_manifest(data[:cut], str(path), stream_id)
    out.torn_tail = data[cut:]
    return out


def read_store_manifest(
    store: ObjectStore, name: str, stream_id: str, *, use_checkpoints: bool = True
) -> ManifestRead:
    """Read and check chain ``name`` of ``store``; faults name the file (or S3 URL).

    A local store may hold a torn last line (a crash mid-append); on S3 a PUT is atomic,
    and missing positions or foreign keys under the chain come as faults. On S3 the read
    starts from the chain's highest usable checkpoint; since each line holds the hash of
    the one before, a checkpoint that differs from the entries breaks the chain, and
    then the chain is read again from its entries alone (``verify-log`` reports the
    checkpoint). ``use_checkpoints=False`` reads the entries alone from the start.
    """
    read = store.chain_read(name, use_checkpoints=use_checkpoints)
    out = manifest_of_chain(store, name, stream_id, read)
    if out.faults and read.checkpoint:
        logger.warning(
            "%s: read from checkpoint %d: %s; reading its entries instead (run buff verify-log)",
            chain_where(store, name),
            read.checkpoint,
            out.faults[0],
        )
        return read_store_manifest(store, name, stream_id, use_checkpoints=False)
    return out


def manifest_of_chain(
    store: ObjectStore, name: str, stream_id: str, read: ChainRead
) -> ManifestRead:
    """Check chain ``name``'s ``read`` (a :meth:`ObjectStore.chain_read`) as a manifest."""
    out = parse_manifest(read.data, chain_where(store, name), stream_id)
    out.torn_tail = read.torn_tail
    out.faults[:0] = read.faults
    return out


def chain_where(store: ObjectStore, name: str) -> str:
    """How messages name a chain: the local ``manifest.jsonl`` file, or its S3 prefix."""
    return str(store.chain_path(name)) if isinstance(store, LocalStore) else store.url(name)


def parse_manifest(data: bytes, where: str, stream_id: str) -> ManifestRead:
    """Check complete lines ``data`` (each ending in a newline) as one stream's chain."""
    out = ManifestRead(good_bytes=len(data))
    expected_prev = genesis(stream_id)
    last_to: int | None = None
    for number, raw in enumerate(data.splitlines(), start=1):
        try:
            entry = _decoder.decode(raw)
        except msgspec.DecodeError as exc:
            out.faults.append(f"{where}: line {number} is not a manifest entry ({exc})")
            expected_prev = line_hash(raw)
            continue
        if entry.encode() != raw:
            out.faults.append(f"{where}: line {number} is not in canonical form (edited?)")
        if entry.prev != expected_prev:
            out.faults.append(
                f"{where}: line {number} breaks the hash chain "
                f"(prev {entry.prev[:16]}..., expected {expected_prev[:16]}...)"
            )
        if entry.index != number - 1:
            out.faults.append(
                f"{where}: line {number} has index {entry.index}, expected {number - 1}"
            )
        if entry.stream_id != stream_id:
            out.faults.append(f"{where}: line {number} names stream {entry.stream_id!r}")
        if entry.v != MANIFEST_VERSION:
            out.faults.append(f"{where}: line {number} has unknown version {entry.v}")
        if last_to is not None and entry.seq_from != last_to + 1:
            out.faults.append(
                f"{where}: line {number} starts at seq {entry.seq_from}, expected {last_to + 1}"
            )
        if entry.seq_to < entry.seq_from or entry.rows != entry.seq_to - entry.seq_from + 1:
            out.faults.append(
                f"{where}: line {number} range {entry.seq_from}..{entry.seq_to} "
                f"does not hold {entry.rows} rows"
            )
        last_to = entry.seq_to
        expected_prev = line_hash(raw)
        out.entries.append(entry)
    return out


def append_entry(path: Path, entry: ManifestEntry, *, fsync: bool) -> None:
    line = entry.encode() + b"\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as exc:
        raise StorageError(f"cannot open manifest {path}: {exc.strerror}") from exc
    try:
        view = memoryview(line)
        while view:
            view = view[os.write(fd, view) :]
        if fsync:
            os.fsync(fd)
    except OSError as exc:
        raise StorageError(f"manifest append to {path} failed: {exc.strerror}") from exc
    finally:
        os.close(fd)


def truncate_torn_tail(path: Path, good_bytes: int, *, fsync: bool) -> None:
    """Cut a partial last line left by a crash mid-append (it was never acknowledged)."""
    with path.open("r+b") as fh:
        fh.truncate(good_bytes)
        if fsync:
            os.fsync(fh.fileno())
