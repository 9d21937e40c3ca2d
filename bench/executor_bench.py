"""Executors: buff canonicalize (1m) on one 10M-event log split over four symbols, run by
the serial, process (1 and 2 workers) and dask (a 2-worker local cluster) executors.

A partition is a trade stream, so the log holds four symbols of 2.5M aggTrades each (the
simulated tape of bars_bench per symbol). Each run is the CLI in a fresh process, bars
removed before it; median of 3. The machine has 2 cores: a second worker competes with
DuckDB's own threads, and the dask figure includes starting its local cluster.
"""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path

from bench.bars_bench import BATCH, _chunks, cli
from bench.common import WORK, write_result
from buff_dataplane.core.config import LogConfig
from buff_dataplane.sim.binance_usdm import agg_trade_message
from buff_dataplane.storage.log import open_log

SYMBOLS = {"BTCUSDT": "BTC-USDT-PERP", "ETHUSDT": "ETH-USDT-PERP",
           "SOLUSDT": "SOL-USDT-PERP", "XRPUSDT": "XRP-USDT-PERP"}  # fmt: skip
LAYOUT = "v1"
RUNS: list[tuple[str, list[str]]] = [
    ("serial", ["--executor", "serial"]),
    ("process, 1 worker", ["--executor", "process", "--workers", "1"]),
    ("process, 2 workers", ["--executor", "process", "--workers", "2"]),
    ("process, 2 workers, DuckDB 1 thread each", ["--executor", "process", "--workers", "2",
                                                   "--threads", "1"]),
    ("dask local cluster, 2 workers", ["--executor", "dask", "--workers", "2"]),
]  # fmt: skip


def ensure_log(events: int) -> Path:
    root = WORK / f"executors-{events}-{LAYOUT}"
    if (root / "READY").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    per = events // len(SYMBOLS)
    with open_log(root, LogConfig(fsync=False)) as log:
        for seed, (venue_symbol, symbol) in enumerate(sorted(SYMBOLS.items()), 1):
            writer = log.writer(f"binance-usdm/trade/{symbol}")
            for trades in _chunks(per, venue_symbol, seed * 100):
                for k in range(0, len(trades), BATCH):
                    part = trades[k : k + BATCH]
                    writer.append_batch(
                        [agg_trade_message(t) for t in part],
                        [t.ts_ms for t in part],
                        [t.ts_ms + 3 for t in part],
                    )
    (root / "READY").write_text(f"{events}\n")
    return root


def main(events: int = 10_000_000, runs: int = 3) -> None:
    started = time.time()
    root = ensure_log(events)
    rows = []
    for name, argv in RUNS:
        seconds = []
        for _ in range(runs):
            shutil.rmtree(root / "bars", ignore_errors=True)
            seconds.append(cli(root, "canonicalize", "--timeframes", "1m", *argv)["seconds"])
        median = statistics.median(seconds)
        rows.append(
            {
                "executor": name,
                "argv": argv,
                "seconds_median": round(median, 2),
                "seconds": [round(x, 2) for x in seconds],
                "events_per_s": round(events / median),
            }
        )
    base = rows[0]["seconds_median"]
    for row in rows:
        row["speedup_vs_serial"] = round(base / row["seconds_median"], 2)  # type: ignore[operator]
    path = write_result(
        "executors",
        {
            "events": events,
            "partitions": len(SYMBOLS),
            "method": "buff canonicalize --timeframes 1m, CLI in a fresh process per run, "
            "bars removed before each, median of 3; SQL engine",
            "runs": rows,
        },
    )
    print(f"executors bench ({time.time() - started:.0f}s) -> {path}")
    for row in rows:
        print(f"  {row['executor']}: {row['events_per_s']:,} events/s "
              f"({row['seconds_median']} s, x{row['speedup_vs_serial']})")  # fmt: skip


if __name__ == "__main__":
    main()
