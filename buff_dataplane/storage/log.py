"""The raw event log: per-stream writers, group commit, sealing, crash recovery.

``open_log(root)`` takes the data directory's write lock, recovers every stream left by
a crash (journal -> sealed segment, torn tails cut and kept as evidence), and hands out
one :class:`StreamWriter` per stream. A writer assigns ``ingest_seq`` (dense and strictly
increasing per stream, continuing across restarts), hashes payloads, and appends them to
the journal in group commits; an event is acknowledged once its group commit returned.
Only acknowledged events survive a crash, and only they ever held an ingest_seq that a
reader can see, so no seq visible in the log is ever reused.

Where the sealed data lives is an :class:`~buff_dataplane.storage.objstore.ObjectStore`:
segments are published with ``put_new`` semantics and manifest lines with
``chain_append`` (a position check, so two writers can never both append line N). For a
local directory (``open_log(path)``) that store is the directory itself and the files,
names and bytes are what they always were. With another store
(``open_log(S3Store(...), state_dir=DIR)``) the journals and the lock stay in the local
state directory ``DIR`` (a journal needs append and fsync, which an object store has
neither of); a segment is encoded into a temp file under ``DIR/.staging`` and uploaded
with one conditional PUT, then its manifest entry is appended. Quarantine is written to
``DIR`` first and then published to the store; the imports registry and the gap ledger
live in the store. A reader of a store needs no state directory. See docs/scale.md.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

import pyarrow as pa

from buff_dataplane.core.config import LogConfig
from buff_dataplane.core.errors import (
    ImmutabilityError,
    IntegrityError,
    LockedError,
    StorageError,
    ValidationError,
)
from buff_dataplane.core.ids import StreamId, validate_channel, validate_venue
from buff_dataplane.storage import layout
from buff_dataplane.storage.manifest import (
    MANIFEST_VERSION,
    ManifestEntry,
    append_entry,
    genesis,
    line_hash,
    read_store_manifest,
)
from buff_dataplane.storage.objstore import LocalStore, ObjectExists, ObjectNotFound, ObjectStore
from buff_dataplane.storage.quarantine import Quarantine
from buff_dataplane.storage.recovery import RecoveryReport, recover_all
from buff_dataplane.storage.segment import (
    SegmentStats,
    WrittenSegment,
    write_segment_batches,
)
from buff_dataplane.storage.writer import Clock, StreamWriter, monotonic_ms

_SHA256_RE = re.compile(r"[0-9a-f]{64}")


class RawLog:
    """An open log. Use :func:`open_log`.

    ``root`` is the local directory of the journals, the lock and quarantine's first
    copy (the data directory itself for a local log; a temp directory for a reader of a
    store); ``store`` holds the sealed segments and manifest chains (by default a
    LocalStore over ``root``).
    """

    def __init__(
        self,
        root: Path,
        config: LogConfig,
        *,
        readonly: bool,
        clock: Clock,
        store: ObjectStore | None = None,
    ) -> None:
        self.root = root
        self.store: ObjectStore = (
            store if store is not None else LocalStore(root, fsync=config.fsync)
        )
        self.config = config
        self.readonly = readonly
        self._clock = clock
        self._writers: dict[str, StreamWriter] = {}
        self._lock_fh: IO[bytes] | None = None
        self._scratch: Path | None = None  # a reader's temp state dir, removed at close
        self.recovery: list[RecoveryReport] = []
        self.quarantine = Quarantine(
            root / layout.QUARANTINE_DIR,
            fsync=config.fsync,
            store=None if self.store_is_root else self.store,
        )
        if not readonly:
            self._take_lock()
            try:
                recover_all(self)
                self.quarantine.publish_pending()  # what an earlier run could not publish
            except BaseException:
                self._release_lock()
                raise

    # -- lock --------------------------------------------------------------------------

    def _take_lock(self) -> None:
        path = self.root / layout.LOCK
        fh = path.open("a+b")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().decode(errors="replace").strip() or "another process"
            fh.close()
            raise LockedError(
                f"data dir {self.root} is locked by {holder}; two writers must never share it"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}\n".encode())
        fh.flush()
        self._lock_fh = fh

    def _release_lock(self) -> None:
        if self._lock_fh is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fh.fileno(), fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    # -- streams -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Where the sealed data lives: the data directory, or the store's URI."""
        return self.store.url()

    @property
    def store_is_root(self) -> bool:
        """True when the sealed data lives in ``root`` itself (a local log)."""
        return isinstance(self.store, LocalStore) and self.store.root == self.root

    def stream_ids(self) -> list[StreamId]:
        """Every stream with a directory under log/ (locally or in the store), sorted."""
        found = set(local_stream_ids(self.root))
        if not self.store_is_root:
            found.update(store_stream_ids(self.store))
        return sorted(found, key=str)

    def manifest(self, sid: StreamId) -> list[ManifestEntry]:
        read = read_store_manifest(self.store, layout.manifest_chain(sid), str(sid))
        if read.faults:
            raise IntegrityError(read.faults[0] + " (run buff verify-log)")
        return read.entries

    def writer(self, stream: StreamId | str) -> StreamWriter:
        if self.readonly:
            raise StorageError("log opened read-only")
        sid = stream if isinstance(stream, StreamId) else StreamId.parse(stream)
        key = str(sid)
        w = self._writers.get(key)
        if w is None or w.closed:
            w = StreamWriter(self, sid, self.manifest(sid), self._clock)
            self._writers[key] = w
        return w

    def writers(self) -> list[StreamWriter]:
        return [self._writers[k] for k in sorted(self._writers)]

    def commit_all(self) -> None:
        for w in self.writers():
            w.commit()
        self.quarantine.flush()

    def close(self) -> None:
        try:
            for w in self.writers():
                w.close()
            self.quarantine.close()
        finally:
            self._release_lock()
            if self._scratch is not None:
                shutil.rmtree(self._scratch, ignore_errors=True)
                self._scratch = None

    def __enter__(self) -> RawLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sealing (shared by writers and recovery) --------------------------------------

    def _publish_segment(
        self, sid: StreamId, table: pa.Table, last: ManifestEntry | None
    ) -> ManifestEntry:
        """Seal ``table`` (rows continuing the sealed log) as the next segment."""
        if table.num_rows == 0:
            raise StorageError(f"{sid}: no rows to seal")
        seqs = table.column("ingest_seq")
        seq_from, seq_to = seqs[0].as_py(), seqs[-1].as_py()
        if seq_to - seq_from + 1 != table.num_rows:
            raise ImmutabilityError(
                f"{sid}: segment {seq_from}..{seq_to} ({table.num_rows} rows) does not continue "
                f"the sealed log at seq {last.seq_to + 1 if last else 1}"
            )
        return self._publish_batches(sid, table.to_batches(), seq_from, seq_to, last)

    def _publish_batches(
        self,
        sid: StreamId,
        batches: Iterable[pa.RecordBatch],
        seq_from: int,
        seq_to: int,
        last: ManifestEntry | None,
        *,
        check: Callable[[SegmentStats], None] | None = None,
    ) -> ManifestEntry:
        """Seal the rows ``seq_from..seq_to``, streamed as ``batches``, as the next segment.

        The rows are encoded one row group at a time into a temp file, which is published
        (fsync, read-only, hard link to the name of its seq range, directory fsync) only
        if they hold exactly that range and pass ``check``; then the manifest line is
        appended from the stats computed on the way.
        """
        expected_from = last.seq_to + 1 if last else 1
        if seq_from != expected_from or seq_to < seq_from:
            raise ImmutabilityError(
                f"{sid}: segment {seq_from}..{seq_to} ({seq_to - seq_from + 1} rows) does not "
                f"continue the sealed log at seq {expected_from}"
            )

        def holds_the_range(stats: SegmentStats) -> None:
            if (stats.seq_from, stats.seq_to, stats.rows) != (
                seq_from,
                seq_to,
                seq_to - seq_from + 1,
            ):
                raise ImmutabilityError(
                    f"{sid}: rows {stats.seq_from}..{stats.seq_to} ({stats.rows} rows) are not "
                    f"the segment {seq_from}..{seq_to}"
                )
            if check is not None:
                check(stats)

        name = layout.segment_name(seq_from, seq_to)
        key = layout.segment_key(sid, name)
        store = self.store
        if isinstance(store, LocalStore):
            # Encoded in place (temp file, fsync, read-only, link): no copy to publish.
            seg_dir = store.path(key).parent
            seg_dir.mkdir(parents=True, exist_ok=True)
            written = write_segment_batches(
                seg_dir / name,
                batches,
                zstd_level=self.config.zstd_level,
                fsync=self.config.fsync,
                check=holds_the_range,
            )
        else:
            written = self._stage_and_upload(key, name, batches, holds_the_range)
        return self._append_manifest(
            sid, written.stats, name, written.file_sha256, written.file_bytes, last
        )

    def _stage_and_upload(
        self,
        key: str,
        name: str,
        batches: Iterable[pa.RecordBatch],
        check: Callable[[SegmentStats], None],
    ) -> WrittenSegment:
        """Encode the segment into a local temp file, then publish it with one put_new.

        An identical object already there (the retry of a seal whose manifest entry
        failed, or a crash between the upload and the entry) is accepted; different
        bytes raise ObjectExists and leave the object as it was.
        """
        staging = self.root / layout.STAGING
        staging.mkdir(exist_ok=True)
        tmpdir = Path(tempfile.mkdtemp(prefix="seal-", dir=staging))
        try:
            path = tmpdir / name
            # No fsync: the upload, not this file, is what makes the segment durable.
            written = write_segment_batches(
                path, batches, zstd_level=self.config.zstd_level, fsync=False, check=check
            )
            self.store.put_new_file(key, path)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
        return written

    def _append_manifest(
        self,
        sid: StreamId,
        stats: SegmentStats,
        name: str,
        sha: str,
        size: int,
        last: ManifestEntry | None,
    ) -> ManifestEntry:
        if stats.seq_from is None or stats.seq_to is None:
            raise StorageError(f"{sid}: segment {name} holds no rows")
        entry = ManifestEntry(
            v=MANIFEST_VERSION,
            index=last.index + 1 if last else 0,
            stream_id=str(sid),
            segment=name,
            seq_from=stats.seq_from,
            seq_to=stats.seq_to,
            rows=stats.rows,
            ts_exchange_min=stats.ts_exchange_min,
            ts_exchange_max=stats.ts_exchange_max,
            ts_ingest_min=int(stats.ts_ingest_min or 0),
            ts_ingest_max=int(stats.ts_ingest_max or 0),
            payload_bytes=stats.payload_bytes,
            file_bytes=size,
            file_sha256=sha,
            payload_digest=stats.payload_digest,
            prev=line_hash(last.encode()) if last else genesis(str(sid)),
        )
        chain = layout.manifest_chain(sid)
        if isinstance(self.store, LocalStore):
            # The directory's write lock already excludes a second writer; the line is the
            # one chain_append would write, appended and fsynced as it always was.
            append_entry(self.store.chain_path(chain), entry, fsync=self.config.fsync)
            return entry
        try:
            self.store.chain_append(chain, entry.index, entry.encode())
        except ObjectExists as exc:
            # Another writer sealed this position first: this one must not continue the
            # stream (its seqs would fork the chain). Reopen to continue after theirs.
            raise ObjectExists(
                f"{sid}: manifest position {entry.index} was appended by another writer; "
                f"this writer stops ({exc})",
                exc.key,
            ) from exc
        return entry

    def _remove_journal(self, directory: Path) -> None:
        path = directory / layout.JOURNAL
        if path.exists():
            path.unlink()
            if self.config.fsync:
                layout.fsync_dir(directory)

    # -- imports registry --------------------------------------------------------------

    def find_import(self, file_sha256: str) -> dict[str, object] | None:
        if not self.store_is_root:
            try:
                body = self.store.get(_import_key(file_sha256))
            except ObjectNotFound:
                return None
            return dict(json.loads(body))
        path = self.root / layout.IMPORTS
        if not path.exists():
            return None
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record.get("file_sha256") == file_sha256:
                return dict(record)
        return None

    def record_import(self, record: dict[str, object]) -> None:
        line = json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n"
        if not self.store_is_root:  # one object per import, never rewritten
            self.store.put_new(_import_key(record.get("file_sha256")), line.encode())
            return
        with (self.root / layout.IMPORTS).open("ab") as fh:
            fh.write(line.encode())
            fh.flush()
            if self.config.fsync:
                os.fsync(fh.fileno())


