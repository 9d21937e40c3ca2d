"""The log's own state on S3 (moto's server on loopback): gap ledger, quarantine, imports.

A local log keeps these as files in its data directory; a log whose sealed data is in an
object store keeps them in the store too, so a reader elsewhere sees them. The gap ledger
is a chain whose bytes are the local ledger file's; two ledgers racing for a position
re-read and decide again. Quarantine is written locally first and published one object
per record, and whatever a failed publish left behind goes up when the log next opens.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from buff_dataplane.core.config import LogConfig
from buff_dataplane.core.errors import IntegrityError, StorageError, ValidationError
from buff_dataplane.core.gaps import Gap, new_gap
from buff_dataplane.storage.gap_ledger import (
    LEDGER_CHAIN,
    MAX_RACES,
    GapLedger,
    StoreGapLedger,
    ledger_for,
    ledger_path,
)
from buff_dataplane.storage.log import open_log
from buff_dataplane.storage.objstore import (
    ObjectExists,
    S3Store,
    chain_entry_key,
)
from buff_dataplane.storage.quarantine import (
    quarantine_records,
    read_quarantine,
    read_store_quarantine,
    record_key,
    writer_id,
)

SID = "binance-usdm/trade/BTC-USDT-PERP"
SID2 = "binance-usdm/trade/ETH-USDT-PERP"
CFG = LogConfig(group_commit_events=4, segment_max_events=10, fsync=False)
DAY1_MS = 1_723_161_256_000  # 2024-08-08
DAY2_MS = DAY1_MS + 86_400_000  # 2024-08-09


# -- fixtures: s3 and store (an S3Store over a fresh bucket, prefix "desk") are
# tests/storage/conftest.py's, on the session's moto server (tests/conftest.py).


def _twin(store: S3Store) -> S3Store:
    """Another client's view of the same bucket and prefix (a second machine)."""
    return S3Store(store.bucket, store.prefix, store.client)


def _gap(id_from: int, stream: str = SID) -> Gap:
    return new_gap(
        stream,
        "trade_id",
        id_from=id_from,
        id_to=id_from + 2,
        ts_from_ms=1_000 + id_from,
        ts_to_ms=2_000 + id_from,
        detected_at_ms=10,
    )


def _with(gap: Gap, **changes: Any) -> Gap:
    return msgspec.structs.replace(gap, **changes)


def _chain_bytes(store: S3Store) -> bytes:
    """The ledger's entry objects, each fetched on its own, concatenated in key order."""
    return b"".join(store.get(key) for key in store.list(LEDGER_CHAIN))


# -- gap ledger --------------------------------------------------------------------------


def test_s3_ledger_is_byte_for_byte_the_local_ledger(store: S3Store, tmp_path: Path) -> None:
    local, remote = GapLedger(tmp_path), GapLedger.over(store)
    a, b = _gap(5), _gap(50, SID2)
    attempt = _with(a, attempts=1, reason="timeout", updated_at_ms=20)
    done = _with(a, status="BACKFILLED", attempts=2, filled=3, updated_at_ms=30)
    gave_up = _with(b, status="UNRESOLVED", reason="too_old", updated_at_ms=40)
    steps: list[Callable[[GapLedger], list[Gap]]] = [
        lambda led: led.add_found([a, b]),
        lambda led: led.add_found([a]),  # found twice: one row
        lambda led: led.record([_with(a, updated_at_ms=99)]),  # unchanged: not written
        lambda led: led.record([attempt]),
        lambda led: led.record([done, gave_up]),
        lambda led: led.record([_with(b, updated_at_ms=50)]),  # UNRESOLVED -> OPEN (retry)
    ]
    for step in steps:
        assert step(remote) == step(local)
    for led in (local, remote):  # a back-filled gap is final; nothing is written
        with pytest.raises(IntegrityError, match="BACKFILLED -> OPEN"):
            led.record([a])

    assert _chain_bytes(store) == ledger_path(tmp_path).read_bytes()
    assert store.chain_read(LEDGER_CHAIN).count == 6
    assert remote.history() == local.history()
    assert remote.rows() == local.rows()
    assert [(g.stream_id, g.status) for g in remote.rows()] == [(SID, "BACKFILLED"), (SID2, "OPEN")]
    # A second machine reading the store sees the same ledger.
    assert GapLedger.over(_twin(store)).current() == local.current()


