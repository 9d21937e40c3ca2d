"""``verify-log``: re-check everything the log promises, and name every fault.

For each stream: the manifest's hash chain, index and seq continuity; that the segment
files on disk are exactly those the manifest names (a missing file, a stray file and a
leftover temp file are each a fault); each file's SHA-256 and size; each row's payload
hash; the payload digest; the seq range, row count, time ranges and identity columns
against the manifest line; and that an unsealed journal decodes and continues the seq.

The same checks run over a log whose sealed data is in an object store
(``verify_log(store, state_dir=...)``): the manifest chain and segments are read
through the store (a segment with one GET: hashed, then decoded from memory), keys
under ``log/`` that are neither a manifest entry, a manifest checkpoint nor a segment
are stray, and journals are checked in the local state directory when one is given.
The manifest is read from its entries alone (never from a checkpoint), and every
checkpoint (``manifest-checkpoints/<N>.jsonl``, and the gap ledger's) must equal the
first N entries byte for byte: a difference is a ``checkpoint_mismatch`` fault.

Streams, and files or keys under ``log/`` that belong to no stream, are found here. Then
two maps of pure partition tasks run (by ``executor``: see
:mod:`buff_dataplane.pipeline.executors`), each opening the store itself from its path or
URL: per stream, its chain, files and journal (:func:`verify_stream_task`); then per
stream and UTC day, that day's segments (:func:`verify_day_task`: a segment is sealed
within one UTC day of ingest). Results are combined in (stream, day) order, so the
report is the same whatever ran them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from buff_dataplane.core.errors import BuffError, ValidationError
from buff_dataplane.core.events import MS_PER_DAY
from buff_dataplane.core.ids import StreamId
from buff_dataplane.pipeline.executors import check_executor, executor_session, map_partitions
from buff_dataplane.storage import layout
from buff_dataplane.storage.journal import JournalReader
from buff_dataplane.storage.manifest import ManifestEntry, chain_where, manifest_of_chain
from buff_dataplane.storage.objstore import (
    CHECKPOINT_SUFFIX,
    LocalStore,
    ObjectStore,
    chain_checkpoint_prefix,
    checkpoint_count,
    first_lines,
    task_store,
)
from buff_dataplane.storage.segment import (
    RAW_SCHEMA,
    hashes_digest,
    object_sha256,
    segment_source,
)


@dataclass(frozen=True, order=True)
class Fault:
    path: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.path}: {self.detail}"


@dataclass
class VerifyReport:
    root: str
    streams: int = 0
    segments: int = 0
    events: int = 0
    segment_bytes: int = 0
    unsealed_events: int = 0
    faults: list[Fault] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.faults

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "root": self.root,
            "streams": self.streams,
            "segments": self.segments,
            "events": self.events,
            "segment_bytes": self.segment_bytes,
            "unsealed_events": self.unsealed_events,
            "faults": [
                {"kind": f.kind, "path": f.path, "detail": f.detail} for f in sorted(self.faults)
            ],
            "notes": self.notes,
        }


Progress = Callable[[int], None]


@dataclass(frozen=True)
class StreamTask:
    """One stream's verification, picklable: what a process or Dask worker needs.

    ``where`` is the data directory (a Path) or the store's URL (a str): the task opens
    the store itself (``store_for``), since a store's client must not cross a process.
    ``present`` maps the stream's segment names to where they are, as discovered by the
    caller; ``journal`` is the stream's local journal, if any is to be checked;
    ``checkpoints`` are the keys of its manifest's checkpoints (S3).
    """

    where: Path | str
    sid: StreamId
    present: dict[str, str]
    journal: Path | None
    checkpoints: tuple[str, ...] = ()


@dataclass(frozen=True)
class StreamResult:
    """What verifying one stream found; combined into the report in stream order."""

    sid: StreamId
    segments: int
    events: int
    segment_bytes: int
    unsealed_events: int
    verified_rows: int  # manifest rows of the segments checked: the progress unit
    faults: tuple[Fault, ...]
    notes: tuple[str, ...]
    deferred: tuple[ManifestEntry, ...] = ()  # present segments, checked by day tasks


@dataclass(frozen=True)
class DayTask:
    """The segments of one stream sealed on one UTC day (of ingest: a segment never
    spans two), checked one by one: the heavy half of verify-log, a partition task."""

    where: Path | str
    sid: StreamId
    day: int  # days since the epoch
    entries: tuple[ManifestEntry, ...]


def verify_log(
    root: Path | ObjectStore,
    progress: Progress | None = None,
    *,
    state_dir: Path | None = None,
    executor: str = "serial",
    workers: int | None = None,
    address: str | None = None,
) -> VerifyReport:
    """Verify the data directory at ``root`` (already validated as one), or a store.

    For a store other than a local directory, ``state_dir`` (optional) is the local
    directory of its journals. Streams are found here, then each is verified by a
    partition task run by ``executor`` (pipeline.executors: ``serial``, ``process`` or
    ``dask`` with ``workers`` and ``address``); results are combined in stream order, so
    the report is the same whatever ran them. ``progress`` is called here with the events
    of each stream as its result is combined. The default stays ``serial`` whatever the
    pipeline's default executor (callers choose); it uses the caller's store as given.
    """
    check_executor(executor, workers)
    if address is not None and executor != "dask":
        raise ValidationError("--address names a Dask scheduler: use it with --executor dask")
    if isinstance(root, LocalStore) and state_dir is None:
        root = root.root
    if isinstance(root, ObjectStore):
        report = VerifyReport(root.url())
        where: Path | str = root.root if isinstance(root, LocalStore) else root.url()
        tasks = _discover_store(root, where, state_dir, report)
        store = root
    else:
        report = VerifyReport(str(root))
        tasks = _discover_directory(Path(root), report)
        store = LocalStore(Path(root), fsync=False)
    # Two maps, each combined in partition order: per stream, the chain, the files and the
    # journal (light); then per stream and UTC day, that day's segments (the hashing and
    # decoding). One pool or cluster serves both.
    streams: list[StreamResult]
    days: list[StreamResult]
    with executor_session(executor, workers=workers, address=address):
        if executor == "serial":  # in this process, with the caller's store
            streams = [_verify_one(task, store) for task in tasks]
        else:
            streams = _mapped(verify_stream_task, tasks, executor, workers, address)
        day_tasks = [
            DayTask(task.where, result.sid, day, entries)
            for task, result in zip(tasks, streams, strict=True)
            for day, entries in _by_day(result.deferred)
        ]
        if executor == "serial":
            days = [_verify_day(task, store) for task in day_tasks]
        else:
            days = _mapped(verify_day_task, day_tasks, executor, workers, address)
    results: Iterable[StreamResult] = [*streams, *days]
    if isinstance(root, ObjectStore) and not isinstance(root, LocalStore):
        from buff_dataplane.storage.gap_ledger import LEDGER_CHAIN

        keys = root.list(chain_checkpoint_prefix(LEDGER_CHAIN))
        if keys:  # the ledger is read only if it has checkpoints to check
            data = root.chain_read(LEDGER_CHAIN, use_checkpoints=False).data
            report.faults.extend(_check_checkpoints(root, keys, data))
    report.streams = len(streams)
    for result in results:  # in partition order, never completion order
        report.segments += result.segments
        report.events += result.events
        report.segment_bytes += result.segment_bytes
        report.unsealed_events += result.unsealed_events
        report.faults.extend(result.faults)
        report.notes.extend(result.notes)
        if progress is not None and result.verified_rows:
            progress(result.verified_rows)
    report.faults.sort()
    return report


def _mapped(
    fn: Callable[[Any], StreamResult],
    tasks: Sequence[Any],
    executor: str,
    workers: int | None,
    address: str | None,
) -> list[StreamResult]:
    if not tasks:
        return []  # no pool or cluster for nothing
    return map_partitions(fn, tasks, executor=executor, workers=workers, address=address)


def _by_day(entries: Iterable[ManifestEntry]) -> list[tuple[int, tuple[ManifestEntry, ...]]]:
    """``entries`` grouped by the UTC day of their first ingest time, in day order."""
    days: dict[int, list[ManifestEntry]] = {}
    for entry in entries:
        days.setdefault(entry.ts_ingest_min // MS_PER_DAY, []).append(entry)
    return [(day, tuple(days[day])) for day in sorted(days)]


def verify_day_task(task: DayTask) -> StreamResult:
    """The partition task: open the store from ``task.where``, check one day's segments."""
    if isinstance(task.where, Path):
        store: ObjectStore = LocalStore(task.where, fsync=False)
    else:
        store = task_store(task.where)
    return _verify_day(task, store)


