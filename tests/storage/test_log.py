import os
import stat

import pyarrow as pa
import pytest

from buff_dataplane.core.config import LogConfig
from buff_dataplane.core.errors import (
    ImmutabilityError,
    LockedError,
    StorageError,
    ValidationError,
)
from buff_dataplane.core.events import MS_PER_DAY
from buff_dataplane.storage import layout
from buff_dataplane.storage.log import open_log
from buff_dataplane.storage.reader import scan, to_reader, to_table
from buff_dataplane.storage.verify import verify_log

from .conftest import SID, T0, fill


def _segments(data_dir, stream=SID):
    seg_dir = data_dir / "log" / stream / "segments"
    return sorted(p.name for p in seg_dir.iterdir())


def test_appends_get_dense_seqs_that_continue_across_reopen(data_dir, small_config):
    assert fill(data_dir, 25, config=small_config) == list(range(1, 26))
    assert fill(data_dir, 5, config=small_config, start=25) == list(range(26, 31))
    table = to_table(open_log(data_dir, readonly=True))
    assert table.column("ingest_seq").to_pylist() == list(range(1, 31))
    assert table.column("payload_raw").to_pylist() == [b"evt-%d" % i for i in range(30)]
    assert verify_log(data_dir).ok


def test_segments_roll_at_max_events_and_are_read_only(data_dir, small_config):
    fill(data_dir, 25, config=small_config)
    names = _segments(data_dir)
    assert names == [
        layout.segment_name(1, 10),
        layout.segment_name(11, 20),
        layout.segment_name(21, 25),
    ]
    for name in names:
        mode = (data_dir / "log" / SID / "segments" / name).stat().st_mode
        assert not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)


def test_rows_carry_every_schema_field(data_dir):
    with open_log(data_dir, LogConfig(fsync=False)) as log:
        log.writer(SID).append(b"{}", T0, T0 + 5, source="rest_backfill", origin="o", conn_id=7)
    row = to_table(open_log(data_dir, readonly=True)).to_pylist()[0]
    import hashlib

    assert row == {
        "stream_id": SID,
        "ingest_seq": 1,
        "event_ts_exchange_ms": T0,
        "event_ts_ingest_ms": T0 + 5,
        "symbol": "BTC-USDT-PERP",
        "channel": "trade",
        "payload_raw": b"{}",
        "payload_sha256": hashlib.sha256(b"{}").digest(),
        "source": "rest_backfill",
        "schema_version": 1,
        "origin": "o",
        "conn_id": 7,
    }


def test_group_commit_by_count_and_by_age(data_dir, clock):
    cfg = LogConfig(group_commit_events=3, group_commit_ms=100, fsync=False)
    log = open_log(data_dir, cfg, clock=clock)
    w = log.writer(SID)
    w.append(b"a", T0, T0)
    w.append(b"b", T0, T0)
    assert (w.durable_seq, w.pending) == (0, 2)
    w.append(b"c", T0, T0)
    assert (w.durable_seq, w.pending) == (3, 0)
    w.append(b"d", T0, T0)
    clock.now += 99
    assert w.maybe_commit() == 3
    clock.now += 1
    assert w.maybe_commit() == 4
    log.close()


def test_segments_never_span_two_utc_days(data_dir):
    midnight = (T0 // MS_PER_DAY + 1) * MS_PER_DAY
    with open_log(data_dir, LogConfig(fsync=False)) as log:
        w = log.writer(SID)
        for ts in (midnight - 2, midnight - 1, midnight, midnight + 1):
            w.append(b"x", ts, ts)
    assert _segments(data_dir) == [layout.segment_name(1, 2), layout.segment_name(3, 4)]


def test_segments_roll_at_age_on_the_ingest_clock(data_dir):
    with open_log(
        data_dir, LogConfig(segment_max_age_s=60, group_commit_events=1, fsync=False)
    ) as log:
        w = log.writer(SID)
        for i in range(4):
            w.append(b"x", T0 + i * 30_000, T0 + i * 30_000)
    assert _segments(data_dir) == [layout.segment_name(1, 3), layout.segment_name(4, 4)]


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("not bytes", T0, T0), {}, "payload must be bytes"),
        ((b"x" * 65, T0, T0), {}, "exceeds the limit of 64 bytes"),
        ((b"x", T0, 5), {}, "ingest time 5 out of range"),
        ((b"x", 1.5, T0), {}, "exchange time 1.5 out of range"),
        ((b"x", T0, T0), {"source": "carrier-pigeon"}, "source"),
    ],
)
def test_bad_appends_are_refused_and_change_nothing(data_dir, args, kwargs, match):
    log = open_log(data_dir, LogConfig(max_payload_bytes=64, fsync=False))
    w = log.writer(SID)
    w.append(b"ok", T0, T0)
    with pytest.raises(ValidationError, match=match):
        w.append(*args, **kwargs)
    assert (w.next_seq, w.pending) == (2, 1)
    log.close()
    assert to_table(open_log(data_dir, readonly=True)).column("payload_raw").to_pylist() == [b"ok"]


