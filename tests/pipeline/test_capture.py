"""buff capture against the simulator: real sockets on loopback, one test per fault."""

import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from buff_dataplane.cli import main
from buff_dataplane.core.errors import FeedError
from buff_dataplane.pipeline.capture import CaptureConfig
from buff_dataplane.storage.verify import verify_log

from .capture_helpers import (
    control_events,
    downtime_windows,
    logged_trades,
    quarantined,
    run_capture,
    sim_config,
)


def _exactly_once_or_in_downtime(data, sim):
    trades = logged_trades(data)
    ids = [t.trade_id for t in trades]
    counts = Counter(ids)
    assert max(counts.values()) == 1, "a trade is in the log twice"
    # Frames still in flight when the capture closed its socket are not received: only
    # trades up to the last one logged are owed.
    sent = {i for i in sim.sent_ids["BTCUSDT"] if i <= max(ids)}
    assert sent <= set(ids), "a trade the simulator sent is missing"
    # Tape trades inside the capture's span that were never received fall in a downtime.
    windows = downtime_windows(control_events(data))
    lo, hi = min(ids), max(ids)
    for t in sim.tapes["BTCUSDT"]:
        if lo <= t.agg_id <= hi and t.agg_id not in counts:
            assert any(a - 50 <= t.ts_ms <= b + 50 for a, b in windows), t.agg_id
    return trades, windows


def test_a_clean_capture_records_every_trade_once(tmp_path):
    sim, capture, _stats = run_capture(
        tmp_path / "d", sim_config(), channels=("trade", "book_ticker", "mark_price")
    )
    trades, windows = _exactly_once_or_in_downtime(tmp_path / "d", sim)
    assert len(trades) > 200 and windows == []
    kinds = [e["event"] for e in control_events(tmp_path / "d")]
    assert kinds[0] == "capture_started" and kinds[-1] == "capture_stopped"
    assert kinds.count("subscribed") == 2  # /market and /public connections
    status = capture.status()
    assert status["streams"]["binance-usdm/trade/BTC-USDT-PERP"]["events"] == len(trades)
    assert "binance-usdm/book_ticker/BTC-USDT-PERP" in status["streams"]
    assert verify_log(tmp_path / "d").ok


def test_an_abnormal_close_reconnects_and_the_gap_is_a_recorded_downtime(tmp_path):
    sim, _, stats = run_capture(tmp_path / "d", sim_config("close:1006@100"))
    _, windows = _exactly_once_or_in_downtime(tmp_path / "d", sim)
    assert stats.reconnects == 1 and len(windows) == 1
    [down] = [e for e in control_events(tmp_path / "d") if e["event"] == "disconnected"]
    assert (down["code"], down["category"]) == (1006, "normal")  # no close frame: abnormal


def test_a_malformed_frame_is_quarantined_and_capture_goes_on(tmp_path):
    sim, _, _stats = run_capture(tmp_path / "d", sim_config("malformed@20"))
    [record] = quarantined(tmp_path / "d")
    assert record.reason == "not_json" and record.origin.startswith("ws:market#0")
    _exactly_once_or_in_downtime(tmp_path / "d", sim)
    assert len(logged_trades(tmp_path / "d")) > 100


def test_a_conflicting_duplicate_is_quarantined_and_the_stream_flagged(tmp_path):
    sim, capture, stats = run_capture(tmp_path / "d", sim_config("conflict@30"))
    [record] = quarantined(tmp_path / "d")
    assert record.reason == "duplicate_conflict"
    assert capture.flagged == {"binance-usdm/trade/BTC-USDT-PERP"}
    assert stats.conflicts == 1
    _exactly_once_or_in_downtime(tmp_path / "d", sim)


def test_resent_messages_after_reconnect_are_counted_and_skipped(tmp_path):
    sim, _, stats = run_capture(tmp_path / "d", sim_config("close:1000@80,resend:30"))
    assert stats.duplicates == 30
    _exactly_once_or_in_downtime(tmp_path / "d", sim)


def test_late_delivery_is_recorded_in_arrival_order(tmp_path):
    _sim, _, _ = run_capture(tmp_path / "d", sim_config("late:3@40"))
    ids = [t.trade_id for t in logged_trades(tmp_path / "d")]
    assert ids != sorted(ids) and sorted(ids) == list(range(ids[0], ids[0] + len(ids)))


def test_a_silent_half_open_socket_is_replaced(tmp_path):
    config = CaptureConfig(silence_timeout_s=1)
    sim, _, stats = run_capture(
        tmp_path / "d", sim_config("silence@50"), duration=3.5, config=config
    )
    downs = [e for e in control_events(tmp_path / "d") if e["event"] == "disconnected"]
    assert downs and downs[0]["code"] == 4000 and "no message" in downs[0]["reason"]
    assert stats.reconnects >= 1
    _exactly_once_or_in_downtime(tmp_path / "d", sim)