def _verify_day(task: DayTask, store: ObjectStore) -> StreamResult:
    part = VerifyReport(f"{task.sid} day {task.day}")
    for entry in task.entries:
        _verify_segment(task.sid, store, layout.segment_key(task.sid, entry.segment), entry, part)
    return StreamResult(
        sid=task.sid,
        segments=part.segments,
        events=part.events,
        segment_bytes=part.segment_bytes,
        unsealed_events=0,
        verified_rows=sum(e.rows for e in task.entries),
        faults=tuple(part.faults),
        notes=tuple(part.notes),
    )


def verify_stream_task(task: StreamTask) -> StreamResult:
    """The partition task: open the store from ``task.where`` and verify one stream."""
    if isinstance(task.where, Path):
        store: ObjectStore = LocalStore(task.where, fsync=False)
    else:
        store = task_store(task.where)
    return _verify_one(task, store)


def _verify_one(task: StreamTask, store: ObjectStore) -> StreamResult:
    """A stream's chain, files and journal; its present segments are left to day tasks."""
    part = VerifyReport(str(task.sid))
    deferred: list[ManifestEntry] = []
    _verify_sealed(
        task.sid, store, task.present, task.journal, part, None, task.checkpoints, deferred
    )
    return StreamResult(
        sid=task.sid,
        segments=part.segments,
        events=part.events,
        segment_bytes=part.segment_bytes,
        unsealed_events=part.unsealed_events,
        verified_rows=0,
        faults=tuple(part.faults),
        notes=tuple(part.notes),
        deferred=tuple(deferred),
    )


