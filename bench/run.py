"""make bench: run every benchmark and write bench/results/*.json."""

from __future__ import annotations

import sys

from bench import (
    backfill_bench,
    bars_bench,
    capture_bench,
    executor_bench,
    log_bench,
    objstore_bench,
    parse_bench,
)

SECTIONS = {
    "backfill": backfill_bench.main,
    "bars": bars_bench.main,
    "capture": capture_bench.main,  # the 30 min soak: python -m bench.capture_bench --soak
    "executors": executor_bench.main,  # canonicalize by serial / process / dask
    "log": log_bench.main,
    "objstore": objstore_bench.main,  # local dir vs S3 (moto on loopback)
    "parse": parse_bench.main,  # real recorded messages of ../shared/fixtures/real
}


def main(argv: list[str]) -> None:
    only = argv or sorted(SECTIONS)
    for name in only:
        if name not in SECTIONS:
            raise SystemExit(f"unknown bench section {name!r}: expected {sorted(SECTIONS)}")
        SECTIONS[name]()


if __name__ == "__main__":
    main(sys.argv[1:])