def _import_key(file_sha256: object) -> str:
    """The store object of an import: ``imports/<file_sha256>.json``."""
    if not isinstance(file_sha256, str) or not _SHA256_RE.fullmatch(file_sha256):
        raise ValidationError(f"import file_sha256 {file_sha256!r}: expected 64 hex digits")
    return f"imports/{file_sha256}.json"


def local_stream_ids(root: Path) -> list[StreamId]:
    base = root / layout.LOG_DIR
    out: list[StreamId] = []
    if not base.is_dir():
        return out
    for path in sorted(base.glob("*/*/*")):
        if not path.is_dir():
            continue
        try:
            out.append(StreamId.of(path.parent.parent.name, path.parent.name, path.name))
        except ValidationError:
            continue  # verify-log names stray directories
    return out


def store_stream_ids(store: ObjectStore) -> list[StreamId]:
    """Every stream with a key under ``log/`` in ``store``, sorted (bad names skipped).

    Walks the three directory levels (venue, channel, symbol) with ``list_dirs``: a few
    LIST requests per venue, however many segments and manifest entries lie below; a
    name that is not an identifier is not descended into (verify-log names strays).
    """

    def valid(check: Callable[[str], object], name: str) -> bool:
        try:
            check(name)
        except ValidationError:
            return False
        return True

    out: list[StreamId] = []
    for venue in store.list_dirs(layout.LOG_DIR):
        if not valid(validate_venue, venue):
            continue
        for channel in store.list_dirs(f"{layout.LOG_DIR}/{venue}"):
            if not valid(validate_channel, channel):
                continue
            for symbol in store.list_dirs(f"{layout.LOG_DIR}/{venue}/{channel}"):
                with contextlib.suppress(ValidationError):
                    out.append(StreamId.of(venue, channel, symbol))
    return sorted(out, key=str)


