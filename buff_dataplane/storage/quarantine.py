"""Quarantine: refused payloads, kept with their reason instead of being dropped.

One append-only JSON-lines file per venue and UTC day of receipt:
``quarantine/<venue>/<YYYY-MM-DD>.jsonl``. Each line holds the receive time, venue,
stream (when known), a snake_case reason, a detail, where the payload came from, its
SHA-256 and the payload itself in base64 (bytes that may not be UTF-8).

A log whose sealed data is in an object store still writes these files first, in its
local state directory (durable even while the store is unreachable), and also publishes
each record as one object, ``quarantine/<venue>/<YYYY-MM-DD>/<writer>-<line:08d>.json``:
``<writer>`` is a stable 16-hex id of the state directory (:func:`writer_id`), ``<line>``
the record's 1-based line in its local day file, the body that line, newline included.
Records are published on :meth:`Quarantine.flush` and, for whatever an earlier flush
could not publish, by :meth:`Quarantine.publish_pending` when a writer opens the log;
``put_new`` makes a re-publish of the same line a no-op. ``quarantine/torn/`` (torn
journal tails kept by recovery) stays local and is never published.
"""

from __future__ import annotations

import base64
import concurrent.futures
import datetime as dt
import hashlib
import os
import re
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

import msgspec

from buff_dataplane.core.errors import IntegrityError, StorageError
from buff_dataplane.core.ids import validate_venue
from buff_dataplane.storage.objstore import ObjectStore

if TYPE_CHECKING:
    from buff_dataplane.storage.log import RawLog

QUARANTINE_PREFIX = "quarantine"  # in the store, as the local directory is named
TORN_DIR = "torn"  # recovery's evidence of torn journal tails: local only
_DAY_FILE_RE = re.compile(r"\d{4}-\d{2}-\d{2}\.jsonl")
_RECORD_KEY_RE = re.compile(r"[a-z0-9-]+/\d{4}-\d{2}-\d{2}/[0-9a-f]{16}-\d{8,}\.json")


class QuarantineRecord(msgspec.Struct, frozen=True, kw_only=True):
    received_ms: int
    venue: str
    stream_id: str | None
    reason: str
    detail: str
    origin: str | None
    payload_sha256: str
    payload_b64: str

    @property
    def payload(self) -> bytes:
        return base64.b64decode(self.payload_b64)


def _day(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms // 1000, tz=dt.UTC).strftime("%Y-%m-%d")


def writer_id(state_dir: Path) -> str:
    """A stable 16-hex id of a state directory: its host and resolved path, hashed."""
    text = f"{socket.gethostname()}:{state_dir.resolve()}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def record_key(venue: str, day: str, writer: str, line: int) -> str:
    """The store key of line ``line`` (1-based) of ``writer``'s day file of ``venue``."""
    return f"{QUARANTINE_PREFIX}/{venue}/{day}/{writer}-{line:08d}.json"


class Quarantine:
    """Appends records to the local day files; with a ``store``, publishes them there too.

    ``root`` is the local quarantine directory (``<state dir>/quarantine``); ``writer``
    defaults to :func:`writer_id` of its parent, the state directory.
    """

    def __init__(
        self,
        root: Path,
        *,
        fsync: bool,
        store: ObjectStore | None = None,
        writer: str | None = None,
    ) -> None:
        self.dir = root
        self._fsync = fsync
        self._files: dict[Path, IO[bytes]] = {}
        self.counts: Counter[str] = Counter()
        self.store = store
        self.writer = writer or (writer_id(root.parent) if store is not None else "")
        self._lines: dict[Path, int] = {}  # complete lines in each open day file
        self._pending: list[tuple[str, bytes]] = []  # (key, line) not yet published

    def add(
        self,
        *,
        venue: str,
        payload: bytes,
        reason: str,
        received_ms: int,
        detail: str = "",
        stream_id: str | None = None,
        origin: str | None = None,
    ) -> QuarantineRecord:
        validate_venue(venue)
        record = QuarantineRecord(
            received_ms=received_ms,
            venue=venue,
            stream_id=stream_id,
            reason=reason,
            detail=detail[:500],
            origin=origin,
            payload_sha256=hashlib.sha256(payload).hexdigest(),
            payload_b64=base64.b64encode(payload).decode("ascii"),
        )
        day = _day(received_ms)
        path = self.dir / venue / f"{day}.jsonl"
        fh = self._files.get(path)
        line = msgspec.json.encode(record, order="sorted") + b"\n"
        try:
            if fh is None:
                path.parent.mkdir(parents=True, exist_ok=True)
                fh = self._files[path] = path.open("ab")
                if self.store is not None:
                    self._lines[path] = _count_lines(path)
            fh.write(line)
        except OSError as exc:
            raise StorageError(f"cannot write quarantine {path}: {exc.strerror}") from exc
        if self.store is not None:
            self._lines[path] += 1
            self._pending.append((record_key(venue, day, self.writer, self._lines[path]), line))
        self.counts[reason] += 1
        return record

    def flush(self) -> None:
        """Make the local files durable; then publish what was added since the last time.

        A StorageError from the store leaves the unpublished records pending (they are in
        the local files) and is raised for the caller to decide; :meth:`publish_pending`
        at the next open publishes them if no later flush did.
        """
        for fh in self._files.values():
            fh.flush()
            if self._fsync:
                os.fsync(fh.fileno())
        self.publish()

    def publish(self) -> None:
        """Publish the records added since the last successful publish (flush() calls it).

        Call it after the local files are flushed; a StorageError keeps what failed pending.
        """
        if self.store is not None and self._pending:
            self._pending, error = _put_all(self.store, self._pending)
            if error is not None:
                raise error

    def close(self) -> None:
        try:
            self.flush()
        finally:
            for fh in self._files.values():
                fh.close()
            self._files.clear()

    @property
    def pending(self) -> int:
        """Records added but not yet published to the store."""
        return len(self._pending)

    def publish_pending(self) -> int:
        """Publish every local record of this writer that the store lacks; return how many.

        The recovery step of a writer opening a store log: reads each local day file,
        lists its day prefix in the store once, and puts only the missing lines.
        """
        store = self.store
        if store is None:
            return 0
        for fh in self._files.values():
            fh.flush()
        missing: list[tuple[str, bytes]] = []
        for path in _day_files(self.dir):
            venue, day = path.parent.name, path.name.removesuffix(".jsonl")
            lines = _complete_lines(path)
            if not lines:
                continue
            have = set(store.list(f"{QUARANTINE_PREFIX}/{venue}/{day}"))
            for n, line in enumerate(lines, 1):
                key = record_key(venue, day, self.writer, n)
                if key not in have and _is_record(line):
                    missing.append((key, line))
        self._pending, error = _put_all(store, missing)
        if error is not None:
            raise error
        return len(missing)


def _put_all(
    store: ObjectStore, items: list[tuple[str, bytes]]
) -> tuple[list[tuple[str, bytes]], BaseException | None]:
    """put_new every (key, body), 8 at a time: the ones that failed, and the first error."""
    if not items:
        return [], None
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, len(items))) as pool:
        futures = [pool.submit(store.put_new, key, body) for key, body in items]
    failed = [item for item, f in zip(items, futures, strict=True) if f.exception() is not None]
    errors = [f.exception() for f in futures if f.exception() is not None]
    return failed, errors[0] if errors else None


