"""Crash recovery: what opening a log for writing does with what a crash left.

Per stream, in this order: remove temp files of an interrupted seal (never published; the
journal still holds their events); cut a torn last manifest line; adopt a segment that
was published but whose manifest line never landed (after checking its payload hashes
and that it equals the journal); drop journal rows already sealed (after checking they
equal their sealed copy); seal the rest; delete the journal. Torn tails are kept as
evidence under quarantine/torn/. Anything else that does not add up raises
IntegrityError and nothing is written.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from buff_dataplane.core.errors import IntegrityError
from buff_dataplane.core.ids import StreamId
from buff_dataplane.storage import layout
from buff_dataplane.storage.journal import read_journal
from buff_dataplane.storage.manifest import ManifestEntry, read_manifest, truncate_torn_tail
from buff_dataplane.storage.segment import RAW_SCHEMA, file_sha256, read_segment

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


def _hash_column(table: pa.Table) -> list[bytes]:
    return [bytes(x) for x in table.column("payload_sha256").to_pylist()]


def recover_all(log: RawLog) -> None:
    for sid in log.stream_ids():
        report = _recover_stream(log, sid)
        if report is not None:
            log.recovery.append(report)


def _recover_stream(log: RawLog, sid: StreamId) -> RecoveryReport | None:
    directory = layout.stream_dir(log.root, sid)
    report = RecoveryReport(str(sid))
    changed = False
    seg_dir = directory / layout.SEGMENTS
    if seg_dir.is_dir():
        for tmp in sorted(seg_dir.glob(f"{layout.TMP_PREFIX}*")):
            tmp.unlink()  # never published: the journal still holds its events
            report.removed_temp_files.append(tmp.name)
            changed = True
    manifest_path = directory / layout.MANIFEST
    read = read_manifest(manifest_path, str(sid))
    if read.faults:
        raise IntegrityError(f"{read.faults[0]}; refusing to write (run buff verify-log)")
    if read.torn_tail:
        truncate_torn_tail(manifest_path, read.good_bytes, fsync=log.config.fsync)
        report.torn_manifest_bytes = len(read.torn_tail)
        _keep_evidence(log, sid, "manifest", read.torn_tail)
        changed = True
    entries = read.entries
    last = entries[-1] if entries else None
    sealed_to = last.seq_to if last else 0
    journal_rows = _journal_table(log, sid, directory, report)
    orphan = _find_orphan(seg_dir, entries)
    if orphan is not None:
        last = _adopt_orphan(log, sid, seg_dir / orphan, journal_rows, last)
        sealed_to = last.seq_to
        report.adopted_segment = orphan
        changed = True
    if journal_rows is not None:
        changed = True
        rest = _check_journal_against_sealed(log, sid, journal_rows, entries, last, sealed_to)
        if rest.num_rows:
            entry = log._publish_segment(sid, rest, last)
            report.sealed_segment = entry.segment
            report.recovered_events = rest.num_rows
        log._remove_journal(directory)
    return report if changed else None


def _journal_table(
    log: RawLog, sid: StreamId, directory: Path, report: RecoveryReport
) -> pa.Table | None:
    path = directory / layout.JOURNAL
    if not path.exists():
        return None
    contents = read_journal(path)
    if contents.stream_id is not None and contents.stream_id != str(sid):
        raise IntegrityError(f"journal {path} belongs to stream {contents.stream_id!r}")
    if contents.torn_bytes:
        report.torn_journal_bytes = contents.torn_bytes
        _keep_evidence(log, sid, "journal", path.read_bytes()[contents.good_bytes :])
    return pa.Table.from_batches(contents.batches, schema=RAW_SCHEMA)


def _find_orphan(seg_dir: Path, entries: list[ManifestEntry]) -> str | None:
    if not seg_dir.is_dir():
        return None
    named = {e.segment for e in entries}
    orphans = sorted(
        p.name
        for p in seg_dir.iterdir()
        if layout.parse_segment_name(p.name) and p.name not in named
    )
    if len(orphans) > 1:
        raise IntegrityError(f"{seg_dir}: {len(orphans)} segments not in the manifest")
    return orphans[0] if orphans else None


def _adopt_orphan(
    log: RawLog,
    sid: StreamId,
    path: Path,
    journal_rows: pa.Table | None,
    last: ManifestEntry | None,
) -> ManifestEntry:
    """A segment published just before a crash, whose manifest line never landed."""
    table = read_segment(path)
    hashes = [hashlib.sha256(p).digest() for p in table.column("payload_raw").to_pylist()]
    if hashes != _hash_column(table):
        raise IntegrityError(f"{path}: unpublished segment fails its payload hashes")
    if journal_rows is not None:
        jt = journal_rows.filter(
            pc.less_equal(journal_rows.column("ingest_seq"), table.column("ingest_seq")[-1])
        )
        if _hash_column(jt) != hashes[: jt.num_rows]:
            raise IntegrityError(f"{path}: unpublished segment differs from the journal")
    seq_range = layout.parse_segment_name(path.name)
    assert seq_range is not None
    return log._append_manifest(sid, table, path.name, file_sha256(path), path.stat().st_size, last)


def _check_journal_against_sealed(
    log: RawLog,
    sid: StreamId,
    rows: pa.Table,
    entries: list[ManifestEntry],
    last: ManifestEntry | None,
    sealed_to: int,
) -> pa.Table:
    """Drop journal rows already sealed (after checking they match); return the rest."""
    if rows.num_rows == 0:
        return rows
    seqs = rows.column("ingest_seq")
    done = rows.filter(pc.less_equal(seqs, sealed_to))
    rest = rows.filter(pc.greater(seqs, sealed_to))
    if done.num_rows and last is not None:
        seg = read_segment(
            layout.stream_dir(log.root, sid) / layout.SEGMENTS / last.segment,
            columns=["ingest_seq", "payload_sha256"],
        )
        sealed = dict(zip(seg.column("ingest_seq").to_pylist(), _hash_column(seg), strict=True))
        for seq, h in zip(done.column("ingest_seq").to_pylist(), _hash_column(done), strict=True):
            if sealed.get(seq) != h:
                raise IntegrityError(f"{sid}: journal seq {seq} differs from its sealed copy")
    if rest.num_rows and rest.column("ingest_seq")[0].as_py() != sealed_to + 1:
        raise IntegrityError(
            f"{sid}: journal resumes at seq {rest.column('ingest_seq')[0].as_py()}, "
            f"expected {sealed_to + 1}"
        )
    return rest


def _keep_evidence(log: RawLog, sid: StreamId, what: str, data: bytes) -> None:
    directory = log.root / layout.QUARANTINE_DIR / "torn"
    directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(data).hexdigest()[:16]
    name = f"{sid.venue}.{sid.channel}.{sid.symbol}.{what}.{digest}.bin"
    if not (directory / name).exists():
        layout.write_file_atomic(directory / name, data, fsync=log.config.fsync)
