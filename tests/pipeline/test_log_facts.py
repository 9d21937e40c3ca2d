"""Facts read back from the log: the last trade id on restart, gaps found by a scan."""

from __future__ import annotations

import json

from buff_dataplane.core.config import LogConfig
from buff_dataplane.pipeline.log_facts import last_trade, scan_gaps
from buff_dataplane.sim.binance_usdm import agg_trade_message, rest_agg_trade_item
from buff_dataplane.sim.tape import TapeSpec, generate
from buff_dataplane.storage.log import open_log

SID = "binance-usdm/trade/BTC-USDT-PERP"
CONTROL = "binance-usdm/control/BTC-USDT-PERP"
T0 = 1_723_161_600_000


def _tape(n: int):
    return generate(TapeSpec("BTCUSDT", T0, 600_000, rate_per_s=20.0))[:n]


def _control(w, event: str, ts: int) -> None:
    body = json.dumps({"event": event, "ts_ms": ts}, sort_keys=True).encode()
    w.append(body, None, ts)


def test_last_trade_skips_back_filled_rows_appended_after_live_ones(tmp_path):
    tape = _tape(400)
    with open_log(tmp_path, LogConfig(fsync=False, segment_max_events=100)) as log:
        w = log.writer(SID)
        live = tape[:150] + tape[250:]  # three full segments
        w.append_batch(
            [agg_trade_message(t) for t in live],
            [t.ts_ms for t in live],
            [t.ts_ms + 5 for t in live],
        )
        hole = tape[150:250]  # repaired later: a fourth segment of older ids only
        w.append_batch(
            [rest_agg_trade_item(t) for t in hole],
            [t.ts_ms for t in hole],
            [T0 + 900_000] * len(hole),
            source="rest_backfill",
        )
    log = open_log(tmp_path, readonly=True)
    from buff_dataplane.core.ids import StreamId

    assert len(log.manifest(StreamId.parse(SID))) == 4
    assert last_trade(log, StreamId.parse(SID)) == (tape[-1].agg_id, tape[-1].ts_ms)


def test_a_scan_labels_each_hole_by_the_control_events_around_it(tmp_path):
    from buff_dataplane.core.ids import StreamId

    tape = _tape(400)
    kept = tape[:100] + tape[120:250] + tape[260:]
    with open_log(tmp_path, LogConfig(fsync=False)) as log:
        c = log.writer(CONTROL)
        _control(c, "capture_started", T0)
        _control(c, "disconnected", tape[100].ts_ms)
        _control(c, "subscribed", tape[119].ts_ms + 1)
        w = log.writer(SID)
        w.append_batch(
            [agg_trade_message(t) for t in kept],
            [t.ts_ms for t in kept],
            [t.ts_ms + 5 for t in kept],
        )
    log = open_log(tmp_path, readonly=True)
    gaps = scan_gaps(log, StreamId.parse(SID), detected_at_ms=1)
    assert [(g.kind, g.id_from, g.id_to) for g in gaps] == [
        ("downtime", tape[100].agg_id, tape[119].agg_id),
        ("trade_id", tape[250].agg_id, tape[259].agg_id),
    ]


def test_a_downtime_window_opens_at_the_connection_s_last_message_not_its_notice(tmp_path):
    from buff_dataplane.core.gaps import ControlFact
    from buff_dataplane.pipeline.log_facts import controls

    with open_log(tmp_path, LogConfig(fsync=False)) as log:
        w = log.writer(CONTROL)
        # Noticed 30 s after the last frame (a silence timeout); the loss began at the frame.
        body = {"event": "disconnected", "ts_ms": T0 + 30_000, "last_message_ms": T0}
        w.append(json.dumps(body, sort_keys=True).encode(), None, T0 + 30_000)
        body = {"event": "disconnected", "ts_ms": T0 + 40_000, "last_message_ms": None}
        w.append(json.dumps(body, sort_keys=True).encode(), None, T0 + 40_000)
    facts = controls(open_log(tmp_path, readonly=True), "binance-usdm", "BTC-USDT-PERP")
    assert facts == [ControlFact(T0, "disconnected"), ControlFact(T0 + 40_000, "disconnected")]
