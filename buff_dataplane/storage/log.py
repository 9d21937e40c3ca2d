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
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
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
from buff_dataplane.core.events import (
    MAX_TS_MS,
    MIN_TS_MS,
    MS_PER_DAY,
    SCHEMA_VERSION,
    SOURCES,
)
from buff_dataplane.core.ids import StreamId, validate_channel, validate_venue
from buff_dataplane.storage import layout
from buff_dataplane.storage.journal import JournalReader, JournalWriter
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
    RAW_SCHEMA,
    SegmentStats,
    WrittenSegment,
    write_segment_batches,
)

Clock = Callable[[], int]
_SHA256_RE = re.compile(r"[0-9a-f]{64}")


def monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


class StreamWriter:
    """Appends events to one stream. Not thread-safe: one writer, one task.

    Memory is bounded by the pending group commit, not by the segment: committed events
    live only in the journal (plus running :class:`SegmentStats`), and sealing streams
    them back from the journal into the Parquet segment one row group at a time.
    """

    def __init__(
        self, log: RawLog, sid: StreamId, entries: list[ManifestEntry], clock: Clock
    ) -> None:
        self._log = log
        self.sid = sid
        self.stream_id = str(sid)
        self._cfg = log.config
        self._clock = clock
        self.dir = layout.stream_dir(log.root, sid)
        self._last_entry = entries[-1] if entries else None
        self.next_seq = self._last_entry.seq_to + 1 if self._last_entry else 1
        self.durable_seq = self.next_seq - 1
        self.sealed_seq = self.next_seq - 1
        self._journal: JournalWriter | None = None
        self._reset_committed()
        self._reset_pending()
        self.closed = False

    # -- appending ---------------------------------------------------------------------

    def _reset_committed(self) -> None:
        # Committed, unsealed events are in the journal; here are only their stats.
        self._stats = SegmentStats()
        self._committed_rows = 0
        self._committed_bytes = 0
        self._segment_first_ingest: int | None = None
        self._last_ingest: int | None = None

    def _reset_pending(self) -> None:
        # Pending events as columns; (source, origin, conn_id) run-length encoded, since
        # they change rarely (a reconnect, a back-fill page).
        self._pending: list[bytes] = []
        self._p_ts_ex: list[int | None] = []
        self._p_ts_in: list[int] = []
        self._p_runs: list[list[object]] = []  # [count, source, origin, conn_id]
        self._p_bytes = 0
        self._pending_since = 0

    def _add_run(self, count: int, source: str, origin: str | None, conn_id: int | None) -> None:
        runs = self._p_runs
        if runs:
            last = runs[-1]
            if last[1] == source and last[2] == origin and last[3] == conn_id:
                last[0] += count  # type: ignore[operator]
                return
        runs.append([count, source, origin, conn_id])

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _validate(
        self, size: int, ts_exchange_ms: object, ts_ingest_ms: object, source: str
    ) -> None:
        if size > self._cfg.max_payload_bytes:
            raise ValidationError(
                f"{self.stream_id}: payload of {size} bytes exceeds the limit of "
                f"{self._cfg.max_payload_bytes} bytes"
            )
        if type(ts_ingest_ms) is not int or not MIN_TS_MS <= ts_ingest_ms <= MAX_TS_MS:
            raise ValidationError(f"{self.stream_id}: ingest time {ts_ingest_ms!r} out of range")
        if ts_exchange_ms is not None and (
            type(ts_exchange_ms) is not int or not MIN_TS_MS <= ts_exchange_ms <= MAX_TS_MS
        ):
            raise ValidationError(
                f"{self.stream_id}: exchange time {ts_exchange_ms!r} out of range"
            )
        if source not in SOURCES:
            raise ValidationError(f"{self.stream_id}: source {source!r} is not one of {SOURCES}")

    def append(
        self,
        payload: bytes,
        ts_exchange_ms: int | None,
        ts_ingest_ms: int,
        *,
        source: str = "ws",
        origin: str | None = None,
        conn_id: int | None = None,
    ) -> int:
        """Buffer one event and return its ingest_seq; it is durable after the next commit.

        A commit happens here when ``group_commit_events`` are pending (or a segment
        limit is reached); the time-based group commit is :meth:`maybe_commit`, which
        the owner of the writer calls on a timer (an idle stream gets no appends).
        Invalid input raises ValidationError and leaves the writer exactly as it was.
        """
        if self.closed:
            raise StorageError(f"writer for {self.stream_id} is closed")
        if type(payload) is not bytes:
            raise ValidationError(f"{self.stream_id}: payload must be bytes")
        size = len(payload)
        self._validate(size, ts_exchange_ms, ts_ingest_ms, source)
        first = self._segment_first_ingest
        if first is None:
            self._segment_first_ingest = ts_ingest_ms
        elif ts_ingest_ms // MS_PER_DAY != first // MS_PER_DAY and self._cfg.roll_on_utc_day:
            self.seal()
            self._segment_first_ingest = ts_ingest_ms
        pending = self._pending
        if not pending:
            self._pending_since = self._clock()
        pending.append(payload)
        self._p_ts_ex.append(ts_exchange_ms)
        self._p_ts_in.append(ts_ingest_ms)
        self._add_run(1, source, origin, conn_id)
        self._p_bytes += size
        seq = self.next_seq
        self.next_seq = seq + 1
        n = len(pending)
        if (
            n >= self._cfg.group_commit_events
            or self._committed_rows + n >= self._cfg.segment_max_events
            or self._committed_bytes + self._p_bytes >= self._cfg.segment_max_bytes
        ):
            self.commit()
        return seq

    def append_batch(
        self,
        payloads: list[bytes],
        ts_exchange_ms: list[int | None],
        ts_ingest_ms: list[int],
        *,
        source: str = "ws",
        origin: str | None = None,
        conn_id: int | None = None,
    ) -> int:
        """Append many events at once (a drained queue, a REST page); return the last seq.

        Validated as a whole before anything is buffered: one bad event refuses the batch.
        """
        n = len(payloads)
        if not n == len(ts_exchange_ms) == len(ts_ingest_ms):
            raise ValidationError(f"{self.stream_id}: batch columns differ in length")
        if n == 0:
            return self.next_seq - 1
        if any(type(p) is not bytes for p in payloads):
            raise ValidationError(f"{self.stream_id}: payload must be bytes")
        if any(type(t) is not int for t in ts_ingest_ms) or any(
            t is not None and type(t) is not int for t in ts_exchange_ms
        ):
            raise ValidationError(f"{self.stream_id}: times must be integer epoch ms")
        self._validate(max(map(len, payloads)), None, min(ts_ingest_ms), source)
        self._validate(0, None, max(ts_ingest_ms), source)
        present = [t for t in ts_exchange_ms if t is not None]
        if present:
            self._validate(0, min(present), ts_ingest_ms[0], source)
            self._validate(0, max(present), ts_ingest_ms[0], source)
        cfg = self._cfg
        i = 0
        while i < n:
            first = self._segment_first_ingest
            room = min(
                cfg.group_commit_events - len(self._pending),
                cfg.segment_max_events - self._committed_rows - len(self._pending),
            )
            j = min(n, i + max(1, room))
            if first is None:
                first = ts_ingest_ms[i]
            day = first // MS_PER_DAY
            if cfg.roll_on_utc_day and not (
                ts_ingest_ms[i] // MS_PER_DAY == day == ts_ingest_ms[j - 1] // MS_PER_DAY
                and min(ts_ingest_ms[i:j]) // MS_PER_DAY
                == day
                == max(ts_ingest_ms[i:j]) // MS_PER_DAY
            ):
                # A UTC day boundary inside this chunk: let append() roll the segment.
                self.append(
                    payloads[i],
                    ts_exchange_ms[i],
                    ts_ingest_ms[i],
                    source=source,
                    origin=origin,
                    conn_id=conn_id,
                )
                i += 1
                continue
            self._segment_first_ingest = first
            if not self._pending:
                self._pending_since = self._clock()
            chunk = payloads[i:j]
            self._pending.extend(chunk)
            self._p_ts_ex.extend(ts_exchange_ms[i:j])
            self._p_ts_in.extend(ts_ingest_ms[i:j])
            self._add_run(j - i, source, origin, conn_id)
            self._p_bytes += sum(map(len, chunk))
            self.next_seq += j - i
            m = len(self._pending)
            if (
                m >= cfg.group_commit_events
                or self._committed_rows + m >= cfg.segment_max_events
                or self._committed_bytes + self._p_bytes >= cfg.segment_max_bytes
            ):
                self.commit()
            i = j
        return self.next_seq - 1

    def maybe_commit(self) -> int:
        """Commit if the oldest pending event has waited the group-commit interval."""
        if self._pending and self._clock() - self._pending_since >= self._cfg.group_commit_ms:
            return self.commit()
        return self.durable_seq

    def commit(self) -> int:
        """Make every pending event durable (journal + fsync); return the last durable seq."""
        n = len(self._pending)
        if n == 0:
            return self.durable_seq
        first_seq = self.durable_seq + 1
        payloads = self._pending
        sha = hashlib.sha256
        runs = self._p_runs

        def expand(k: int, typ: pa.DataType) -> pa.Array:
            parts = [pa.repeat(pa.scalar(r[k], typ), r[0]) for r in runs]
            return parts[0] if len(parts) == 1 else pa.concat_arrays(parts)

        batch = pa.RecordBatch.from_arrays(
            [
                pa.repeat(pa.scalar(self.stream_id, pa.string()), n),
                pa.arange(first_seq, first_seq + n),
                pa.array(self._p_ts_ex, pa.int64()),
                pa.array(self._p_ts_in, pa.int64()),
                pa.repeat(pa.scalar(self.sid.symbol, pa.string()), n),
                pa.repeat(pa.scalar(self.sid.channel, pa.string()), n),
                pa.array(payloads, pa.binary()),
                pa.array([sha(p).digest() for p in payloads], pa.binary(32)),
                expand(1, pa.string()),
                pa.repeat(pa.scalar(SCHEMA_VERSION, pa.int16()), n),
                expand(2, pa.string()),
                expand(3, pa.int64()),
            ],
            schema=RAW_SCHEMA,
        )
        if self._journal is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._journal = JournalWriter(
                self.dir / layout.JOURNAL, self.stream_id, fsync=self._cfg.fsync
            )
        self._journal.append(batch)
        self._stats.add(batch)
        self._committed_rows += n
        self._committed_bytes += self._p_bytes
        self._last_ingest = self._p_ts_in[-1]
        self.durable_seq = first_seq + n - 1
        self._reset_pending()
        if self._should_seal():
            self.seal()
        return self.durable_seq

    def _should_seal(self) -> bool:
        if not self._committed_rows:
            return False
        if self._committed_rows >= self._cfg.segment_max_events:
            return True
        if self._committed_bytes >= self._cfg.segment_max_bytes:
            return True
        first, last = self._segment_first_ingest, self._last_ingest
        return (
            first is not None
            and last is not None
            and last - first >= self._cfg.segment_max_age_s * 1000
        )

    # -- sealing -----------------------------------------------------------------------

    def seal(self) -> ManifestEntry | None:
        """Commit what is pending, then seal every committed event into one segment.

        The events are read back from the journal. The segment is published only if
        what was read equals what was committed (rows, seq range, time ranges, payload
        bytes and payload digest, against the running stats). If sealing fails before
        the segment is published, nothing is published and the writer keeps its journal
        and state, so a later seal retries; if it fails after (the manifest line), the
        next open's recovery adopts the segment.
        """
        self.commit()
        if not self._committed_rows:
            return None
        committed = self._stats.summary()

        def same_as_committed(stats: SegmentStats) -> None:
            if stats.summary() != committed:
                raise IntegrityError(
                    f"{self.stream_id}: journal {self.dir / layout.JOURNAL} does not hold "
                    f"the committed events (read {stats.summary()}, committed {committed})"
                )

        entry = self._log._publish_batches(
            self.sid,
            self._journal_batches(),
            self.sealed_seq + 1,
            self.durable_seq,
            self._last_entry,
            check=same_as_committed,
        )
        self._last_entry = entry
        self.sealed_seq = entry.seq_to
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        self._log._remove_journal(self.dir)
        self._reset_committed()
        return entry

    def _journal_batches(self) -> Iterator[pa.RecordBatch]:
        reader = JournalReader(self.dir / layout.JOURNAL)
        yield from reader
        if reader.torn_bytes or reader.stream_id != self.stream_id:
            raise IntegrityError(
                f"{self.stream_id}: journal {reader.path} has a torn tail of "
                f"{reader.torn_bytes} bytes ({reader.torn_reason}) or names "
                f"{reader.stream_id!r}; refusing to seal from it"
            )

    def close(self) -> None:
        if not self.closed:
            self.seal()
            self.closed = True


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
