"""Tampering with a sealed log makes verify-log fail and name the fault."""

import os

import pytest

from buff_dataplane.core.config import LogConfig
from buff_dataplane.storage import layout
from buff_dataplane.storage.verify import verify_log

from .conftest import SID, fill


@pytest.fixture
def sealed(data_dir):
    fill(data_dir, 30, config=LogConfig(segment_max_events=10, fsync=False))
    fill(
        data_dir, 5, config=LogConfig(fsync=False), stream="binance-usdm/book_ticker/BTC-USDT-PERP"
    )
    assert verify_log(data_dir).ok
    return data_dir / "log" / SID


def _kinds(data_dir):
    return sorted({f.kind for f in verify_log(data_dir).faults})


def _writable(path):
    os.chmod(path, 0o644)
    return path


def test_flipping_one_byte_in_a_segment_is_named(data_dir, sealed):
    seg = _writable(sealed / "segments" / layout.segment_name(11, 20))
    data = bytearray(seg.read_bytes())
    data[len(data) // 2] ^= 0x01
    seg.write_bytes(bytes(data))
    report = verify_log(data_dir)
    assert not report.ok
    assert {f.path for f in report.faults} == {str(seg)}
    assert "file_hash_mismatch" in {f.kind for f in report.faults}


def test_altering_a_payload_inside_a_rewritten_segment_names_the_seq(data_dir, sealed):
    import pyarrow as pa
    import pyarrow.parquet as pq

    seg = _writable(sealed / "segments" / layout.segment_name(11, 20))
    table = pq.read_table(seg)
    payloads = table.column("payload_raw").to_pylist()
    payloads[3] = b"evt-forged"
    idx = table.schema.get_field_index("payload_raw")
    table = table.set_column(idx, table.schema.field(idx), pa.array(payloads, pa.binary()))
    pq.write_table(table, seg)
    details = [str(f) for f in verify_log(data_dir).faults]
    assert any("payload_hash_mismatch" in d and "seq 14" in d for d in details), details


def test_deleting_a_segment_is_named(data_dir, sealed):
    seg = sealed / "segments" / layout.segment_name(21, 30)
    seg.unlink()
    report = verify_log(data_dir)
    assert [(f.kind, f.path) for f in report.faults] == [("missing_segment", str(seg))]


def test_editing_a_manifest_line_breaks_the_chain(data_dir, sealed):
    manifest = sealed / "manifest.jsonl"
    lines = manifest.read_bytes().splitlines(keepends=True)
    lines[0] = lines[0].replace(b'"rows":10', b'"rows":11')
    manifest.write_bytes(b"".join(lines))
    report = verify_log(data_dir)
    assert "manifest" in _kinds(data_dir)
    assert any("line 2 breaks the hash chain" in f.detail for f in report.faults)


def test_reordering_manifest_lines_is_named(data_dir, sealed):
    manifest = sealed / "manifest.jsonl"
    lines = manifest.read_bytes().splitlines(keepends=True)
    lines[0], lines[1] = lines[1], lines[0]
    manifest.write_bytes(b"".join(lines))
    details = [f.detail for f in verify_log(data_dir).faults]
    assert any("line 1 breaks the hash chain" in d for d in details)
    assert any("line 1 has index 1, expected 0" in d for d in details)


def test_removing_a_middle_manifest_line_is_named(data_dir, sealed):
    manifest = sealed / "manifest.jsonl"
    lines = manifest.read_bytes().splitlines(keepends=True)
    manifest.write_bytes(lines[0] + lines[2])
    kinds = _kinds(data_dir)
    assert "manifest" in kinds and "stray_file" in kinds


@pytest.mark.parametrize(
    "where", ["segments/notes.txt", "extra.parquet", "segments/.tmp-0001.parquet.1"]
)
def test_a_stray_file_is_named(data_dir, sealed, where):
    stray = sealed / where
    stray.write_bytes(b"hello")
    report = verify_log(data_dir)
    assert [(f.kind, f.path) for f in report.faults] == [("stray_file", str(stray))]


def test_a_stray_directory_with_a_non_identifier_name_is_named(data_dir, sealed):
    bad = data_dir / "log" / "binance-usdm" / "trade" / "btc usdt"
    bad.mkdir()
    report = verify_log(data_dir)
    assert [(f.kind, f.path) for f in report.faults] == [("stray_file", str(bad))]


def test_a_corrupted_journal_mid_file_is_a_fault_not_a_torn_tail(data_dir, sealed):
    from buff_dataplane.storage.log import open_log

    log = open_log(data_dir, LogConfig(group_commit_events=2, fsync=False))
    w = log.writer(SID)
    for i in range(6):
        w.append(b"j-%d" % i, 1_723_161_256_000, 1_723_161_256_000)
    journal = sealed / "journal.wal"
    data = bytearray(journal.read_bytes())
    log._release_lock()  # simulate the writer dying without sealing
    header_end = 12 + int.from_bytes(data[8:12], "big")
    data[header_end + 40] ^= 0xFF  # inside the body of the first of three frames
    journal.write_bytes(bytes(data))
    faults = [f for f in verify_log(data_dir).faults if f.kind == "journal_corrupt"]
    assert len(faults) == 1
    assert "fails its checksum and is followed by" in faults[0].detail


def test_a_forged_payload_in_a_large_segment_is_found_by_the_parallel_hash_path(data_dir):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from buff_dataplane.storage.verify import _DUCKDB_MIN_ROWS

    n = _DUCKDB_MIN_ROWS + 5
    fill(data_dir, n, config=LogConfig(segment_max_events=n, fsync=False))
    seg = _writable(data_dir / "log" / SID / "segments" / layout.segment_name(1, n))
    table = pq.read_table(seg)
    payloads = table.column("payload_raw").to_pylist()
    payloads[n - 2] = b"forged"
    idx = table.schema.get_field_index("payload_raw")
    table = table.set_column(idx, table.schema.field(idx), pa.array(payloads, pa.binary()))
    pq.write_table(table, seg)
    mismatches = [f for f in verify_log(data_dir).faults if f.kind == "payload_hash_mismatch"]
    assert [f.detail for f in mismatches] == [f"seq {n - 1}: payload does not hash to its sha256"]