def test_ledger_for_picks_the_local_file_or_the_store(store: S3Store, tmp_path: Path) -> None:
    with open_log(tmp_path / "data", CFG) as log:
        local = ledger_for(log)
        local.add_found([_gap(5)])
    assert type(local) is GapLedger
    assert ledger_path(tmp_path / "data").read_bytes().count(b"\n") == 1

    state = tmp_path / "state"
    with open_log(store, CFG, state_dir=state) as log:
        remote = ledger_for(log)
        remote.add_found([_gap(5)])
    assert isinstance(remote, StoreGapLedger)
    assert not ledger_path(state).exists()  # nothing of the ledger stays local
    reader = open_log(store, readonly=True)
    assert [g.id_from for g in ledger_for(reader).rows()] == [5]
    reader.close()


def _interfere_on_read(
    monkeypatch: pytest.MonkeyPatch, store: S3Store, times: int, act: Callable[[int], None]
) -> list[int]:
    """Make ``store``'s chain reads call ``act(n)`` after the first ``times`` reads."""
    real = store.chain_read
    reads: list[int] = []

    def read(name: str) -> Any:
        out = real(name)
        reads.append(out.count)
        if len(reads) <= times:
            act(len(reads))
        return out

    monkeypatch.setattr(store, "chain_read", read)
    return reads


def _spy_appends(monkeypatch: pytest.MonkeyPatch, store: S3Store) -> list[tuple[int, str]]:
    real = store.chain_append
    calls: list[tuple[int, str]] = []

    def append(name: str, index: int, line: bytes) -> bool:
        try:
            real(name, index, line)
        except ObjectExists:
            calls.append((index, "lost"))
            raise
        calls.append((index, "won"))
        return True

    monkeypatch.setattr(store, "chain_append", append)
    return calls