def test_an_existing_segment_name_is_an_error_never_an_overwrite(data_dir):
    fill(data_dir, 3)
    seg = data_dir / "log" / SID / "segments" / layout.segment_name(1, 3)
    before = seg.read_bytes()
    log = open_log(data_dir, LogConfig(fsync=False))
    table = to_table(log)
    # Re-publishing the same rows as if the manifest were empty hits the existing name.
    with pytest.raises(ImmutabilityError, match="already exists"):
        log._publish_segment(log.writer(SID).sid, table, None)
    from buff_dataplane.storage.segment import write_segment

    with pytest.raises(ImmutabilityError, match="already exists"):
        write_segment(seg, b"other bytes", fsync=False)
    log.close()
    assert seg.read_bytes() == before


def test_overlapping_or_non_continuing_ranges_are_errors(data_dir):
    fill(data_dir, 3)
    log = open_log(data_dir, LogConfig(fsync=False))
    w = log.writer(SID)
    last = log.manifest(w.sid)[-1]
    table = to_table(log)
    for rows in (table.slice(1, 2), table.slice(0, 1)):
        with pytest.raises(ImmutabilityError, match="does not continue the sealed log at seq 4"):
            log._publish_segment(w.sid, rows, last)
    log.close()


def test_a_second_writer_process_is_locked_out(data_dir):
    log = open_log(data_dir, LogConfig(fsync=False))
    import subprocess
    import sys

    code = (
        "import sys; from buff_dataplane.storage.log import open_log\n"
        "from buff_dataplane.core.errors import LockedError\n"
        f"try: open_log({str(data_dir)!r})\n"
        "except LockedError as e: print(e); sys.exit(7)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 7, out.stderr
    assert f"pid {os.getpid()}" in out.stdout
    log.close()
    assert open_log(data_dir, LogConfig(fsync=False)) is not None


def test_lock_is_per_open_file_so_a_second_open_in_process_is_refused(data_dir):
    log = open_log(data_dir, LogConfig(fsync=False))
    with pytest.raises(LockedError, match="locked by pid"):
        open_log(data_dir, LogConfig(fsync=False))
    log.close()


def test_closed_writer_refuses_appends(data_dir):
    log = open_log(data_dir, LogConfig(fsync=False))
    w = log.writer(SID)
    w.close()
    with pytest.raises(StorageError, match="closed"):
        w.append(b"x", T0, T0)
    log.close()


def test_scan_filters_by_seq_and_time_and_prunes_segments(data_dir, small_config):
    fill(data_dir, 25, config=small_config)
    log = open_log(data_dir, readonly=True)
    seqs = to_table(log, seq_from=8, seq_to=12, columns=["ingest_seq"]).column(0).to_pylist()
    assert seqs == [8, 9, 10, 11, 12]
    by_time = (
        to_table(log, time_from=T0 + 100 + 3, time_to=T0 + 100 + 6, columns=["payload_raw"])
        .column(0)
        .to_pylist()
    )
    assert by_time == [b"evt-3", b"evt-4", b"evt-5"]
    ex = to_table(log, time_from=T0 + 20, time_field="event_ts_exchange_ms", columns=["ingest_seq"])
    assert ex.column(0).to_pylist() == [21, 22, 23, 24, 25]
    batches = list(scan(log, seq_from=11, seq_to=20, batch_rows=4))
    assert [b.num_rows for b in batches] == [4, 4, 2]


def test_scan_feeds_polars_and_duckdb_lazily(data_dir, small_config):
    fill(data_dir, 25, config=small_config)
    log = open_log(data_dir, readonly=True)
    import duckdb
    import polars as pl

    reader = to_reader(log, columns=["ingest_seq", "payload_raw"])
    con = duckdb.connect()
    con.register("raw", reader)
    assert con.execute("select count(*), max(ingest_seq) from raw").fetchone() == (25, 25)
    df = pl.from_arrow(to_table(log, seq_from=20))
    assert isinstance(df, pl.DataFrame)
    assert df["ingest_seq"].to_list() == [20, 21, 22, 23, 24, 25]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"seq_from": 5, "seq_to": 4}, "inverted seq range"),
        ({"time_from": 5, "time_to": 5}, "inverted time range"),
        ({"columns": ["nope"]}, "unknown columns"),
        ({"time_field": "wallclock"}, "time field"),
    ],
)
def test_scan_refuses_bad_filters(data_dir, kwargs, match):
    fill(data_dir, 2)
    with pytest.raises(ValidationError, match=match):
        list(scan(open_log(data_dir, readonly=True), **kwargs))


def test_empty_log_reads_as_empty(data_dir):
    open_log(data_dir, LogConfig(fsync=False)).close()
    log = open_log(data_dir, readonly=True)
    assert log.stream_ids() == []
    assert to_table(log).num_rows == 0
    assert isinstance(to_table(log), pa.Table)
