"""A writer that seals to S3 and is SIGKILLed between the upload and the manifest entry.

Usage: python s3_crash_writer.py s3://BUCKET/PREFIX STATE_DIR N. The AWS_* variables
point at the test's moto server. Appends N events (committed to the local journal, so
acknowledged), then seals: the segment is uploaded, and the process kills itself when
the manifest entry is about to be appended.
"""

import os
import signal
import sys

from buff_dataplane.core.config import LogConfig
from buff_dataplane.storage.log import open_log
from buff_dataplane.storage.objstore import S3Store, store_for

SID = "binance-usdm/trade/BTC-USDT-PERP"
T0 = 1_723_161_256_000


def main() -> None:
    uri, state, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    log = open_log(store_for(uri), LogConfig(fsync=True), state_dir=state)
    w = log.writer(SID)
    for i in range(n):
        w.append(b"evt-%d" % i, T0 + i, T0 + 100 + i)
    w.commit()
    print(f"ACK {w.durable_seq}", flush=True)

    def killed(*args: object, **kwargs: object) -> bool:
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")

    S3Store.chain_append = killed  # type: ignore[method-assign]
    w.seal()


if __name__ == "__main__":
    main()