def _check_store(store: ObjectStore, *, create: bool) -> bool:
    """Check a store for the log (writing nothing); True if its marker must be written."""
    if store.exists(layout.MARKER):
        return False
    if not create:
        raise ValidationError(f"{store.url()} is not a buff data store (no {layout.MARKER})")
    if store.list():
        raise ValidationError(
            f"{store.url()} is not empty and is not a buff data store; refusing to write into it"
        )
    return True


def open_log(
    root: str | os.PathLike[str] | ObjectStore,
    config: LogConfig | None = None,
    *,
    readonly: bool = False,
    clock: Clock | None = None,
    state_dir: str | os.PathLike[str] | None = None,
) -> RawLog:
    """Open (and for writing, create and lock) a log.

    ``root`` is a data directory (everything local, as always), or an ObjectStore for
    the sealed segments and manifests, with ``state_dir`` the local directory of the
    journals, the lock and quarantine (required to write to a store other than a
    LocalStore). A reader of such a store needs none: it sees what is sealed, and gets
    an empty temp directory as its state, removed at close.
    """
    config = config or LogConfig()
    clock = clock or monotonic_ms
    if isinstance(root, LocalStore) and state_dir is None:
        root = root.root
    if not isinstance(root, ObjectStore):
        if state_dir is not None:
            raise ValidationError("state_dir is only for a log whose data is in an object store")
        path = layout.resolve_root(root, create=not readonly)
        return RawLog(path, config, readonly=readonly, clock=clock)
    if state_dir is None and readonly:
        _check_store(root, create=False)
        scratch = Path(tempfile.mkdtemp(prefix="buff-reader-"))
        log = RawLog(scratch, config, readonly=True, clock=clock, store=root)
        log._scratch = scratch
        weakref.finalize(log, shutil.rmtree, scratch, True)  # a reader left unclosed
        return log
    if state_dir is None:
        raise ValidationError(
            f"{root.url()}: a log in an object store needs a local state_dir "
            "(journals and the write lock stay on local disk)"
        )
    claim = _check_store(root, create=not readonly)
    state = layout.resolve_state_dir(state_dir, root.url(), create=not readonly)
    if claim:  # a racing twin writes the same bytes, which put_new accepts
        root.put_new(layout.MARKER, layout.marker_body())
    return RawLog(state, config, readonly=readonly, clock=clock, store=root)
