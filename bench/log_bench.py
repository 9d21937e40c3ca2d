"""Raw log: append (hash + journal + seal), verify-log, and bytes on disk per event."""

from __future__ import annotations

import shutil
import subprocess
import time

from bench.common import WORK, agg_trade_payloads, median_of, timed, write_result
from buff_dataplane.core.config import LogConfig
from buff_dataplane.storage.log import open_log
from buff_dataplane.storage.verify import verify_log

STREAM = "binance-usdm/trade/BTC-USDT-PERP"
BATCH = 1_000  # events per append_batch call, as a capture draining its queue


def run(events: int = 1_000_000, runs: int = 3) -> dict[str, object]:
    payloads = agg_trade_payloads(events)
    avg_payload = sum(map(len, payloads)) / events
    t0 = 1_723_161_256_000
    data = WORK / "log"

    ts_ex = [t0 + i for i in range(events)]
    ts_in = [t0 + i + 3 for i in range(events)]

    def append_once() -> float:
        shutil.rmtree(data, ignore_errors=True)

        def go() -> None:
            with open_log(data, LogConfig()) as log:
                append = log.writer(STREAM).append
                for p, tx, ti in zip(payloads, ts_ex, ts_in, strict=True):
                    append(p, tx, ti)

        return timed(go)

    def append_batch_once() -> float:
        shutil.rmtree(data, ignore_errors=True)

        def go() -> None:
            with open_log(data, LogConfig()) as log:
                append_batch = log.writer(STREAM).append_batch
                for k in range(0, events, BATCH):
                    append_batch(
                        payloads[k : k + BATCH], ts_ex[k : k + BATCH], ts_in[k : k + BATCH]
                    )

        return timed(go)

    append_s, append_samples = median_of(runs, append_once)
    batch_s, batch_samples = median_of(runs, append_batch_once)
    verify_s, verify_samples = median_of(runs, lambda: timed(lambda: verify_log(data)))
    report = verify_log(data)
    assert report.ok and report.events == events, report.to_dict()

    ndjson = WORK / "payloads.ndjson"
    ndjson.write_bytes(b"\n".join(payloads) + b"\n")
    gz = subprocess.run(["gzip", "-6", "-c", str(ndjson)], capture_output=True, check=True).stdout
    result = {
        "events": events,
        "avg_payload_bytes": round(avg_payload, 1),
        "config": LogConfig().to_dict(),
        "append": {
            "seconds_median": round(append_s, 3),
            "seconds_samples": [round(s, 3) for s in append_samples],
            "events_per_s": round(events / append_s),
            "budget_events_per_s": 300_000,
        },
        "append_batch": {
            "batch_events": BATCH,
            "seconds_median": round(batch_s, 3),
            "seconds_samples": [round(s, 3) for s in batch_samples],
            "events_per_s": round(events / batch_s),
            "budget_events_per_s": 300_000,
        },
        "verify_log": {
            "seconds_median": round(verify_s, 3),
            "seconds_samples": [round(s, 3) for s in verify_samples],
            "events_per_s": round(events / verify_s),
            "budget_events_per_s": 1_000_000,
        },
        "bytes_per_event": {
            "segments": round(report.segment_bytes / events, 2),
            "gzip6_ndjson": round(len(gz) / events, 2),
            "raw_ndjson": round(ndjson.stat().st_size / events, 2),
            "budget": "segments <= gzip6_ndjson",
        },
    }
    ndjson.unlink()
    shutil.rmtree(data, ignore_errors=True)
    result["real_capture_bytes_per_event"] = _real_capture_bytes()
    return result


def _real_capture_bytes() -> dict[str, object] | str:
    """Bytes per event on real Binance USD-M traffic (trades, depth, bookTicker), if present."""
    import gzip
    import os
    from pathlib import Path

    from buff_dataplane.pipeline.importer import import_file

    default = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures" / "real"
    path = (
        Path(os.environ.get("BUFF_REAL_FIXTURES", default)) / "hftbacktest/usdm/btcusdt_20240808.gz"
    )
    if not path.exists():
        return f"skipped: {path} not found"
    data = WORK / "real"
    shutil.rmtree(data, ignore_errors=True)
    with open_log(data) as log:
        report = import_file(log, path, venue="binance-usdm", fmt="hftbacktest")
    seg_bytes = verify_log(data).segment_bytes
    messages = [ln.split(b" ", 1)[1] for ln in gzip.decompress(path.read_bytes()).splitlines()]
    ndjson = WORK / "real.ndjson"
    ndjson.write_bytes(b"\n".join(messages) + b"\n")
    gz = subprocess.run(["gzip", "-6", "-c", str(ndjson)], capture_output=True, check=True).stdout
    ndjson.unlink()
    shutil.rmtree(data, ignore_errors=True)
    n = report.messages
    return {
        "file": path.name,
        "events": n,
        "segments": round(seg_bytes / n, 2),
        "gzip6_ndjson": round(len(gz) / n, 2),
    }


def main() -> None:
    started = time.time()
    result = run()
    path = write_result("log", result)
    print(f"log bench ({time.time() - started:.0f}s) -> {path}")
    for key in ("append", "append_batch", "verify_log", "bytes_per_event"):
        print(f"  {key}: {result[key]}")


if __name__ == "__main__":
    main()
