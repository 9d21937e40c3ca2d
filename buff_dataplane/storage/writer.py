"""A stream's writer: ingest_seq, group commit to the journal, sealing into a segment.

A :class:`StreamWriter` assigns ``ingest_seq`` (dense and strictly increasing per stream,
continuing across restarts), hashes payloads and appends them to the stream's journal in
group commits; an event is acknowledged once its group commit returned. Sealing streams
the committed events back from the journal into one Parquet segment, published by the
log (:meth:`RawLog._publish_batches`), which owns the store. Get writers from
:meth:`RawLog.writer`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pyarrow as pa

from buff_dataplane.core.errors import IntegrityError, StorageError, ValidationError
from buff_dataplane.core.events import (
    MAX_TS_MS,
    MIN_TS_MS,
    MS_PER_DAY,
    SCHEMA_VERSION,
    SOURCES,
)
from buff_dataplane.core.ids import StreamId
from buff_dataplane.storage import layout
from buff_dataplane.storage.journal import JournalReader, JournalWriter
from buff_dataplane.storage.manifest import ManifestEntry
from buff_dataplane.storage.segment import RAW_SCHEMA, SegmentStats

if TYPE_CHECKING:
    from buff_dataplane.storage.log import RawLog

Clock = Callable[[], int]


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
