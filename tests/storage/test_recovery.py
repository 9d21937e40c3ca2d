"""Crash states, made exactly: every point where a writer can die, then a reopen."""

import pytest

from buff_dataplane.core.config import LogConfig
from buff_dataplane.core.errors import IntegrityError
from buff_dataplane.storage import layout
from buff_dataplane.storage import log as log_module
from buff_dataplane.storage.log import open_log
from buff_dataplane.storage.reader import to_table
from buff_dataplane.storage.verify import verify_log

from .conftest import SID, T0

CFG = LogConfig(group_commit_events=5, fsync=False)


class Died(Exception):
    """Stands for the process dying at this point."""


def _crash(log):
    """Drop the log without sealing or closing anything, as a SIGKILL would."""
    for w in log.writers():
        if w._journal is not None:
            w._journal.close()
    log._release_lock()


def _write(data_dir, n, start=0):
    log = open_log(data_dir, CFG)
    w = log.writer(SID)
    for i in range(start, start + n):
        w.append(b"evt-%d" % i, T0 + i, T0 + i)
    return log, w


def _payloads(data_dir):
    return to_table(open_log(data_dir, readonly=True)).column("payload_raw").to_pylist()


def test_committed_journal_events_are_sealed_on_reopen_and_pending_ones_are_not(data_dir):
    log, w = _write(data_dir, 12)  # 10 committed in two group commits, 2 pending
    assert (w.durable_seq, w.pending) == (10, 2)
    _crash(log)
    reopened = open_log(data_dir, CFG)
    [report] = reopened.recovery
    assert report.recovered_events == 10
    assert report.sealed_segment == layout.segment_name(1, 10)
    assert reopened.writer(SID).append(b"next", T0, T0) == 11
    reopened.close()
    assert _payloads(data_dir) == [b"evt-%d" % i for i in range(10)] + [b"next"]
    assert verify_log(data_dir).ok


def test_a_torn_journal_tail_is_cut_reported_and_kept_as_evidence(data_dir):
    log, _w = _write(data_dir, 10)
    _crash(log)
    journal = data_dir / "log" / SID / layout.JOURNAL
    with journal.open("ab") as fh:
        fh.write(b"\x00\x00\x01\x00partial frame")
    reopened = open_log(data_dir, CFG)
    [report] = reopened.recovery
    assert report.torn_journal_bytes == len(b"\x00\x00\x01\x00partial frame")
    assert "dropped a torn journal tail of 17 bytes" in report.describe()
    evidence = list((data_dir / "quarantine" / "torn").iterdir())
    assert [p.read_bytes() for p in evidence] == [b"\x00\x00\x01\x00partial frame"]
    reopened.close()
    assert len(_payloads(data_dir)) == 10
    assert verify_log(data_dir).ok


def test_death_after_publishing_a_segment_but_before_its_manifest_line(data_dir, monkeypatch):
    log, w = _write(data_dir, 10)

    def die(*args, **kwargs):
        raise Died

    monkeypatch.setattr(log_module, "append_entry", die)
    with pytest.raises(Died):
        w.seal()
    _crash(log)
    monkeypatch.undo()
    reopened = open_log(data_dir, CFG)
    [report] = reopened.recovery
    assert report.adopted_segment == layout.segment_name(1, 10)
    assert report.recovered_events == 0
    reopened.close()
    assert _payloads(data_dir) == [b"evt-%d" % i for i in range(10)]
    assert verify_log(data_dir).ok


def test_death_after_the_manifest_line_but_before_the_journal_is_removed(data_dir, monkeypatch):
    log, w = _write(data_dir, 10)

    def die(*args, **kwargs):
        raise Died

    monkeypatch.setattr(log_module.RawLog, "_remove_journal", die)
    with pytest.raises(Died):
        w.seal()
    _crash(log)
    monkeypatch.undo()
    reopened = open_log(data_dir, CFG)
    assert reopened.recovery[0].recovered_events == 0
    reopened.close()
    assert _payloads(data_dir) == [b"evt-%d" % i for i in range(10)]
    assert verify_log(data_dir).ok


def test_a_torn_manifest_line_is_cut_and_its_segment_adopted(data_dir, monkeypatch):
    log, w = _write(data_dir, 10)
    real_append = log_module.append_entry

    def half_written(path, entry, fsync):
        with path.open("ab") as fh:
            fh.write(entry.encode()[:40])
        raise Died

    monkeypatch.setattr(log_module, "append_entry", half_written)
    with pytest.raises(Died):
        w.seal()
    _crash(log)
    monkeypatch.setattr(log_module, "append_entry", real_append)
    reopened = open_log(data_dir, CFG)
    [report] = reopened.recovery
    assert report.torn_manifest_bytes == 40
    assert report.adopted_segment == layout.segment_name(1, 10)
    reopened.close()
    assert verify_log(data_dir).ok


def test_leftover_temp_files_of_an_interrupted_seal_are_removed(data_dir):
    log, _w = _write(data_dir, 10)
    _crash(log)
    seg_dir = data_dir / "log" / SID / "segments"
    seg_dir.mkdir(parents=True, exist_ok=True)
    (seg_dir / ".tmp-00000000000000000001-00000000000000000010.parquet.99").write_bytes(b"half")
    assert not verify_log(data_dir).ok  # before recovery the temp file is a stray
    reopened = open_log(data_dir, CFG)
    assert reopened.recovery[0].removed_temp_files
    reopened.close()
    assert verify_log(data_dir).ok


def test_a_corrupted_manifest_refuses_writing(data_dir):
    log, _w = _write(data_dir, 10)
    log.close()
    manifest = data_dir / "log" / SID / layout.MANIFEST
    manifest.write_bytes(manifest.read_bytes().replace(b'"rows":10', b'"rows":9'))
    with pytest.raises(IntegrityError, match="refusing to write"):
        open_log(data_dir, CFG)
