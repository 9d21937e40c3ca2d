"""Sealing streams from the journal: a writer's memory is bounded by its pending group
commit, and the segment is the same bytes as encoding all its events as one table."""

from __future__ import annotations

import hashlib
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from buff_dataplane.core.config import LogConfig
from buff_dataplane.core.errors import IntegrityError
from buff_dataplane.storage import layout, segment
from buff_dataplane.storage.journal import JournalReader, JournalWriter
from buff_dataplane.storage.log import open_log
from buff_dataplane.storage.segment import RAW_SCHEMA, WRITER_OPTIONS
from buff_dataplane.storage.verify import verify_log

from .conftest import SID, T0

ROWS_PER_GROUP = 1_000  # small row groups, so a few thousand events span many of them


def _events(n: int, seed: int = 11) -> list[tuple[bytes, int | None, int, str, str | None, int]]:
    """(payload, ts_exchange, ts_ingest, source, origin, conn_id), with nulls and runs."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        payload = b'{"t":%d,"p":"%d.%02d"}' % (i, rng.randrange(60_000, 61_000), i % 100)
        ts_ex = None if i % 37 == 0 else T0 + i - rng.randrange(0, 50)
        source = "rest_backfill" if (i // 400) % 3 == 2 else "ws"
        origin = f"req-{i // 700}" if (i // 700) % 2 else None
        out.append((payload, ts_ex, T0 + 10 + i, source, origin, i // 900))
    return out


def _commit_sizes(n: int, seed: int = 5) -> list[int]:
    rng = random.Random(seed)
    sizes = []
    while sum(sizes) < n:
        sizes.append(min(rng.choice((1, 3, 50, 333, 999, 1_500)), n - sum(sizes)))
    return sizes


def _write_in_commits(w, events, sizes) -> None:
    i = 0
    for size in sizes:
        for payload, ts_ex, ts_in, source, origin, conn_id in events[i : i + size]:
            w.append(payload, ts_ex, ts_in, source=source, origin=origin, conn_id=conn_id)
        w.commit()
        i += size


def _reference_bytes(events, sizes, first_seq: int = 1) -> bytes:
    """The pre-streaming encoding: all events as one table of one batch per group commit,
    built here from the events, written by a single ``pq.write_table``."""
    batches, i = [], 0
    for size in sizes:
        rows = events[i : i + size]
        n = len(rows)
        batches.append(
            pa.RecordBatch.from_arrays(
                [
                    pa.array([SID] * n, pa.string()),
                    pa.array(range(first_seq + i, first_seq + i + n), pa.int64()),
                    pa.array([r[1] for r in rows], pa.int64()),
                    pa.array([r[2] for r in rows], pa.int64()),
                    pa.array(["BTC-USDT-PERP"] * n, pa.string()),
                    pa.array(["trade"] * n, pa.string()),
                    pa.array([r[0] for r in rows], pa.binary()),
                    pa.array([hashlib.sha256(r[0]).digest() for r in rows], pa.binary(32)),
                    pa.array([r[3] for r in rows], pa.string()),
                    pa.array([1] * n, pa.int16()),
                    pa.array([r[4] for r in rows], pa.string()),
                    pa.array([r[5] for r in rows], pa.int64()),
                ],
                schema=RAW_SCHEMA,
            )
        )
        i += size
    sink = pa.BufferOutputStream()
    pq.write_table(
        pa.Table.from_batches(batches, schema=RAW_SCHEMA),
        sink,
        row_group_size=ROWS_PER_GROUP,
        compression_level=LogConfig().zstd_level,
        **WRITER_OPTIONS,  # type: ignore[arg-type]
    )
    return bytes(sink.getvalue().to_pybytes())


def _segment_path(data_dir, name):
    return data_dir / "log" / SID / layout.SEGMENTS / name


def test_writer_memory_is_bounded_by_the_group_commit_not_by_the_segment(data_dir):
    # Regression: StreamWriter kept every committed batch until the seal, so a capture's
    # RSS grew with the segment (650 MB after 3 min at 5k events/s, 2.3 GB in 30 min).
    cfg = LogConfig(group_commit_events=100, segment_max_events=1_000_000, fsync=False)
    log = open_log(data_dir, cfg)
    w = log.writer(SID)
    payloads = [b"x" * 150 + b"%06d" % i for i in range(100)]

    def append_commits(count: int) -> None:
        for _ in range(count):
            ts = T0 + w.next_seq
            w.append_batch(payloads, [ts] * 100, [ts] * 100)

    append_commits(10)
    allocated = pa.total_allocated_bytes()
    append_commits(300)  # 30,000 more events, 4.7 MB of payloads, all committed

    assert (w.durable_seq, w.sealed_seq) == (31_000, 0)
    for name, value in vars(w).items():
        assert not isinstance(value, pa.RecordBatch | pa.Table | pa.Array), name
        if isinstance(value, list | dict | tuple):
            assert len(value) <= cfg.group_commit_events, name
    assert pa.total_allocated_bytes() - allocated < 64 * 1024  # no Arrow data kept
    log.close()
    assert verify_log(data_dir).ok


def test_sealing_reads_the_journal_one_row_group_at_a_time(data_dir, monkeypatch):
    monkeypatch.setattr(segment, "ROW_GROUP_ROWS", ROWS_PER_GROUP)
    progress = {"read": 0}
    real_iter = JournalReader.__iter__

    def counting_iter(self):
        for batch in real_iter(self):
            progress["read"] += batch.num_rows
            yield batch

    written: list[tuple[int, int]] = []  # (rows in the row group, rows read so far)
    real_write = pq.ParquetWriter.write_table

    def spying_write(self, table, row_group_size=None):
        written.append((table.num_rows, progress["read"]))
        return real_write(self, table, row_group_size=row_group_size)

    monkeypatch.setattr(JournalReader, "__iter__", counting_iter)
    monkeypatch.setattr(pq.ParquetWriter, "write_table", spying_write)
    with open_log(data_dir, LogConfig(group_commit_events=300, fsync=False)) as log:
        w = log.writer(SID)
        for i in range(10_000):
            w.append(b"evt-%d" % i, T0 + i, T0 + i)

    done = 0
    for rows, read in written:
        done += rows
        assert rows <= ROWS_PER_GROUP
        assert read - done < 300  # at most the rest of one journal frame read ahead
    assert done == progress["read"] == 10_000
    assert len(written) == 10


def test_a_segment_sealed_from_many_commits_is_the_one_table_encoding(data_dir, monkeypatch):
    monkeypatch.setattr(segment, "ROW_GROUP_ROWS", ROWS_PER_GROUP)
    events = _events(5_000)
    sizes = _commit_sizes(len(events))
    with open_log(data_dir, LogConfig(fsync=False)) as log:
        _write_in_commits(log.writer(SID), events, sizes)
    log = open_log(data_dir, readonly=True)
    [entry] = log.manifest(log.stream_ids()[0])

    data = _segment_path(data_dir, entry.segment).read_bytes()
    assert data == _reference_bytes(events, sizes)
    assert pq.ParquetFile(_segment_path(data_dir, entry.segment)).num_row_groups == 5
    present = [e[1] for e in events if e[1] is not None]
    assert (entry.seq_from, entry.seq_to, entry.rows) == (1, 5_000, 5_000)
    assert (entry.ts_exchange_min, entry.ts_exchange_max) == (min(present), max(present))
    assert (entry.ts_ingest_min, entry.ts_ingest_max) == (T0 + 10, T0 + 10 + 4_999)
    assert entry.payload_bytes == sum(len(e[0]) for e in events)
    assert entry.file_bytes == len(data)
    assert entry.file_sha256 == hashlib.sha256(data).hexdigest()
    digest = hashlib.sha256(b"".join(hashlib.sha256(e[0]).digest() for e in events))
    assert entry.payload_digest == digest.hexdigest()
    assert verify_log(data_dir).ok


def test_a_segment_recovered_from_a_crash_journal_is_the_one_table_encoding(data_dir, monkeypatch):
    monkeypatch.setattr(segment, "ROW_GROUP_ROWS", ROWS_PER_GROUP)
    events = _events(3_500, seed=3)
    sizes = _commit_sizes(len(events), seed=8)
    log = open_log(data_dir, LogConfig(fsync=False))
    w = log.writer(SID)
    _write_in_commits(w, events, sizes)
    w._journal.close()  # die without sealing
    log._release_lock()

    reopened = open_log(data_dir, LogConfig(fsync=False))
    [report] = reopened.recovery
    reopened.close()
    assert report.recovered_events == 3_500
    data = _segment_path(data_dir, report.sealed_segment).read_bytes()
    assert data == _reference_bytes(events, sizes)
    assert verify_log(data_dir).ok


def test_seal_refuses_a_journal_that_differs_from_the_committed_events(data_dir):
    log = open_log(data_dir, LogConfig(fsync=False))
    w = log.writer(SID)
    for i in range(5):
        w.append(b"evt-%d" % i, T0 + i, T0 + i)
    w.commit()
    journal = data_dir / "log" / SID / layout.JOURNAL
    # Replace the journal by a well-formed one holding other payloads for the same seqs.
    other = log.writer("binance-usdm/trade/ETH-USDT-PERP")
    for i in range(5):
        other.append(b"other-%d" % i, T0 + i, T0 + i)
    other.commit()
    [batch] = list(JournalReader(other.dir / layout.JOURNAL))
    batch = batch.set_column(0, "stream_id", pa.array([SID] * 5))
    journal.unlink()
    JournalWriter(journal, SID, fsync=False).append(batch)

    with pytest.raises(IntegrityError, match="does not hold the committed events"):
        w.seal()

    seg_dir = data_dir / "log" / SID / layout.SEGMENTS
    assert list(seg_dir.iterdir()) == []  # nothing published, no temp file left
    assert journal.exists()
    assert w.durable_seq == 5 and w.sealed_seq == 0


def test_seal_refuses_a_torn_journal_and_publishes_nothing(data_dir):
    log = open_log(data_dir, LogConfig(fsync=False))
    w = log.writer(SID)
    w.append(b"evt", T0, T0)
    w.commit()
    journal = data_dir / "log" / SID / layout.JOURNAL
    with journal.open("ab") as fh:
        fh.write(b"\x00\x00\x00")

    with pytest.raises(IntegrityError, match="torn tail of 3 bytes"):
        w.seal()

    assert list((data_dir / "log" / SID / layout.SEGMENTS).iterdir()) == []
