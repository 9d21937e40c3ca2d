"""Crash recovery: what opening a log for writing does with what a crash left.

Per stream, in this order: remove temp files of an interrupted seal (never published; the
journal still holds their events); cut a torn last manifest line; adopt a segment that
was published but whose manifest line never landed (after checking its payload hashes,
that it holds the seq range its name says, continuing the sealed log, and that it
equals the journal); drop journal rows already sealed (after checking they equal their
sealed copy); seal the rest; delete the journal. Torn tails are kept as evidence under
quarantine/torn/. Anything else that does not add up raises IntegrityError and nothing
is written. Journals and orphan segments are read frame by frame / row group by row
group, never whole.

The sealed side is read and written through the log's store: on S3 a segment uploaded
without its manifest entry (a crash between the two) is an orphan no reader sees, since
readers go by the manifest; it is adopted here exactly as a local one is. Temp files of
an interrupted upload live in the local ``.staging`` directory and are removed. A torn
manifest line exists only locally (an S3 PUT is atomic).
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from buff_dataplane.core.errors import IntegrityError, StorageError
from buff_dataplane.core.ids import StreamId
from buff_dataplane.storage import layout
from buff_dataplane.storage.journal import JournalReader
from buff_dataplane.storage.manifest import (
    ManifestEntry,
    read_store_manifest,
    truncate_torn_tail,
)
from buff_dataplane.storage.objstore import LocalStore, ObjectStore
from buff_dataplane.storage.segment import (
    RAW_SCHEMA,
    ROW_GROUP_ROWS,
    SegmentStats,
    hashes_view,
    object_sha256,
    segment_source,
)

if TYPE_CHECKING:
    from buff_dataplane.storage.log import RawLog


@dataclass
class RecoveryReport:
    stream_id: str
    recovered_events: int = 0
    torn_journal_bytes: int = 0
    torn_manifest_bytes: int = 0
    adopted_segment: str | None = None
    removed_temp_files: list[str] = field(default_factory=list)
    sealed_segment: str | None = None

    def describe(self) -> str:
        parts = [f"{self.stream_id}: recovered {self.recovered_events} events"]
        if self.sealed_segment:
            parts.append(f"sealed {self.sealed_segment}")
        if self.torn_journal_bytes:
            parts.append(f"dropped a torn journal tail of {self.torn_journal_bytes} bytes")
        if self.torn_manifest_bytes:
            parts.append(f"dropped a torn manifest tail of {self.torn_manifest_bytes} bytes")
        if self.adopted_segment:
            parts.append(f"adopted published segment {self.adopted_segment}")
        if self.removed_temp_files:
            parts.append(f"removed {len(self.removed_temp_files)} unpublished temp files")
        return "; ".join(parts)


def recover_all(log: RawLog) -> None:
    staging = log.root / layout.STAGING
    if staging.is_dir():  # segments encoded for an upload that never finished
        shutil.rmtree(staging)
    for sid in log.stream_ids():
        report = _recover_stream(log, sid)
        if report is not None:
            log.recovery.append(report)


def _recover_stream(log: RawLog, sid: StreamId) -> RecoveryReport | None:
    directory = layout.stream_dir(log.root, sid)
    store = log.store
    report = RecoveryReport(str(sid))
    changed = False
    if isinstance(store, LocalStore):
        seg_dir = store.path(f"{layout.stream_key(sid)}/{layout.SEGMENTS}")
        if seg_dir.is_dir():
            for tmp in sorted(seg_dir.glob(f"{layout.TMP_PREFIX}*")):
                tmp.unlink()  # never published: the journal still holds its events
                report.removed_temp_files.append(tmp.name)
                changed = True
    chain = layout.manifest_chain(sid)
    read = read_store_manifest(store, chain, str(sid))
    if read.faults:
        raise IntegrityError(f"{read.faults[0]}; refusing to write (run buff verify-log)")
    if read.torn_tail:
        assert isinstance(store, LocalStore)  # only a local append can be torn
        truncate_torn_tail(store.chain_path(chain), read.good_bytes, fsync=log.config.fsync)
        report.torn_manifest_bytes = len(read.torn_tail)
        _keep_evidence(log, sid, "manifest", read.torn_tail)
        changed = True
    entries = read.entries
    last = entries[-1] if entries else None
    journal = _scan_journal(log, sid, directory, report)
    orphan = _find_orphan(store, sid, entries)
    if orphan is not None:
        last = _adopt_orphan(log, sid, orphan, journal, last)
        report.adopted_segment = orphan
        changed = True
    if journal is not None:
        changed = True
        sealed_to = last.seq_to if last else 0
        _check_journal_against_sealed(log, sid, journal, last, sealed_to)
        if journal.last_seq > sealed_to:
            entry = log._publish_batches(
                sid, journal.batches(after=sealed_to), sealed_to + 1, journal.last_seq, last
            )
            report.sealed_segment = entry.segment
            report.recovered_events = journal.last_seq - sealed_to
        log._remove_journal(directory)
    return report if changed else None


class _Journal:
    """A journal checked from end to end: dense seqs, no corruption before a torn tail.

    Holds no rows; :meth:`batches` reads them again, frame by frame.
    """

    def __init__(self, path: Path, sid: StreamId) -> None:
        self.path = path
        reader = JournalReader(path)
        first = last = 0
        for batch in reader:
            seqs = batch.column("ingest_seq")
            if not batch.num_rows:
                continue
            lo = seqs[0].as_py()
            if (last and lo != last + 1) or not seqs.equals(pa.arange(lo, lo + len(seqs))):
                raise IntegrityError(
                    f"journal {path}: ingest_seq is not dense (frame {reader.frames} "
                    f"starts at seq {lo} after seq {last})"
                )
            first = first or lo
            last = lo + len(seqs) - 1
        if reader.stream_id is not None and reader.stream_id != str(sid):
            raise IntegrityError(f"journal {path} belongs to stream {reader.stream_id!r}")
        self.reader = reader
        self.first_seq = first  # 0 when the journal holds no rows
        self.last_seq = last

    def batches(self, *, after: int = 0, upto: int | None = None) -> Iterator[pa.RecordBatch]:
        """The rows with ``after < seq <= upto``, in order, up to the torn tail."""
        for batch in JournalReader(self.path):
            seqs = batch.column("ingest_seq")
            if not batch.num_rows or seqs[-1].as_py() <= after:
                continue
            if upto is not None and seqs[0].as_py() > upto:
                break
            lo = max(after + 1, seqs[0].as_py())
            hi = seqs[-1].as_py() if upto is None else min(upto, seqs[-1].as_py())
            yield batch.slice(lo - seqs[0].as_py(), hi - lo + 1)  # seqs are dense


def _scan_journal(
    log: RawLog, sid: StreamId, directory: Path, report: RecoveryReport
) -> _Journal | None:
    path = directory / layout.JOURNAL
    if not path.exists():
        return None
    journal = _Journal(path, sid)
    if journal.reader.torn_bytes:
        report.torn_journal_bytes = journal.reader.torn_bytes
        with path.open("rb") as fh:
            fh.seek(journal.reader.good_bytes)
            _keep_evidence(log, sid, "journal", fh.read())
    return journal


def _find_orphan(store: ObjectStore, sid: StreamId, entries: list[ManifestEntry]) -> str | None:
    prefix = f"{layout.stream_key(sid)}/{layout.SEGMENTS}"
    named = {e.segment for e in entries}
    orphans = sorted(
        name
        for name in (key[len(prefix) + 1 :] for key in store.list(prefix))
        if layout.parse_segment_name(name) and name not in named
    )
    if len(orphans) > 1:
        raise IntegrityError(f"{store.url(prefix)}: {len(orphans)} segments not in the manifest")
    return orphans[0] if orphans else None


def _adopt_orphan(
    log: RawLog,
    sid: StreamId,
    name: str,
    journal: _Journal | None,
    last: ManifestEntry | None,
) -> ManifestEntry:
    """A segment published just before a crash, whose manifest line never landed.

    Read row group by row group: its payload hashes are checked, its stats computed
    (seqs dense and continuing the sealed log, as its name says), and its payload hashes
    compared with the journal's rows up to its last seq.
    """
    store = log.store
    key = layout.segment_key(sid, name)
    path = store.url(key)
    stats = SegmentStats()
    sha256 = hashlib.sha256
    try:
        parquet = pq.ParquetFile(segment_source(store, key))
        if not parquet.schema_arrow.equals(RAW_SCHEMA, check_metadata=False):
            raise IntegrityError(f"{path}: unpublished segment does not have the raw schema")
        for batch in parquet.iter_batches(batch_size=ROW_GROUP_ROWS):
            payloads = batch.column("payload_raw").to_pylist()
            if [sha256(p).digest() for p in payloads] != batch.column("payload_sha256").to_pylist():
                raise IntegrityError(f"{path}: unpublished segment fails its payload hashes")
            stats.add(batch)
    except (OSError, pa.ArrowException) as exc:
        raise StorageError(f"cannot read segment {path}: {exc}") from exc
    expected_from = last.seq_to + 1 if last else 1
    if (stats.seq_from, stats.seq_to) != layout.parse_segment_name(name) or (
        stats.seq_from != expected_from
    ):
        raise IntegrityError(
            f"{path}: unpublished segment holds seq {stats.seq_from}..{stats.seq_to}; "
            f"expected a segment so named, starting at seq {expected_from}"
        )
    assert stats.seq_to is not None
    if journal is not None:
        # The journal's rows up to the segment's end must be the segment's first rows.
        from_journal = hashlib.sha256()
        rows = 0
        for batch in journal.batches(upto=stats.seq_to):
            from_journal.update(hashes_view(batch.column("payload_sha256")))
            rows += batch.num_rows
        if rows and (
            journal.first_seq != stats.seq_from
            or from_journal.digest() != _hashes_prefix_digest(store, key, rows)
        ):
            raise IntegrityError(f"{path}: unpublished segment differs from the journal")
    return log._append_manifest(sid, stats, name, object_sha256(store, key), store.size(key), last)


def _hashes_prefix_digest(store: ObjectStore, key: str, rows: int) -> bytes:
    """SHA-256 over the first ``rows`` payload hashes of the stored segment ``key``."""
    h = hashlib.sha256()
    for batch in pq.ParquetFile(segment_source(store, key)).iter_batches(
        batch_size=ROW_GROUP_ROWS, columns=["payload_sha256"]
    ):
        if rows <= 0:
            break
        part = batch.column(0).slice(0, rows)
        h.update(hashes_view(part))
        rows -= len(part)
    return h.digest()


def _check_journal_against_sealed(
    log: RawLog,
    sid: StreamId,
    journal: _Journal,
    last: ManifestEntry | None,
    sealed_to: int,
) -> None:
    """Check the journal's rows already sealed equal their sealed copy; that the rest
    continue the sealed log."""
    if not journal.first_seq:
        return
    if journal.first_seq <= sealed_to and last is not None:
        key = layout.segment_key(sid, last.segment)
        try:
            seg = pq.read_table(
                segment_source(log.store, key), columns=["ingest_seq", "payload_sha256"]
            )
        except (OSError, pa.ArrowException) as exc:
            raise StorageError(f"cannot read segment {log.store.url(key)}: {exc}") from exc
        seg_seqs = seg.column("ingest_seq").combine_chunks()
        seg_hashes = seg.column("payload_sha256").combine_chunks()
        base = last.seq_from
        dense = seg_seqs.equals(pa.arange(base, base + len(seg_seqs)))
        for batch in journal.batches(upto=sealed_to):
            seqs = batch.column("ingest_seq")
            hashes = batch.column("payload_sha256")
            at = seqs[0].as_py() - base
            if not (
                dense
                and 0 <= at <= len(seg_hashes) - len(seqs)
                and seg_hashes.slice(at, len(seqs)).equals(hashes)
            ):
                sealed = dict(zip(seg_seqs.to_pylist(), seg_hashes.to_pylist(), strict=True))
                for seq, h in zip(seqs.to_pylist(), hashes.to_pylist(), strict=True):
                    if sealed.get(seq) != h:
                        raise IntegrityError(
                            f"{sid}: journal seq {seq} differs from its sealed copy"
                        )
    resume = max(journal.first_seq, sealed_to + 1)
    if journal.last_seq > sealed_to and resume != sealed_to + 1:
        raise IntegrityError(f"{sid}: journal resumes at seq {resume}, expected {sealed_to + 1}")


def _keep_evidence(log: RawLog, sid: StreamId, what: str, data: bytes) -> None:
    directory = log.root / layout.QUARANTINE_DIR / "torn"
    directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(data).hexdigest()[:16]
    name = f"{sid.venue}.{sid.channel}.{sid.symbol}.{what}.{digest}.bin"
    if not (directory / name).exists():
        layout.write_file_atomic(directory / name, data, fsync=log.config.fsync)