def _discover_directory(root: Path, report: VerifyReport) -> list[StreamTask]:
    """Each stream directory's task, in directory order; strays found on the way."""
    base = root / layout.LOG_DIR
    if not base.exists():
        return []
    tasks = []
    for sdir in _stream_dirs(base, report):
        sid = StreamId.of(sdir.parent.parent.name, sdir.parent.name, sdir.name)
        for child in sorted(sdir.iterdir()):
            if child.name not in (layout.MANIFEST, layout.JOURNAL, layout.SEGMENTS):
                _stray(report, child)
            elif child.name == layout.SEGMENTS and not child.is_dir():
                _stray(report, child, "expected the segments directory")
        seg_dir = sdir / layout.SEGMENTS
        on_disk = {p.name: str(p) for p in seg_dir.iterdir()} if seg_dir.is_dir() else {}
        tasks.append(StreamTask(root, sid, on_disk, sdir / layout.JOURNAL))
    return tasks


def _discover_store(
    store: ObjectStore, where: Path | str, state_dir: Path | None, report: VerifyReport
) -> list[StreamTask]:
    """Each stream's task, sorted by stream id; keys not part of the log found here."""
    present: dict[StreamId, dict[str, str]] = {}
    checkpoints: dict[StreamId, list[str]] = {}
    checkpoint_dir = layout.MANIFEST_CHAIN + CHECKPOINT_SUFFIX
    for key in store.list(layout.LOG_DIR):
        parts = key.split("/")
        try:
            sid = StreamId.of(parts[1], parts[2], parts[3]) if len(parts) == 6 else None
        except ValidationError:
            sid = None
        if sid is None or parts[4] not in (layout.SEGMENTS, layout.MANIFEST_CHAIN, checkpoint_dir):
            _stray(report, store.url(key), "not part of the log")
            continue
        if parts[4] == checkpoint_dir and checkpoint_count(key) is None:
            _stray(report, store.url(key), "not a manifest checkpoint")
            continue
        files = present.setdefault(sid, {})
        if parts[4] == layout.SEGMENTS:  # manifest entries are checked by chain_read
            files[parts[5]] = store.url(key)
        elif parts[4] == checkpoint_dir:  # checked against the entries
            checkpoints.setdefault(sid, []).append(key)
    journals: dict[StreamId, Path] = {}
    if state_dir is not None:
        from buff_dataplane.storage.log import local_stream_ids

        for sid in local_stream_ids(state_dir):
            journals[sid] = layout.stream_dir(state_dir, sid) / layout.JOURNAL
    return [
        StreamTask(
            where, sid, present.get(sid, {}), journals.get(sid), tuple(checkpoints.get(sid, ()))
        )
        for sid in sorted(set(present) | set(journals), key=str)
    ]


