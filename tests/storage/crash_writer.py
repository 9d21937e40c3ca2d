"""A writer that runs until it is killed; the crash test's subject.

Usage: python crash_writer.py DATA_DIR RUN_ID. Appends to two streams in a loop with tiny
group commits and segments (so the kill lands in every phase: append, commit, seal,
manifest), printing ``ACK <stream> <run> <j>`` once event j of this run is durable.
"""

import sys

from buff_dataplane.core.config import LogConfig
from buff_dataplane.storage.log import open_log

STREAMS = ("binance-usdm/trade/BTC-USDT-PERP", "binance-usdm/trade/ETH-USDT-PERP")
T0 = 1_723_161_256_000


def main() -> None:
    data, run = sys.argv[1], int(sys.argv[2])
    cfg = LogConfig(group_commit_events=7, segment_max_events=40, fsync=True)
    log = open_log(data, cfg)
    writers = [log.writer(s) for s in STREAMS]
    print("READY", flush=True)
    j = 0
    while True:
        for k, w in enumerate(writers):
            before = w.durable_seq
            w.append(b"run-%d-%d" % (run, j), T0 + j, T0 + j)
            if w.durable_seq != before:
                print(f"ACK {k} {run} {j}", flush=True)
        j += 1


if __name__ == "__main__":
    main()
