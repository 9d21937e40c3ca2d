"""Shared helpers of the benchmarks: machine description, timing, result files."""

from __future__ import annotations

import json
import os
import platform
import random
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
WORK = Path(__file__).resolve().parent / "work"


def machine() -> dict[str, object]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import pyarrow

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "pyarrow": pyarrow.__version__,
        "platform": platform.platform(),
    }


def median_of(runs: int, fn: Callable[[], float]) -> tuple[float, list[float]]:
    samples = [fn() for _ in range(runs)]
    return statistics.median(samples), samples


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_result(name: str, result: dict[str, object]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    result = {"machine": machine(), "measured_at": time.strftime("%Y-%m-%d"), **result}
    path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return path


def agg_trade_payloads(n: int, seed: int = 7, t0: int = 1_723_161_256_000) -> list[bytes]:
    """Binance USD-M aggTrade messages (combined-stream form, ~150-170 bytes), a random walk."""
    rng = random.Random(seed)
    price = 6_180_030  # cents
    agg_id, trade_id, ts = 2_353_245_000, 5_266_583_935, t0
    out = []
    for _ in range(n):
        price += rng.choice((-20, -10, 0, 0, 10, 20))
        ts += rng.choice((0, 0, 1, 3, 17))
        count = rng.choice((1, 1, 1, 2, 5))
        qty = rng.choice(("0.001", "0.002", "0.006", "0.010", "0.125", "1.500"))
        taker_sold = "true" if rng.random() < 0.5 else "false"
        last_id = trade_id + count - 1
        out.append(
            (
                f'{{"stream":"btcusdt@aggTrade","data":{{"e":"aggTrade","E":{ts + 2},'
                f'"a":{agg_id},"s":"BTCUSDT","p":"{price // 100}.{price % 100:02d}","q":"{qty}",'
                f'"f":{trade_id},"l":{last_id},"T":{ts},"m":{taker_sold}}}}}'
            ).encode()
        )
        agg_id += 1
        trade_id += count
    return out