def _count_lines(path: Path) -> int:
    count = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            count += chunk.count(b"\n")
    return count


def _complete_lines(path: Path) -> list[bytes]:
    """The lines of ``path`` that end in a newline (newline kept); a torn tail is not one."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise StorageError(f"cannot read quarantine {path}: {exc.strerror}") from exc
    return [line + b"\n" for line in data.split(b"\n")[:-1]]


def _is_record(line: bytes) -> bool:
    """False for a line that is not a record (a torn write that a later one continued)."""
    try:
        _decoder.decode(line)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return False
    return True


def _day_files(root: Path) -> list[Path]:
    """The local day files ``<venue>/<YYYY-MM-DD>.jsonl``, sorted; ``torn/`` is not one."""
    if not root.is_dir():
        return []
    return sorted(
        p
        for p in root.glob("*/*.jsonl")
        if p.parent.name != TORN_DIR and _DAY_FILE_RE.fullmatch(p.name)
    )


_decoder = msgspec.json.Decoder(QuarantineRecord)


def read_quarantine(root: Path) -> Iterator[QuarantineRecord]:
    """Every quarantined record under ``root`` in file-name order, then line order."""
    if not root.is_dir():
        return
    for path in sorted(root.glob("*/*.jsonl")):
        with path.open("rb") as fh:
            for line in fh:
                if line.endswith(b"\n"):
                    yield _decoder.decode(line)


def read_store_quarantine(store: ObjectStore) -> Iterator[QuarantineRecord]:
    """Every record published under ``quarantine/`` in ``store``, in key order.

    Keys under ``quarantine/torn/`` are skipped (local evidence, never published); any
    other key that is not a record, or a body that is not one record line, is an
    IntegrityError naming the key.
    """
    keys: list[str] = []
    for key in store.list(QUARANTINE_PREFIX):
        rel = key[len(QUARANTINE_PREFIX) + 1 :]
        if rel.startswith(TORN_DIR + "/"):
            continue
        if not _RECORD_KEY_RE.fullmatch(rel):
            raise IntegrityError(f"{store.url(key)}: not a quarantine record key")
        keys.append(key)
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        for start in range(0, len(keys), 256):
            batch = keys[start : start + 256]
            for key, body in zip(batch, pool.map(store.get, batch), strict=True):
                if not body.endswith(b"\n") or body.count(b"\n") != 1:
                    raise IntegrityError(f"{store.url(key)}: quarantine record is not one line")
                try:
                    yield _decoder.decode(body)
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    raise IntegrityError(f"{store.url(key)}: bad quarantine record: {exc}") from exc


def quarantine_records(log: RawLog) -> Iterator[QuarantineRecord]:
    """The log's quarantined records: its local files for a local log, else its store's.

    A store log's records are all in the store once published (a writer publishes its
    leftovers when it opens), so the store is what every reader of that log sees.
    """
    if log.store_is_root:
        return read_quarantine(log.root / QUARANTINE_PREFIX)
    return read_store_quarantine(log.store)
