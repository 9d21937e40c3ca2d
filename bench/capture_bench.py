"""Capture: simulator at full speed to sealed segments (events/s, receive-to-durable
latency), and an RSS soak at a steady rate.

The simulator runs in its own process (``buff sim --pace max`` sends pre-built frames in
bursts; websockets' per-message send() alone tops out near 40k/s), the capture in
another (``buff capture``), as in production. Throughput counts the trades sealed in the
log over the capture's wall time; latency is the capture's own receive-to-durable sample
(an upper bound: measured on the committer's tick).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.common import WORK, write_result
from buff_dataplane.pipeline.capture import status_path

ROOT = Path(__file__).resolve().parents[1]
RUN = [sys.executable, "-m", "buff_dataplane"]


def _start_sim(*args: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    sim = subprocess.Popen(
        [*RUN, "sim", "--port", "0", *args], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert sim.stdout is not None
    return sim, json.loads(sim.stdout.readline())


def _capture_argv(data: Path, ws_url: str, seconds: float) -> list[str]:
    return [
        *RUN,
        "capture",
        "--venue",
        "binance-usdm",
        "--symbols",
        "BTC-USDT-PERP",
        "--data",
        str(data),
        "--endpoint",
        ws_url,
        "--duration",
        str(seconds),
        "--json",
    ]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def throughput(seconds: float = 15.0, rate: float = 50_000.0) -> dict[str, object]:
    data = WORK / "capture-throughput"
    shutil.rmtree(data, ignore_errors=True)
    sim, urls = _start_sim("--pace", "max", "--rate", str(rate), "--duration", "40")
    try:
        started = time.perf_counter()
        cap = subprocess.run(
            _capture_argv(data, urls["ws"], seconds),
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        wall = time.perf_counter() - started
    finally:
        sim.terminate()
        sim.wait(timeout=30)
    summary = json.loads(cap.stdout)
    status = json.loads(status_path(data, "binance-usdm").read_text())
    from buff_dataplane.storage.log import open_log

    log = open_log(data, readonly=True)
    events = sum(e.rows for e in log.manifest(log.stream_ids()[-1]))
    return {
        "capture_seconds": summary["seconds"],
        "wall_seconds_incl_start_and_seal": round(wall, 1),
        "trades_sealed": events,
        "events_per_s": round(events / summary["seconds"]),
        "budget_events_per_s": 100_000,
        "receive_to_durable_ms": status["receive_to_durable_ms"],
    }


def writer_stage(frames: int = 200_000) -> dict[str, object]:
    """The capture's writer alone (parse, de-duplicate, gap tracking, append_batch) on
    in-memory frames: an upper bound for the whole capture, before any socket cost."""
    import asyncio

    from bench.common import agg_trade_payloads
    from buff_dataplane.core.config import LogConfig
    from buff_dataplane.pipeline.capture import Capture
    from buff_dataplane.storage.log import open_log

    data = WORK / "capture-writer"
    shutil.rmtree(data, ignore_errors=True)
    payloads = agg_trade_payloads(frames)

    async def run() -> float:
        with open_log(data, LogConfig(fsync=False)) as log:
            capture = Capture(
                log,
                venue="binance-usdm",
                symbols=["BTC-USDT-PERP"],
                channels=["trade"],
                endpoint="ws://127.0.0.1:9",
            )
            batch = [(0, 1, p, 1_723_161_256_000) for p in payloads]
            started = time.perf_counter()
            for i in range(0, len(batch), 10_000):
                capture._write_batch(batch[i : i + 10_000])
            return time.perf_counter() - started

    seconds = asyncio.run(run())
    return {
        "frames": frames,
        "seconds": round(seconds, 2),
        "frames_per_s": round(frames / seconds),
        "us_per_frame": round(seconds / frames * 1e6, 1),
    }


def soak(minutes: float = 30.0, rate: float = 5_000.0) -> dict[str, object]:
    data = WORK / "capture-soak"
    shutil.rmtree(data, ignore_errors=True)
    sim, urls = _start_sim("--rate", str(rate), "--duration", str(minutes * 60 + 120))
    samples = []
    try:
        cap = subprocess.Popen(
            _capture_argv(data, urls["ws"], minutes * 60),
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        started = time.monotonic()
        while cap.poll() is None:
            samples.append((round(time.monotonic() - started), round(_rss_mb(cap.pid), 1)))
            time.sleep(30)
        out, _ = cap.communicate()
    finally:
        sim.terminate()
        sim.wait(timeout=30)
    rss = [r for _, r in samples if r > 0]
    return {
        "minutes": minutes,
        "rate_events_per_s": rate,
        "summary": json.loads(out),
        "rss_mb_samples": samples,
        "rss_mb_first_after_1min": next((r for t, r in samples if t >= 60), None),
        "rss_mb_max": max(rss) if rss else None,
        "budget": "flat, <= 300 MB",
    }


def main() -> None:
    result: dict[str, object] = {"throughput": throughput(), "writer_stage": writer_stage()}
    if "--soak" in sys.argv:
        result["soak"] = soak()
    path = write_result("capture", result)
    print(f"capture bench -> {path}")
    print(json.dumps(result, indent=1)[:3000])


if __name__ == "__main__":
    main()