def test_auth_failures_stop_after_the_attempt_cap(tmp_path):
    with pytest.raises(FeedError, match="auth failure 3 times"):
        run_capture(tmp_path / "d", sim_config("close:4401@5*"), duration=30)
    downs = [e for e in control_events(tmp_path / "d") if e["event"] == "disconnected"]
    assert [d["category"] for d in downs] == ["auth"] * 3
    assert [d["attempt"] for d in downs] == [1, 2, 3]


def test_sigterm_during_a_burst_exits_0_quickly_and_leaves_a_clean_log(tmp_path):
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "buff_dataplane",
            "sim",
            "--port",
            "0",
            "--rate",
            "2000",
            "--duration",
            "30",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        import json

        urls = json.loads(sim.stdout.readline())
        data = tmp_path / "d"
        cap = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "buff_dataplane",
                "capture",
                "--venue",
                "binance-usdm",
                "--symbols",
                "BTC-USDT-PERP",
                "--data",
                str(data),
                "--endpoint",
                urls["ws"],
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(2.5)
        cap.send_signal(signal.SIGTERM)
        started = time.monotonic()
        out, errs = cap.communicate(timeout=10)
        assert cap.returncode == 0, errs
        assert time.monotonic() - started < 5
        assert "messages=" in out
        assert verify_log(data).ok
        assert len(logged_trades(data)) > 1000
    finally:
        sim.send_signal(signal.SIGINT)
        sim.wait(timeout=10)


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["--venue", "nasdaq", "--symbols", "BTC-USD"], 2, "unknown venue 'nasdaq'"),
        (["--venue", "nope!", "--symbols", "BTC-USDT-PERP"], 2, "invalid venue"),
        (["--venue", "binance-usdm", "--symbols", "btc usdt"], 2, "invalid symbol"),
        (
            ["--venue", "binance-usdm", "--symbols", "BTC-USDT-PERP", "--silence-timeout", "0"],
            2,
            "silence_timeout_s=0 is out of range",
        ),
        (
            ["--venue", "binance-usdm", "--symbols", "BTC-USDT-PERP", "--expected-silence", "x/y"],
            2,
            "invalid stream_id",
        ),
        (
            ["--venue", "binance-usdm", "--symbols", "BTC-USDT-PERP", "--channels", "depth"],
            2,
            "cannot capture channel 'depth'",
        ),
        (
            [
                "--venue",
                "binance-usdm",
                "--symbols",
                "BTC-USDT-PERP",
                "--endpoint",
                "ws://127.0.0.1:9",
                "--duration",
                "30",
                "--connect-grace",
                "1",
            ],
            4,
            "cannot reach ws://127.0.0.1:9",
        ),
    ],
)
def test_bad_input_is_refused_with_its_exit_code(tmp_path, capsys, argv, code, message):
    assert main(["capture", *argv, "--data", str(tmp_path / "d")]) == code
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_symbol_the_venue_does_not_list_is_refused(tmp_path, capsys):
    import asyncio
    import threading

    from buff_dataplane.sim.server import ExchangeSim, SimConfig

    ready, done = threading.Event(), threading.Event()
    holder = {}

    def serve():
        async def go():
            async with ExchangeSim(SimConfig(duration_s=10)) as sim:
                holder["url"] = sim.rest_url
                ready.set()
                while not done.is_set():
                    await asyncio.sleep(0.05)

        asyncio.run(go())

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        ready.wait(10)
        argv = [
            "capture",
            "--venue",
            "binance-usdm",
            "--symbols",
            "DOGE-USDT-PERP",
            "--rest-endpoint",
            holder["url"],
            "--data",
            str(tmp_path / "d"),
        ]
        assert main(argv) == 2
        assert "does not list DOGE-USDT-PERP" in capsys.readouterr().err
    finally:
        done.set()
        thread.join()


def test_a_second_capture_on_the_same_data_dir_is_locked_out(tmp_path, capsys):
    from buff_dataplane.storage.log import open_log

    holder = open_log(tmp_path / "d")
    try:
        assert (
            main(
                [
                    "capture",
                    "--venue",
                    "binance-usdm",
                    "--symbols",
                    "BTC-USDT-PERP",
                    "--data",
                    str(tmp_path / "d"),
                    "--endpoint",
                    "ws://127.0.0.1:9",
                ]
            )
            == 4
        )
        assert "is locked by pid" in capsys.readouterr().err
    finally:
        holder.close()


def test_a_planned_rotation_loses_no_trade(tmp_path):
    _sim, _, stats = run_capture(
        tmp_path / "d", sim_config(rate=200), duration=7.5, config=CaptureConfig(rotate_after_s=5)
    )
    events = control_events(tmp_path / "d")
    kinds = [e["event"] for e in events]
    assert "rotation" in kinds and "rotated" in kinds
    assert downtime_windows(events) == []
    ids = [t.trade_id for t in logged_trades(tmp_path / "d")]
    assert len(ids) == len(set(ids))
    assert sorted(ids) == list(range(min(ids), max(ids) + 1)), "a trade was lost in rotation"
    assert stats.reconnects == 0