def _stray(report: VerifyReport, path: Path | str, why: str = "not part of the log") -> None:
    report.faults.append(Fault(str(path), "stray_file", why))


def _stream_dirs(base: Path, report: VerifyReport) -> list[Path]:
    out: list[Path] = []
    checks: list[Callable[[str], object]] = [
        lambda v: StreamId.of(v, "trade", "A-B"),
        lambda c: StreamId.of("binance-usdm", c, "A-B"),
        lambda s: StreamId.of("binance-usdm", "trade", s),
    ]

    def walk(directory: Path, depth: int) -> None:
        for child in sorted(directory.iterdir()):
            if not child.is_dir():
                _stray(report, child)
                continue
            try:
                checks[depth](child.name)
            except ValidationError as exc:
                _stray(report, child, f"directory name is not an identifier ({exc})")
                continue
            if depth == 2:
                out.append(child)
            else:
                walk(child, depth + 1)

    walk(base, 0)
    return out


def _verify_sealed(
    sid: StreamId,
    store: ObjectStore,
    present: dict[str, str],
    journal: Path | None,
    report: VerifyReport,
    progress: Progress | None,
    checkpoints: tuple[str, ...] = (),
    deferred: list[ManifestEntry] | None = None,
) -> None:
    """Check a stream's chain and segments; ``present`` maps segment names to where.
    With ``deferred``, the present segments are listed there instead of checked.

    The chain is read from its entries alone; each of ``checkpoints`` (keys) must be
    the bytes of as many leading entries as its name says.
    """
    chain = layout.manifest_chain(sid)
    mpath = chain_where(store, chain)
    entries = store.chain_read(chain, use_checkpoints=False)
    read = manifest_of_chain(store, chain, str(sid), entries)
    report.faults.extend(_check_checkpoints(store, checkpoints, entries.data))
    for text in read.faults:
        report.faults.append(Fault(str(mpath), "manifest", text.split(": ", 1)[-1]))
    if read.torn_tail:
        report.faults.append(
            Fault(
                str(mpath),
                "manifest_torn_tail",
                f"{len(read.torn_tail)} bytes after the last line (interrupted seal; "
                "opening the log for writing recovers it)",
            )
        )
    if read.entries and read.entries[0].seq_from != 1:
        report.faults.append(
            Fault(
                str(mpath),
                "seq_discontinuity",
                f"first segment starts at seq {read.entries[0].seq_from}, expected 1",
            )
        )
    named = {e.segment for e in read.entries}
    for name in sorted(set(present) - named):
        why = (
            "unpublished temp file from an interrupted seal"
            if name.startswith(layout.TMP_PREFIX)
            else "segment file not named in the manifest"
        )
        _stray(report, present[name], why)
    for entry in read.entries:
        key = layout.segment_key(sid, entry.segment)
        if entry.segment not in present:
            report.faults.append(
                Fault(
                    store.url(key),
                    "missing_segment",
                    f"manifest line {entry.index} names it (seq {entry.seq_from}..{entry.seq_to})",
                )
            )
            continue
        if deferred is not None:
            deferred.append(entry)
            continue
        _verify_segment(sid, store, key, entry, report)
        if progress is not None:
            progress(entry.rows)
    if journal is not None:
        _verify_journal(sid, journal, read.entries, report)


