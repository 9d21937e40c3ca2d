"""Running a capture against the simulator in-process, and reading back what it wrote."""

from __future__ import annotations

import asyncio
import json

import httpx

from buff_dataplane.core.config import LogConfig
from buff_dataplane.feeds.binance_usdm.parse import parse
from buff_dataplane.feeds.binance_usdm.rest import BinanceUsdmRest
from buff_dataplane.feeds.rest_common import RestPolicy
from buff_dataplane.pipeline.capture import Capture, CaptureConfig
from buff_dataplane.sim.server import ExchangeSim, SimConfig
from buff_dataplane.storage.log import open_log
from buff_dataplane.storage.quarantine import read_quarantine
from buff_dataplane.storage.reader import to_table

SYMBOL = "BTC-USDT-PERP"
# Retries in milliseconds, not seconds: the simulator is on loopback.
FAST = RestPolicy(max_attempts=3, base_backoff_s=0.01, max_backoff_s=0.05, timeout_s=5.0)


def run_capture(
    data,
    sim_config,
    *,
    duration=2.0,
    config=None,
    channels=("trade",),
    symbols=(SYMBOL,),
    connect=None,
    backfill=False,
    policy=None,
):
    async def go():
        async with ExchangeSim(sim_config) as sim, httpx.AsyncClient() as client:
            log = open_log(data, LogConfig(fsync=False))
            kwargs = {"connect": connect} if connect else {}
            if backfill:
                kwargs["history"] = BinanceUsdmRest(client, sim.rest_url, policy or FAST)
            capture = Capture(
                log,
                venue="binance-usdm",
                symbols=list(symbols),
                channels=list(channels),
                endpoint=sim.ws_url,
                config=config or CaptureConfig(),
                **kwargs,
            )
            try:
                stats = await capture.run(duration_s=duration)
            finally:
                log.close()
            return sim, capture, stats

    return asyncio.run(asyncio.wait_for(go(), 60))


def logged_trades(data, symbol=SYMBOL):
    log = open_log(data, readonly=True)
    table = to_table(log, [f"binance-usdm/trade/{symbol}"])
    return [parse(p).trades[0] for p in table.column("payload_raw").to_pylist()]


def control_events(data, symbol=SYMBOL):
    log = open_log(data, readonly=True)
    table = to_table(log, [f"binance-usdm/control/{symbol}"])
    return [json.loads(p) for p in table.column("payload_raw").to_pylist()]


def quarantined(data):
    return list(read_quarantine(data / "quarantine"))


def downtime_windows(events):
    """[(from_ms, to_ms)]: from the last message before a disconnect to the next ack.

    Data stops at the last message received, not at the moment the loss is noticed (a
    silent socket is noticed a timeout later), and flows again only once the new
    connection's subscription is acknowledged.
    """
    windows, down = [], None
    for e in events:
        if e["event"] == "disconnected" and down is None:
            down = e.get("last_message_ms") or e["ts_ms"]
        elif e["event"] == "subscribed" and down is not None:
            windows.append((down, e["ts_ms"]))
            down = None
    return windows


def sim_config(faults="", rate=300.0):
    return SimConfig(rate=rate, duration_s=60, faults=faults)
