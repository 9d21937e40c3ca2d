"""The gap ledger: append-only states, latest wins, transitions checked, torn tails fenced."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from buff_dataplane.core.errors import IntegrityError
from buff_dataplane.core.gaps import Gap, new_gap
from buff_dataplane.storage.gap_ledger import GapLedger, ledger_path

SID = "binance-usdm/trade/BTC-USDT-PERP"


def _gap(id_from: int = 5) -> Gap:
    return new_gap(
        SID,
        "trade_id",
        id_from=id_from,
        id_to=id_from + 2,
        ts_from_ms=1_000,
        ts_to_ms=2_000,
        detected_at_ms=10,
    )


def test_states_append_and_the_latest_wins(tmp_path: Path) -> None:
    ledger = GapLedger(tmp_path)
    gap = _gap()
    assert ledger.add_found([gap]) == [gap]
    assert ledger.add_found([gap]) == []  # a hole found twice is one row
    done = msgspec.structs.replace(gap, status="BACKFILLED", attempts=1, filled=3, updated_at_ms=20)
    ledger.record([done])
    assert ledger.rows() == [done]
    assert ledger.rows(status="OPEN") == []
    assert [g.status for g in ledger.history()] == ["OPEN", "BACKFILLED"]
    assert ledger_path(tmp_path).read_bytes().count(b"\n") == 2


def test_unchanged_states_are_not_written_again(tmp_path: Path) -> None:
    ledger = GapLedger(tmp_path)
    gap = _gap()
    ledger.record([gap])
    ledger.record([msgspec.structs.replace(gap, updated_at_ms=99)])
    assert len(ledger.history()) == 1


def test_a_backfilled_gap_cannot_be_reopened(tmp_path: Path) -> None:
    ledger = GapLedger(tmp_path)
    gap = _gap()
    ledger.record([msgspec.structs.replace(gap, status="BACKFILLED")])
    with pytest.raises(IntegrityError, match="BACKFILLED -> OPEN"):
        ledger.record([gap])
    assert len(ledger.history()) == 1


def test_a_torn_last_line_is_skipped_and_fenced_off(tmp_path: Path) -> None:
    ledger = GapLedger(tmp_path)
    ledger.record([_gap(5)])
    with ledger_path(tmp_path).open("ab") as fh:
        fh.write(b'{"gap_id":"torn","stre')
    assert [g.id_from for g in ledger.rows()] == [5]
    assert ledger.torn == 1
    ledger.record([_gap(50)])
    assert sorted(g.id_from or 0 for g in ledger.rows()) == [5, 50]
    # The fragment stays as evidence, fenced; a corrupt line elsewhere is a fault.
    assert GapLedger(tmp_path).rows() == ledger.rows()
    data = ledger_path(tmp_path).read_bytes()
    ledger_path(tmp_path).write_bytes(data.replace(b'"status":"OPEN"', b'"status":"OP', 1))
    with pytest.raises(IntegrityError, match="line 1"):
        GapLedger(tmp_path).rows()