def _check_checkpoints(store: ObjectStore, keys: Iterable[str], data: bytes) -> list[Fault]:
    """A ``checkpoint_mismatch`` for each checkpoint that is not the leading entries."""
    faults: list[Fault] = []
    entries = data.count(b"\n")
    for key in keys:
        count = checkpoint_count(key)
        if count is None:
            continue
        where = store.url(key)
        try:
            body = store.get(key)
        except BuffError as exc:
            faults.append(Fault(where, "checkpoint_mismatch", f"unreadable: {exc}"[:200]))
            continue
        expected = first_lines(data, count)
        if expected is None:
            detail = f"names {count} entries, the chain holds {entries}"
        elif body == expected:
            continue
        else:
            got, want = body.splitlines(), expected.splitlines()
            line = next(
                (i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b),
                min(len(got), len(want)),
            )
            detail = (
                f"differs from entries 0..{count - 1} at entry {line} "
                f"({len(got)} lines, {len(body)} bytes; the entries: {len(expected)} bytes)"
            )
        faults.append(Fault(where, "checkpoint_mismatch", detail))
    return faults


def _verify_segment(
    sid: StreamId, store: ObjectStore, key: str, entry: ManifestEntry, report: VerifyReport
) -> None:
    where = store.url(key)

    def fault(kind: str, detail: str) -> None:
        report.faults.append(Fault(where, kind, detail))

    report.segments += 1
    body: bytes | None = None
    try:
        if isinstance(store, LocalStore):
            # Locally stat, as always: a directory named like a segment is then unreadable.
            size = store.path(key).stat().st_size
            sha = object_sha256(store, key)
        else:
            # One GET: hashed and then decoded from memory (the table is decoded whole
            # anyway), instead of a HEAD, a streamed hash and ranged reads of it again.
            body = store.get(key)
            size, sha = len(body), hashlib.sha256(body).hexdigest()
    except (OSError, BuffError) as exc:
        fault("unreadable_segment", str(exc).splitlines()[0][:200])
        return
    report.segment_bytes += size
    if sha != entry.file_sha256 or size != entry.file_bytes:
        fault(
            "file_hash_mismatch",
            f"sha256 {sha[:16]}... ({size} bytes), manifest says "
            f"{entry.file_sha256[:16]}... ({entry.file_bytes} bytes)",
        )
    try:
        source = segment_source(store, key) if body is None else pa.BufferReader(body)
        table = pq.read_table(source)
    except (OSError, BuffError, pa.ArrowException) as exc:
        fault("unreadable_segment", str(exc).splitlines()[0][:200])
        return
    report.events += table.num_rows
    if not table.schema.equals(RAW_SCHEMA, check_metadata=False):
        fault("schema", "columns or types differ from raw_event v1")
        return
    seqs = table.column("ingest_seq").combine_chunks()
    if len(seqs) != entry.rows or not len(seqs):
        fault("seq_discontinuity", f"{len(seqs)} rows, manifest says {entry.rows}")
    elif seqs[0].as_py() != entry.seq_from or (
        len(seqs) > 1 and not pc.all(pc.equal(pc.pairwise_diff(seqs).slice(1), 1)).as_py()
    ):
        values = seqs.to_pylist()
        first_bad = next(i for i, v in enumerate(values) if v != entry.seq_from + i)
        fault(
            "seq_discontinuity",
            f"row {first_bad}: seq {values[first_bad]}, expected {entry.seq_from + first_bad}",
        )
    for seq in _payload_hash_mismatches(table):
        fault("payload_hash_mismatch", f"seq {seq}: payload does not hash to its sha256")
    stored = table.column("payload_sha256").combine_chunks()
    if hashes_digest(stored) != entry.payload_digest:
        fault("payload_digest_mismatch", "digest of payload hashes differs from the manifest")
    for column, want in (
        ("stream_id", str(sid)),
        ("symbol", sid.symbol),
        ("channel", sid.channel),
    ):
        values = pc.unique(table.column(column)).to_pylist()
        if values != [want]:
            fault("identity_mismatch", f"column {column} holds {values[:3]}, expected {want!r}")
    if pc.unique(table.column("schema_version")).to_pylist() != [1]:
        fault("schema", "schema_version is not 1 on every row")
    stats = {
        "ts_exchange_min": pc.min(table.column("event_ts_exchange_ms")).as_py(),
        "ts_exchange_max": pc.max(table.column("event_ts_exchange_ms")).as_py(),
        "ts_ingest_min": pc.min(table.column("event_ts_ingest_ms")).as_py(),
        "ts_ingest_max": pc.max(table.column("event_ts_ingest_ms")).as_py(),
    }
    for key, value in sorted(stats.items()):
        if getattr(entry, key) != value:
            fault("stats_mismatch", f"{key} is {value}, manifest says {getattr(entry, key)}")


