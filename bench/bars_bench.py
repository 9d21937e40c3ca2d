"""Bars: the SQL engine's throughput (events/s) and peak RSS for 1m bars.

The log is a simulated BTCUSDT aggTrade tape (combined-stream messages, as captured)
written with ``append_batch``; it is kept under bench/work between runs, keyed by its
size. Each timed build runs in a fresh child process, so its peak RSS is the build's own
and not the generator's.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from bench.common import WORK, write_result
from buff_dataplane.core.config import LogConfig
from buff_dataplane.sim.binance_usdm import agg_trade_message
from buff_dataplane.sim.tape import TapeSpec, TapeTrade, generate
from buff_dataplane.storage.log import open_log

STREAM = "binance-usdm/trade/BTC-USDT-PERP"
T0 = 1_723_161_600_000
RATE = 2_000.0  # trades/s: a busy BTCUSDT perpetual
CHUNK = 500_000  # trades generated (and held in memory) at a time
BATCH = 10_000  # events per append_batch call
LAYOUT = "v1"  # bump when the generated log changes
BUDGET_EVENTS_PER_S = 3_000_000


def _chunks(events: int, symbol: str = "BTCUSDT", seed: int = 1) -> Iterator[list[TapeTrade]]:
    """The tape in chunks of fresh specs continuing ids, time and price."""
    agg_id, trade_id, ts, price = 2_353_245_000, 5_266_583_935, T0, 6_180_030
    left = events
    while left > 0:
        spec = TapeSpec(
            symbol=symbol,
            start_ms=ts,
            duration_ms=int(min(left, CHUNK) / RATE * 1000 * 1.2) + 1_000,
            seed=seed,
            rate_per_s=RATE,
            start_price_ticks=price,
            first_agg_id=agg_id,
            first_trade_id=trade_id,
        )
        trades = generate(spec)[: min(left, CHUNK)]
        if not trades:
            raise RuntimeError("the tape generated no trades")
        yield trades
        last = trades[-1]
        agg_id, trade_id = last.agg_id + 1, last.last_id + 1
        ts, price = last.ts_ms + 1, int(last.price.replace(".", ""))
        left -= len(trades)
        seed += 1


def ensure_log(events: int) -> Path:
    """The bench log of ``events`` trades (written once, then reused)."""
    root = WORK / f"bars-{events}-{LAYOUT}"
    if (root / "READY").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    with open_log(root, LogConfig(fsync=False)) as log:
        writer = log.writer(STREAM)
        for trades in _chunks(events):
            for k in range(0, len(trades), BATCH):
                part = trades[k : k + BATCH]
                writer.append_batch(
                    [agg_trade_message(t) for t in part],
                    [t.ts_ms for t in part],
                    [t.ts_ms + 3 for t in part],
                )
    (root / "READY").write_text(f"{events}\n")
    return root


def _child(root: str, timeframe: str, memory_limit: str) -> None:
    """One timed build, in this (fresh) process; prints seconds, bars and peak RSS."""
    import resource

    from buff_dataplane.pipeline.bars_sql import build_bars_sql

    files = sorted(Path(root).glob("log/*/*/*/segments/*.parquet"))
    start = time.perf_counter()
    out = build_bars_sql(
        files,
        venue="binance-usdm",
        symbol="BTC-USDT-PERP",
        timeframes=[timeframe],
        allowed_lateness_ms=2_000,
        apply_late=False,
        window=None,
        memory_limit=memory_limit or None,
    )
    seconds = time.perf_counter() - start
    result = out[timeframe]
    print(
        json.dumps(
            {
                "seconds": seconds,
                "bars": len(result.bars),
                "events": sum(b.event_count for b in result.bars),
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


def _timed_build(root: Path, memory_limit: str | None) -> dict[str, float]:
    cmd = [sys.executable, "-m", "bench.bars_bench", "--child", str(root), "1m"]
    cmd.append(memory_limit or "")
    done = subprocess.run(
        cmd, capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1]
    )
    out: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def run(
    events: int = 1_000_000, runs: int = 3, memory_limit: str | None = None
) -> dict[str, object]:
    """Median of ``runs`` builds of 1m bars over a log of ``events`` aggTrades."""
    root = ensure_log(events)
    samples = [_timed_build(root, memory_limit) for _ in range(runs)]
    if any(s["events"] != events for s in samples):
        raise RuntimeError(f"a build counted {samples[0]['events']} of {events} events")
    seconds = statistics.median(s["seconds"] for s in samples)
    return {
        "events": events,
        "timeframe": "1m",
        "bars": int(samples[0]["bars"]),
        "seconds_median": round(seconds, 3),
        "seconds_samples": [round(s["seconds"], 3) for s in samples],
        "events_per_s": round(events / seconds),
        "peak_rss_mb": round(max(s["peak_rss_mb"] for s in samples), 1),
        "memory_limit": memory_limit or "DuckDB default (80% of RAM)",
        "budget_events_per_s": BUDGET_EVENTS_PER_S,
    }


def cli(root: Path, *argv: str) -> dict[str, float]:
    """One buff command in a fresh process: wall seconds and the child's peak RSS."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "buff_dataplane", *argv, "--data", str(root)],
        check=True,
        capture_output=True,
    )
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"seconds": seconds, "peak_rss_mb": max(peak, before) / 1024}


def pipeline(events: int, runs: int = 3) -> dict[str, object]:
    """buff canonicalize (1m) and buff replay --verify on the same log, end to end."""
    root = ensure_log(events)
    canon, replay = [], []
    for _ in range(runs):
        shutil.rmtree(root / "bars", ignore_errors=True)
        canon.append(cli(root, "canonicalize", "--timeframes", "1m"))
        replay.append(cli(root, "replay", "--verify"))
    c = statistics.median(x["seconds"] for x in canon)
    r = statistics.median(x["seconds"] for x in replay)
    return {
        "events": events,
        "canonicalize_seconds_median": round(c, 3),
        "canonicalize_events_per_s": round(events / c),
        "replay_verify_seconds_median": round(r, 3),
        "replay_overhead_pct": round((r / c - 1) * 100, 1),
        "replay_budget_pct": 15,
        "note": "end to end CLI runs in fresh processes (interpreter start included); "
        "peak RSS is the largest child's so far",
        "peak_rss_mb": round(max(x["peak_rss_mb"] for x in canon + replay), 1),
    }


def main() -> None:
    started = time.time()
    rows = [run(1_000_000), run(10_000_000), run(10_000_000, memory_limit="1GB")]
    if "--rss20m" in sys.argv:
        rows.append(run(20_000_000, runs=1, memory_limit="1GB"))
    cli = [pipeline(10_000_000)]
    path = write_result("bars", {"bars_sql_1m": rows, "cli_pipeline": cli})
    print(f"bars bench ({time.time() - started:.0f}s) -> {path}")
    for row in [*rows, *cli]:
        print(f"  {row}")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        main()
