"""Coinbase heartbeats state the latest trade id: a loss at the end of a recording, which
no later trade shows as a jump, is still a gap."""

from __future__ import annotations

import json

from buff_dataplane.core.gaps import detect
from buff_dataplane.core.ids import StreamId
from buff_dataplane.pipeline.log_facts import scan_gaps, stated_ids
from tests.pipeline.test_venue_bars import T0, write

SID = "coinbase/trade/BTC-USD"


def test_a_stated_id_past_the_last_trade_is_a_gap_up_to_it():
    gaps = detect(SID, [5, 6], [T0, T0 + 10], [], ids_contiguous=True, detected_at_ms=T0,
                  stated=[(T0 + 500, 6), (T0 + 1_000, 9)])  # fmt: skip
    [gap] = gaps
    assert (gap.id_from, gap.id_to, gap.ts_from_ms, gap.ts_to_ms) == (7, 9, T0 + 10, T0 + 1_000)


def test_a_stated_id_already_logged_is_no_gap():
    assert detect(SID, [5, 6], [T0, T0], [], ids_contiguous=True, detected_at_ms=T0,
                  stated=[(T0, 6), (T0, 4)]) == []  # fmt: skip


def _match(tid: int) -> bytes:
    return json.dumps({
        "type": "match", "trade_id": tid, "maker_order_id": "a", "taker_order_id": "b",
        "side": "sell", "size": "0.5", "price": "40000.01", "product_id": "BTC-USD",
        "sequence": 100 + tid, "time": "2023-11-14T22:14:00.000000Z",
    }).encode()  # fmt: skip


def _heartbeat(last: int) -> bytes:
    return json.dumps({
        "type": "heartbeat", "sequence": 200, "last_trade_id": last, "product_id": "BTC-USD",
        "time": "2023-11-14T22:14:01.000000Z",
    }).encode()  # fmt: skip


def test_heartbeats_in_the_control_stream_are_read_as_gap_facts(tmp_path):
    from buff_dataplane.storage.log import open_log

    write(tmp_path, SID, [_match(10), _match(11)])
    ours = b'{"event":"connected","ts_ms":1700000040000,"venue":"coinbase"}'
    write(tmp_path, "coinbase/control/BTC-USD", [ours, _heartbeat(11), _heartbeat(13)])
    log = open_log(tmp_path, readonly=True)
    assert stated_ids(log, "coinbase", "BTC-USD") == [(T0 + 1_000, 11), (T0 + 1_000, 13)]
    [gap] = scan_gaps(log, StreamId.parse(SID), detected_at_ms=T0)
    assert (gap.id_from, gap.id_to) == (12, 13)