_DUCKDB_MIN_ROWS = 20_000


def _payload_hash_mismatches(table: pa.Table, limit: int = 100) -> list[int]:
    """Seqs of rows whose payload does not hash to its stored SHA-256.

    Large segments are hashed by DuckDB on every core; small ones in-process, where
    starting a DuckDB connection would cost more than the hashing.
    """
    if table.num_rows < _DUCKDB_MIN_ROWS:
        sha256 = hashlib.sha256
        bad = []
        pairs = zip(
            table.column("ingest_seq").to_pylist(),
            table.column("payload_raw").to_pylist(),
            table.column("payload_sha256").to_pylist(),
            strict=True,
        )
        for seq, payload, digest in pairs:
            if sha256(payload).digest() != digest:
                bad.append(int(seq))
                if len(bad) >= limit:
                    break
        return bad
    import duckdb

    con = duckdb.connect()
    try:
        con.register("seg", table.select(["ingest_seq", "payload_raw", "payload_sha256"]))
        rows = con.execute(
            "select ingest_seq from seg where sha256(payload_raw) <> lower(hex(payload_sha256)) "
            f"order by ingest_seq limit {int(limit)}"
        ).fetchall()
    finally:
        con.close()
    return [int(r[0]) for r in rows]


def _verify_journal(
    sid: StreamId, path: Path, entries: list[ManifestEntry], report: VerifyReport
) -> None:
    if not path.exists():
        return
    reader = JournalReader(path)
    first: int | None = None
    try:
        for batch in reader:  # frame by frame: a journal can be as large as a segment
            if first is None and batch.num_rows:
                first = batch.column("ingest_seq")[0].as_py()
    except BuffError as exc:
        report.faults.append(Fault(str(path), "journal_corrupt", str(exc)))
        return
    rows = reader.rows
    report.unsealed_events += rows
    if reader.stream_id not in (None, str(sid)):
        report.faults.append(Fault(str(path), "journal_corrupt", f"names {reader.stream_id}"))
    if first is not None:
        sealed_to = entries[-1].seq_to if entries else 0
        if first > sealed_to + 1:
            report.faults.append(
                Fault(
                    str(path),
                    "seq_discontinuity",
                    f"journal starts at seq {first}, sealed log ends at {sealed_to}",
                )
            )
    note = f"{sid}: {rows} committed events not yet sealed (journal)"
    if reader.torn_bytes:
        note += f", torn tail of {reader.torn_bytes} bytes ({reader.torn_reason})"
    report.notes.append(note)