def test_two_ledgers_racing_re_read_and_never_write_a_position_twice(
    store: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    b_store = _twin(store)
    a, b = GapLedger.over(store), GapLedger.over(b_store)
    b.add_found([_gap(1)])
    # A reads (1 entry), then B appends position 1, then A tries position 1.
    reads = _interfere_on_read(monkeypatch, store, 1, lambda _n: b.add_found([_gap(2)]))
    appends = _spy_appends(monkeypatch, store)
    assert a.add_found([_gap(3)]) == [_gap(3)]
    assert reads == [1, 2]  # lost the race, read again
    assert appends == [(1, "lost"), (2, "won")]

    read = b_store.chain_read(LEDGER_CHAIN)
    assert read.faults == []
    assert [g.id_from for g in b.history()] == [1, 2, 3]  # B's entry kept at position 1
    assert b_store.list(LEDGER_CHAIN) == [chain_entry_key(LEDGER_CHAIN, i) for i in range(3)]


def test_a_race_lost_halfway_keeps_what_was_appended_and_redoes_the_rest(
    store: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    b_store = _twin(store)
    a, b = GapLedger.over(store), GapLedger.over(b_store)
    g1, g2 = _gap(10), _gap(20)
    real = store.chain_append
    calls: list[int] = []

    def append(name: str, index: int, line: bytes) -> bool:
        calls.append(index)
        if len(calls) == 2:  # between A's two appends, B takes position 1
            b.record([_gap(99)])
        return real(name, index, line)

    monkeypatch.setattr(store, "chain_append", append)
    assert a.record([g1, g2]) == [g1, g2]
    assert calls == [0, 1, 2]
    assert [g.id_from for g in b.history()] == [10, 99, 20]
    assert _chain_bytes(b_store).count(b"\n") == 3


def test_an_illegal_transition_is_still_refused_after_a_lost_race(
    store: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    b_store = _twin(store)
    a, b = GapLedger.over(store), GapLedger.over(b_store)
    gap = _gap(7)
    b.add_found([gap])
    done = _with(gap, status="BACKFILLED", filled=3, updated_at_ms=5)
    # A decides OPEN -> OPEN (an attempt) on what it read; B back-fills it meanwhile.
    _interfere_on_read(monkeypatch, store, 1, lambda _n: b.record([done]))
    appends = _spy_appends(monkeypatch, store)
    with pytest.raises(IntegrityError, match="BACKFILLED -> OPEN"):
        a.record([_with(gap, attempts=1, updated_at_ms=4)])
    assert appends == [(1, "lost")]  # A wrote nothing
    assert b.history() == [gap, done]


def test_a_ledger_losing_every_race_gives_up_with_a_storage_error(
    store: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    b = GapLedger.over(_twin(store))
    _interfere_on_read(monkeypatch, store, MAX_RACES, lambda n: b.add_found([_gap(100 + n)]))
    appends = _spy_appends(monkeypatch, store)
    with pytest.raises(StorageError, match=f"lost the append race .* {MAX_RACES} times") as err:
        GapLedger.over(store).add_found([_gap(1)])
    assert "\n" not in str(err.value)
    assert appends == [(i, "lost") for i in range(MAX_RACES)]
    assert [g.id_from for g in b.history()] == [100 + n for n in range(1, MAX_RACES + 1)]


def test_a_corrupt_or_missing_ledger_entry_is_an_integrity_error_naming_it(
    store: S3Store,
) -> None:
    ledger = GapLedger.over(store)
    ledger.add_found([_gap(1), _gap(2)])
    key = chain_entry_key(LEDGER_CHAIN, 2)
    store.client.put_object(
        Bucket=store.bucket, Key=f"{store.prefix}/{key}", Body=b'{"gap_id":"x"}\n'
    )
    with pytest.raises(IntegrityError, match=f"{store.url(key)}: "):
        ledger.rows()
    with pytest.raises(IntegrityError):  # and nothing is appended after it
        ledger.add_found([_gap(3)])
    store.client.delete_object(Bucket=store.bucket, Key=f"{store.prefix}/{key}")
    hole = chain_entry_key(LEDGER_CHAIN, 4)
    store.client.put_object(
        Bucket=store.bucket, Key=f"{store.prefix}/{hole}", Body=_chain_bytes(store)[:10]
    )
    with pytest.raises(IntegrityError, match="position 2 is missing"):
        ledger.current()


# -- quarantine --------------------------------------------------------------------------


def _quarantine(log: Any, n: int, *, venue: str = "binance-usdm", at: int = DAY1_MS) -> None:
    for i in range(n):
        log.quarantine.add(
            venue=venue,
            payload=b"\xffnot json %d" % i,
            reason="not_json",
            received_ms=at + i,
            detail="expected a JSON object",
            stream_id=SID,
            origin="ws:1",
        )


def _local_lines(state: Path, venue: str, day: str) -> list[bytes]:
    return (state / "quarantine" / venue / f"{day}.jsonl").read_bytes().splitlines(keepends=True)


def test_quarantine_is_kept_locally_and_published_one_object_per_record(
    store: S3Store, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    with open_log(store, CFG, state_dir=state) as log:
        _quarantine(log, 2)
        _quarantine(log, 1, venue="okx-swap", at=DAY2_MS)
        assert store.list("quarantine") == []  # published on flush, not on add
        log.commit_all()
        assert log.quarantine.pending == 0
        _quarantine(log, 1)  # the same day file again: line 3
    writer = writer_id(state)
    assert len(writer) == 16 and writer == writer_id(state / "x" / "..")
    day1 = _local_lines(state, "binance-usdm", "2024-08-08")
    day2 = _local_lines(state, "okx-swap", "2024-08-09")
    expected = {
        record_key("binance-usdm", "2024-08-08", writer, n): line for n, line in enumerate(day1, 1)
    } | {record_key("okx-swap", "2024-08-09", writer, 1): day2[0]}
    assert store.list("quarantine") == sorted(expected)
    assert {key: store.get(key) for key in expected} == expected
    assert f"quarantine/binance-usdm/2024-08-08/{writer}-00000003.json" in expected

    local = list(read_quarantine(state / "quarantine"))
    assert len(local) == 4
    assert list(read_store_quarantine(_twin(store))) == local
    with open_log(store, readonly=True) as reader:  # another machine: no state dir
        assert list(quarantine_records(reader)) == local
    with open_log(tmp_path / "data", CFG) as plain:  # a local log reads its own files
        _quarantine(plain, 1)
    assert [r.venue for r in quarantine_records(open_log(tmp_path / "data", readonly=True))] == [
        "binance-usdm"
    ]


def test_re_publishing_quarantine_is_idempotent_and_puts_only_what_is_missing(
    store: S3Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    with open_log(store, CFG, state_dir=state) as log:
        _quarantine(log, 3)
    keys = store.list("quarantine")
    assert len(keys) == 3
    puts: list[str] = []
    real = store.put_new

    def spy(key: str, data: bytes) -> bool:
        puts.append(key)
        return real(key, data)

    monkeypatch.setattr(store, "put_new", spy)
    log = open_log(store, CFG, state_dir=state)  # the open's publish step finds nothing
    assert puts == []
    assert log.quarantine.publish_pending() == 0
    store.client.delete_object(Bucket=store.bucket, Key=f"{store.prefix}/{keys[1]}")
    assert log.quarantine.publish_pending() == 1
    assert puts == [keys[1]]
    assert real(keys[0], store.get(keys[0])) is False  # the same bytes again: a no-op
    log.close()
    assert store.list("quarantine") == keys
    assert len(list(read_store_quarantine(store))) == 3


def test_a_store_failure_at_flush_keeps_the_records_pending_then_publishes_them(
    store: S3Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = store.put_new
    failures: list[str] = []

    def fails_once(key: str, data: bytes) -> bool:
        if not failures:
            failures.append(key)
            raise StorageError(f"{store.url(key)}: put failed: S3 503 (injected)")
        return real(key, data)

    state = tmp_path / "state"
    log = open_log(store, CFG, state_dir=state)
    monkeypatch.setattr(store, "put_new", fails_once)
    _quarantine(log, 2)
    with pytest.raises(StorageError, match="injected"):
        log.quarantine.flush()
    assert len(_local_lines(state, "binance-usdm", "2024-08-08")) == 2  # durable locally
    assert log.quarantine.pending == 1
    assert [k for k in store.list("quarantine") if k in failures] == []
    log.quarantine.flush()  # the caller retries: only the leftover is put
    assert log.quarantine.pending == 0
    log.close()
    assert list(read_store_quarantine(store)) == list(read_quarantine(state / "quarantine"))


def test_records_a_failed_flush_left_behind_are_published_when_the_log_next_opens(
    store: S3Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(key: str, data: bytes) -> bool:
        raise StorageError(f"{store.url(key)}: put failed: cannot reach the endpoint")

    state = tmp_path / "state"
    log = open_log(store, CFG, state_dir=state)
    with monkeypatch.context() as m:
        m.setattr(store, "put_new", down)
        _quarantine(log, 3)
        with pytest.raises(StorageError, match="cannot reach"):
            log.quarantine.flush()
        assert log.quarantine.pending == 3
        log._release_lock()  # the process dies here: nothing more is flushed or closed
    assert store.list("quarantine") == []
    # Recovery's torn-journal evidence lives in quarantine/torn/: it stays local.
    torn = state / "quarantine" / "torn"
    torn.mkdir()
    (torn / "binance-usdm.trade.BTC-USDT-PERP.journal.0123456789abcdef.bin").write_bytes(b"x")

    with open_log(store, CFG, state_dir=state) as again:
        assert again.quarantine.pending == 0
    local = list(read_quarantine(state / "quarantine"))
    assert len(local) == 3
    assert list(read_store_quarantine(store)) == local
    assert all("/torn/" not in k for k in store.list("quarantine"))


def test_the_store_reader_skips_torn_evidence_and_refuses_foreign_or_corrupt_objects(
    store: S3Store, tmp_path: Path
) -> None:
    with open_log(store, CFG, state_dir=tmp_path / "state") as log:
        _quarantine(log, 1)
    [key] = store.list("quarantine")
    store.put_new("quarantine/torn/binance-usdm.trade.X.journal.00.bin", b"\x00torn bytes")
    assert [r.reason for r in read_store_quarantine(store)] == ["not_json"]

    stray = "quarantine/binance-usdm/notes.txt"
    store.put_new(stray, b"hello\n")
    with pytest.raises(IntegrityError, match=f"{store.url(stray)}: not a quarantine record"):
        list(read_store_quarantine(store))
    store.client.delete_object(Bucket=store.bucket, Key=f"{store.prefix}/{stray}")

    bad = key.replace("-00000001.json", "-00000002.json")
    store.put_new(bad, b'{"venue":"binance-usdm"}\n')
    with pytest.raises(IntegrityError, match=f"{store.url(bad)}: bad quarantine record"):
        list(read_store_quarantine(store))


# -- imports registry --------------------------------------------------------------------


def _import_record(sha: str, file: str = "capture.jsonl") -> dict[str, object]:
    return {"file": file, "file_sha256": sha, "messages": 3, "venue": "binance-usdm"}


def test_imports_on_s3_are_one_object_each_and_found_by_any_reader(
    store: S3Store, tmp_path: Path
) -> None:
    sha, other = "ab" * 32, "cd" * 32
    state = tmp_path / "state"
    with open_log(store, CFG, state_dir=state) as log:
        assert log.find_import(sha) is None
        log.record_import(_import_record(sha))
        assert log.find_import(sha) == _import_record(sha)
        assert log.find_import(other) is None
        log.record_import(_import_record(sha))  # the same record again: accepted
        with pytest.raises(ObjectExists):  # a different one for the same bytes: refused
            log.record_import(_import_record(sha, "renamed.jsonl"))
        with pytest.raises(ValidationError, match="expected 64 hex digits"):
            log.record_import({"file": "x"})
    assert not (state / "imports.jsonl").exists()
    assert store.list("imports") == [f"imports/{sha}.json"]
    with open_log(store, readonly=True) as reader:
        assert reader.find_import(sha) == _import_record(sha)

    # The object's body is the line a local log appends to imports.jsonl.
    with open_log(tmp_path / "data", CFG) as local:
        local.record_import(_import_record(sha))
        assert local.find_import(sha) == _import_record(sha)
    line = (tmp_path / "data" / "imports.jsonl").read_bytes()
    assert (
        store.get(f"imports/{sha}.json")
        == line
        == json.dumps(_import_record(sha), sort_keys=True, separators=(",", ":")).encode() + b"\n"
    )
