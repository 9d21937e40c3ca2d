"""Gaps found, back-filled from the simulator's REST, or marked UNRESOLVED with the reason.

Real sockets on loopback: the simulator's WebSocket drops or cuts trades, its REST
history serves them (or fails on purpose), and the capture repairs its own holes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter

import httpx
import pytest

from buff_dataplane.feeds.binance_usdm.rest import BinanceUsdmRest
from buff_dataplane.pipeline.backfill import BackfillConfig, backfill_log
from buff_dataplane.pipeline.capture import CaptureConfig
from buff_dataplane.sim.server import ExchangeSim, SimConfig
from buff_dataplane.storage.gap_ledger import GapLedger
from buff_dataplane.storage.log import open_log
from buff_dataplane.storage.reader import to_table
from buff_dataplane.storage.verify import verify_log

from .capture_helpers import FAST, SYMBOL, logged_trades, quarantined, run_capture, sim_config

SID = f"binance-usdm/trade/{SYMBOL}"
QUICK = CaptureConfig(backfill=BackfillConfig(max_attempts=2, retry_pause_ms=10, grace_ms=200))


def _sources(data):
    table = to_table(open_log(data, readonly=True), [SID])
    return Counter(table.column("source").to_pylist())


def _every_tape_trade_once(data, sim):
    """Each tape trade from the first logged id to the last is in the log exactly once."""
    ids = [t.trade_id for t in logged_trades(data)]
    counts = Counter(ids)
    assert max(counts.values()) == 1, "a trade is in the log twice"
    tape = [t.agg_id for t in sim.tapes["BTCUSDT"] if min(ids) <= t.agg_id <= max(ids)]
    assert sorted(counts) == tape
    return ids


def test_a_dropped_stretch_is_found_and_backfilled_during_capture(tmp_path):
    data = tmp_path / "d"
    sim, capture, _ = run_capture(
        data, sim_config("drop:25@100"), config=QUICK, backfill=True, duration=3.0
    )
    _every_tape_trade_once(data, sim)
    [gap] = GapLedger(data).rows()
    assert (gap.kind, gap.status, gap.filled, gap.id_to - gap.id_from + 1) == (
        "trade_id",
        "BACKFILLED",
        25,
        25,
    )
    assert _sources(data)["rest_backfill"] == 25
    assert capture.gap_stats["backfilled_trades"] == 25
    assert verify_log(data).ok


def test_a_disconnect_gap_is_labelled_downtime_and_repaired(tmp_path):
    data = tmp_path / "d"
    sim, _, stats = run_capture(
        data, sim_config("close:1006@150"), config=QUICK, backfill=True, duration=3.0
    )
    _every_tape_trade_once(data, sim)
    assert stats.reconnects == 1
    gaps = GapLedger(data).rows()
    # Reconnecting takes a few hundred ms: trades sent meanwhile are missed, then fetched.
    assert gaps and {(g.kind, g.status) for g in gaps} == {("downtime", "BACKFILLED")}


def test_late_frames_close_a_jump_without_a_ledger_row(tmp_path):
    data = tmp_path / "d"
    sim, capture, _ = run_capture(data, sim_config("late:5@80"), config=QUICK, backfill=True)
    _every_tape_trade_once(data, sim)
    assert GapLedger(data).rows() == []
    assert capture.gap_stats["closed_by_late_frames"] == 1 and sim.rest_requests == 0


@pytest.mark.parametrize(
    ("faults", "reason"),
    [("rest5xx:100000", "server_error"), ("rest5xx:2,rest418:100000", "banned")],
)
def test_a_permanently_failing_rest_ends_unresolved_while_capture_goes_on(tmp_path, faults, reason):
    data = tmp_path / "d"
    sim, _, _ = run_capture(
        data,
        sim_config(f"drop:10@50,{faults}"),
        config=QUICK,
        backfill=True,
        duration=4.0,
    )
    [gap] = GapLedger(data).rows()
    assert (gap.status, gap.attempts) == ("UNRESOLVED", 2)
    assert gap.reason.startswith(f"{reason} after 2 attempts"), gap.reason
    # Two attempts of at most three requests each (the client's own retries).
    assert sim.rest_requests == 6
    ids = [t.trade_id for t in logged_trades(data)]
    assert max(ids) > gap.id_to + 200, "the live capture stopped recording"
    assert _sources(data)["rest_backfill"] == 0


def test_a_restart_after_a_kill_is_a_restart_gap_and_resumes_open_ones(tmp_path):
    data = tmp_path / "d"
    cfg = SimConfig(rate=300.0, duration_s=60, start_ms=None)

    async def go():
        async with ExchangeSim(cfg) as sim, httpx.AsyncClient() as client:
            from buff_dataplane.core.config import LogConfig
            from buff_dataplane.pipeline.capture import Capture

            history = BinanceUsdmRest(client, sim.rest_url, FAST)
            for _ in range(2):  # two captures, 1 s apart, as a restart after a stop
                log = open_log(data, LogConfig(fsync=False))
                capture = Capture(
                    log,
                    venue="binance-usdm",
                    symbols=[SYMBOL],
                    channels=["trade"],
                    endpoint=sim.ws_url,
                    config=QUICK,
                    history=history,
                )
                await capture.run(duration_s=1.5)
                log.close()
                await asyncio.sleep(1.0)
            return sim

    sim = asyncio.run(asyncio.wait_for(go(), 60))
    _every_tape_trade_once(data, sim)
    [gap] = GapLedger(data).rows()
    assert (gap.kind, gap.status) == ("restart", "BACKFILLED") and gap.filled > 100


def test_backfill_on_demand_is_idempotent(tmp_path):
    data = tmp_path / "d"
    sim_cfg = sim_config("drop:30@60,drop:40@200")
    sim, _, _ = run_capture(data, sim_cfg, duration=2.0)  # no back-fill while capturing
    # The capture recorded its two holes; with no REST client it left them OPEN.
    assert [g.status for g in GapLedger(data).rows()] == ["OPEN", "OPEN"]

    async def fill():
        async with (
            ExchangeSim(dataclasses.replace(sim_cfg, start_ms=sim.start_ms, faults="")) as rest,
            httpx.AsyncClient() as client,
        ):
            with open_log(data) as log:
                history = BinanceUsdmRest(client, rest.rest_url, FAST)
                first = await backfill_log(log, history, now_ms=rest.clock)
            with open_log(data) as log:
                second = await backfill_log(log, history, now_ms=rest.clock)
            return first, second

    first, second = asyncio.run(fill())
    assert [(o.gap.status, o.appended) for o in first.outcomes] == [
        ("BACKFILLED", 30),
        ("BACKFILLED", 40),
    ]
    assert first.found == [] and second.found == [] and second.outcomes == []
    _every_tape_trade_once(data, sim)
    assert verify_log(data).ok


def test_a_gap_past_retention_is_unresolved_without_a_request(tmp_path):
    data = tmp_path / "d"
    sim, _, _ = run_capture(data, sim_config("drop:10@50"), duration=1.5)

    async def fill():
        async with ExchangeSim(sim_config()) as rest, httpx.AsyncClient() as client:
            log = open_log(data)
            try:
                history = BinanceUsdmRest(client, rest.rest_url, FAST)
                later = sim.clock() + 49 * 3_600_000
                report = await backfill_log(log, history, now_ms=lambda: later)
            finally:
                log.close()
            return report, rest.rest_requests

    report, requests = asyncio.run(fill())
    [outcome] = report.outcomes
    assert outcome.gap.status == "UNRESOLVED" and outcome.gap.reason.startswith("retention")
    assert requests == 1  # the venue's clock, asked once; no history request


def test_a_ws_rest_conflict_is_quarantined_and_recorded(tmp_path):
    data = tmp_path / "d"
    # The tape starts after the capture has connected, so message N is tape trade N.
    # Trades 41..45 are dropped; the REST page from 41 also holds trade 50, which the
    # simulator's REST serves with another quantity than its WebSocket did.
    cfg = SimConfig(
        rate=300.0,
        duration_s=60,
        start_ms=int(time.time() * 1000) + 1_000,
        faults="drop:5@40,restconflict:50",
    )
    sim, capture, _ = run_capture(data, cfg, config=QUICK, backfill=True, duration=3.0)
    rows = GapLedger(data).rows()
    conflict = [g for g in rows if g.kind == "conflict"]
    assert len(conflict) == 1 and conflict[0].status == "UNRESOLVED"
    first = sim.tapes["BTCUSDT"][0].agg_id
    assert conflict[0].id_from == first + 49
    [record] = [q for q in quarantined(data) if q.reason == "backfill_conflict"]
    assert f"trade id {first + 49}" in record.detail
    assert SID in capture.flagged
    # The WS version stays; the REST version is not appended.
    ids = Counter(t.trade_id for t in logged_trades(data))
    assert ids[first + 49] == 1


def _captured_with_open_gap(tmp_path):
    data = tmp_path / "d"
    sim, _, _ = run_capture(data, sim_config("drop:10@50"), duration=1.5)
    assert [g.status for g in GapLedger(data).rows()] == ["OPEN"]
    return data, sim


def _log_state(data):
    log = open_log(data, readonly=True)
    return [(str(s), [e.segment for e in log.manifest(s)]) for s in log.stream_ids()]


def test_backfill_bad_input_is_refused_and_appends_nothing(tmp_path, capsys):
    from buff_dataplane.cli import main

    data, _ = _captured_with_open_gap(tmp_path)
    before = (_log_state(data), GapLedger(data).history())

    def answering(content_type: bytes, body: bytes):
        """A real HTTP server on loopback that is not the venue's API."""

        async def handle(reader, writer):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: "
                + content_type
                + b"\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\nConnection: close\r\n\r\n"
                + body
            )
            await writer.drain()
            writer.close()

        return handle

    serve_html = answering(b"text/html", b"<html><body>not an API</body></html>")
    shape_json = answering(b"application/json", b'{"hello":"world"}')

    def run_against(handler, *extra):
        async def go():
            server = await asyncio.start_server(handler, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            async with server:
                return await asyncio.to_thread(
                    main,
                    [
                        "backfill",
                        "--data",
                        str(data),
                        "--rest-endpoint",
                        f"http://127.0.0.1:{port}",
                        "--request-attempts",
                        "1",
                        *extra,
                    ],
                )

        return asyncio.run(go())

    cases = [
        (lambda: run_against(serve_html), 4, "HTTP 200 text/html"),
        (lambda: run_against(shape_json), 4, "not a server time"),
        (
            lambda: main(
                ["backfill", "--data", str(data), "--from", "2026-01-02", "--to", "2026-01-01"]
            ),
            2,
            "inverted range",
        ),
        (
            lambda: main(["backfill", "--data", str(data), "--symbols", "DOGE-USDT-PERP"]),
            2,
            "no trade stream for DOGE-USDT-PERP",
        ),
        (lambda: main(["backfill", "--data", str(data), "--symbols", "btc/usdt"]), 2, "symbol"),
        (
            lambda: main(["backfill", "--data", str(data), "--rest-endpoint", "ftp://x"]),
            2,
            "not an http(s) URL",
        ),
    ]
    for run, code, message in cases:
        assert run() == code, message
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert (_log_state(data), GapLedger(data).history()) == before


def test_regression_a_venue_rejection_during_capture_leaves_the_gap_unresolved(tmp_path):
    """A 400 from the venue inside a back-fill used to escape the gap worker and end the
    capture; it now settles the gap UNRESOLVED and the capture records on."""

    class Rejecting(BinanceUsdmRest):
        async def agg_trades(self, venue_symbol, **kwargs):
            from buff_dataplane.core.errors import ValidationError

            raise ValidationError(f"binance-usdm rejects {venue_symbol}: -1121 Invalid symbol.")

    async def go():
        from buff_dataplane.core.config import LogConfig
        from buff_dataplane.pipeline.capture import Capture

        async with ExchangeSim(sim_config("drop:10@50")) as sim, httpx.AsyncClient() as client:
            log = open_log(tmp_path / "d", LogConfig(fsync=False))
            capture = Capture(
                log,
                venue="binance-usdm",
                symbols=[SYMBOL],
                channels=["trade"],
                endpoint=sim.ws_url,
                config=QUICK,
                history=Rejecting(client, sim.rest_url, FAST),
            )
            stats = await capture.run(duration_s=2.0)
            log.close()
            return stats

    stats = asyncio.run(asyncio.wait_for(go(), 60))
    [gap] = GapLedger(tmp_path / "d").rows()
    assert gap.status == "UNRESOLVED" and "-1121" in gap.reason
    assert stats.messages > 400  # recorded on after the rejection
