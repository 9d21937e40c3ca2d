"""Partition-parallel jobs: a pure function mapped over partitions, combined in order.

Canonicalize and replay verification split their work by partition (one trade stream: a
venue and symbol) and map a top-level, pure function over the partitions; the results are
combined in the order of the partitions given (the caller sorts them), never in
completion order, so the output is the same whatever runs them:

``serial``   in this process, one after another
``process``  a pool of ``workers`` processes (default: one per core), started by spawn so no
             thread state of this process (DuckDB, Arrow) is inherited half-way

Tasks only read their inputs and return values; publishing stays with the caller, so a
task that is run twice (a retried worker) changes nothing.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

from buff_dataplane.core.errors import ValidationError

EXECUTORS: tuple[str, ...] = ("serial", "process")
DEFAULT_EXECUTOR = "serial"
MAX_WORKERS = 256

T = TypeVar("T")
R = TypeVar("R")


def check_executor(executor: str, workers: int | None) -> None:
    """ValidationError for an executor or worker count that cannot run."""
    if executor not in EXECUTORS:
        raise ValidationError(
            f"unknown executor {executor!r}: expected one of {', '.join(EXECUTORS)}"
        )
    if workers is not None and (isinstance(workers, bool) or not 1 <= workers <= MAX_WORKERS):
        raise ValidationError(f"--workers {workers!r}: expected 1..{MAX_WORKERS}")


def map_partitions(
    fn: Callable[[T], R],
    partitions: Sequence[T],
    *,
    executor: str = DEFAULT_EXECUTOR,
    workers: int | None = None,
) -> list[R]:
    """``[fn(p) for p in partitions]``, run by ``executor``; results in partition order.

    ``fn`` must be a module-level function and the partitions picklable for ``process``.
    The first task to raise raises here (the others are cancelled or left to finish).
    """
    check_executor(executor, workers)
    if executor == "serial" or len(partitions) <= 1:
        return [fn(p) for p in partitions]
    n = min(workers or os.cpu_count() or 1, len(partitions))
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=n, mp_context=context) as pool:
        return list(pool.map(fn, partitions))  # map yields in input order
