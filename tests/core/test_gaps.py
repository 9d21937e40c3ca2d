"""Gap detection is a pure function of the facts: ids, times and control events."""

from __future__ import annotations

import pytest

from buff_dataplane.core.bars import Bar, apply_gap_facts, empty_bar
from buff_dataplane.core.errors import ValidationError
from buff_dataplane.core.gaps import ControlFact, Gap, detect, down_windows, gap_id, id_jumps

SID = "binance-usdm/trade/BTC-USDT-PERP"


def test_id_jumps_name_the_missing_ids_and_the_times_around_them() -> None:
    jumps = id_jumps([1, 2, 5, 6, 8], [100, 110, 150, 160, 170])
    assert [(j.id_from, j.id_to, j.ts_before, j.ts_after) for j in jumps] == [
        (3, 4, 110, 150),
        (7, 7, 160, 170),
    ]


def test_id_jumps_refuse_unsorted_ids() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        id_jumps([1, 3, 2], [1, 2, 3])


def test_down_windows_from_disconnects_stops_and_a_crash() -> None:
    facts = [
        ControlFact(0, "capture_started"),
        ControlFact(1, "connected"),
        ControlFact(2, "subscribed"),
        ControlFact(10, "disconnected"),
        ControlFact(11, "connecting"),
        ControlFact(12, "connected"),
        ControlFact(13, "subscribed"),
        ControlFact(20, "capture_stopped"),
        ControlFact(30, "capture_started"),
        ControlFact(31, "connected"),
        # killed here: no capture_stopped
        ControlFact(50, "capture_started"),
    ]
    assert down_windows(facts) == [(10, 12, "downtime"), (20, 30, "restart"), (31, 50, "restart")]


def test_detect_labels_id_jumps_by_what_happened_inside_them() -> None:
    ids = [1, 2, 3, 7, 8, 12, 13, 20]
    ts = [100, 200, 300, 700, 800, 1200, 1300, 2000]
    controls = [
        ControlFact(350, "disconnected"),
        ControlFact(400, "subscribed"),
        ControlFact(900, "capture_stopped"),
        ControlFact(1000, "capture_started"),
        ControlFact(1500, "overflow"),
    ]
    gaps = detect(SID, ids, ts, controls, ids_contiguous=True, detected_at_ms=5)
    assert [(g.kind, g.id_from, g.id_to, g.ts_from_ms, g.ts_to_ms) for g in gaps] == [
        ("downtime", 4, 6, 300, 700),
        ("restart", 9, 11, 800, 1200),
        ("overflow", 14, 19, 1300, 2000),
    ]
    assert all(g.status == "OPEN" and g.detected_at_ms == 5 for g in gaps)


def test_detect_without_contiguous_ids_uses_the_down_windows() -> None:
    controls = [ControlFact(350, "disconnected"), ControlFact(400, "subscribed")]
    gaps = detect(SID, [5, 90], [100, 900], controls, ids_contiguous=False, detected_at_ms=0)
    assert [(g.kind, g.id_from, g.id_to, g.ts_from_ms, g.ts_to_ms) for g in gaps] == [
        ("downtime", None, None, 350, 400)
    ]


def test_a_contiguous_stream_across_a_disconnect_has_no_gap() -> None:
    controls = [ControlFact(150, "disconnected"), ControlFact(160, "subscribed")]
    assert (
        detect(SID, [1, 2, 3], [100, 200, 300], controls, ids_contiguous=True, detected_at_ms=0)
        == []
    )


def test_edges_of_a_requested_range_are_gaps_named_by_the_range() -> None:
    gaps = detect(
        SID,
        [10, 11],
        [1_500, 1_600],
        [],
        ids_contiguous=True,
        detected_at_ms=0,
        range_ms=(1_000, 2_000),
    )
    assert [(g.kind, g.id_from, g.id_to, g.ts_from_ms, g.ts_to_ms) for g in gaps] == [
        ("edge", None, 9, 1_000, 1_500),
        ("edge", 12, None, 1_600, 1_999),
    ]
    # The same range over more data (after a back-fill) names the same edges.
    again = detect(
        SID,
        [10, 11, 12],
        [1_500, 1_600, 1_700],
        [],
        ids_contiguous=True,
        detected_at_ms=9,
        range_ms=(1_000, 2_000),
    )
    assert {g.gap_id for g in again} == {g.gap_id for g in gaps}


def test_an_empty_stream_in_a_range_is_one_edge_gap() -> None:
    gaps = detect(SID, [], [], [], ids_contiguous=True, detected_at_ms=0, range_ms=(0, 60_000))
    assert [(g.kind, g.ts_from_ms, g.ts_to_ms) for g in gaps] == [("edge", 0, 59_999)]


def test_detect_refuses_an_inverted_range() -> None:
    with pytest.raises(ValidationError, match="inverted"):
        detect(SID, [], [], [], ids_contiguous=True, detected_at_ms=0, range_ms=(5, 5))


def test_the_same_hole_has_the_same_id_and_another_hole_another() -> None:
    a = detect(SID, [1, 5], [10, 50], [], ids_contiguous=True, detected_at_ms=1)
    b = detect(
        SID,
        [1, 5],
        [10, 50],
        [ControlFact(20, "disconnected")],
        ids_contiguous=True,
        detected_at_ms=2,
    )
    assert a[0].gap_id == b[0].gap_id == gap_id(SID, 2, 4, 10, 50)
    assert (
        detect(SID, [1, 6], [10, 50], [], ids_contiguous=True, detected_at_ms=1)[0].gap_id
        != a[0].gap_id
    )


def test_gap_rows_refuse_unknown_kinds_statuses_and_inverted_ranges() -> None:
    base = dict(
        gap_id="x", stream_id=SID, id_from=1, id_to=2, ts_from_ms=1, ts_to_ms=2, detected_at_ms=0
    )
    with pytest.raises(ValidationError, match="kind"):
        Gap(kind="hole", **base)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="status"):
        Gap(kind="trade_id", status="FIXED", **base)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="inverted"):
        Gap(kind="trade_id", **{**base, "ts_from_ms": 3})  # type: ignore[arg-type]


def _bars() -> list[Bar]:
    return [
        empty_bar("binance-usdm", "BTC-USDT-PERP", "1m", t, 60_000, status, "1")
        for t, status in (
            (0, "COMPLETE"),
            (60_000, "EMPTY"),
            (120_000, "COMPLETE"),
            (180_000, "GAP_UNRESOLVED"),
        )
    ]


def test_ledger_facts_mark_the_buckets_they_touch() -> None:
    out = apply_gap_facts(_bars(), unresolved=[(59_999, 60_000)], conflicts=[(125_000, 125_000)])
    assert [b.status for b in out] == [
        "GAP_UNRESOLVED",
        "GAP_UNRESOLVED",
        "CONFLICT",
        "GAP_UNRESOLVED",
    ]
    assert apply_gap_facts(_bars(), [], []) == _bars()
