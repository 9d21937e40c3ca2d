"""Partition-parallel jobs: a pure function mapped over partitions, combined in order.

Canonicalize and replay verification split their work by partition (one trade stream: a
venue and symbol) and map a top-level, pure function over the partitions; the results are
combined in the order of the partitions given (the caller sorts them), never in
completion order, so the output is the same whatever runs them:

``serial``   in this process, one after another
``process``  a pool of ``workers`` processes (default: one per core), started by spawn so no
             thread state of this process (DuckDB, Arrow) is inherited half-way
``dask``     a Dask cluster (``pip install buff_dataplane[dask]``): the one at ``address``
             (or ``$DASK_SCHEDULER_ADDRESS``), else a local cluster of ``workers`` processes
             bound to 127.0.0.1 only (scheduler, workers and dashboards), one thread each

Tasks only read their inputs and return values; publishing stays with the caller, so a
task that is run twice (a retried worker) changes nothing.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

from buff_dataplane.core.errors import FeedError, ValidationError

EXECUTORS: tuple[str, ...] = ("serial", "process", "dask")
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
    address: str | None = None,
) -> list[R]:
    """``[fn(p) for p in partitions]``, run by ``executor``; results in partition order.

    ``fn`` must be a module-level function and the partitions picklable for ``process``
    and ``dask``. The first task to raise raises here. ``address`` is a Dask scheduler's.
    """
    check_executor(executor, workers)
    if address is not None and executor != "dask":
        raise ValidationError("--address names a Dask scheduler: use it with --executor dask")
    if executor == "serial" or (executor == "process" and len(partitions) <= 1):
        return [fn(p) for p in partitions]
    if executor == "dask":
        return _on_dask(fn, partitions, workers, address)
    n = min(workers or os.cpu_count() or 1, len(partitions))
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=n, mp_context=context) as pool:
        return list(pool.map(fn, partitions))  # map yields in input order


def _on_dask(
    fn: Callable[[T], R], partitions: Sequence[T], workers: int | None, address: str | None
) -> list[R]:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ValidationError(
            "--executor dask needs Dask: pip install 'buff_dataplane[dask]'"
        ) from None
    address = address or os.environ.get("DASK_SCHEDULER_ADDRESS") or None
    with contextlib.ExitStack() as stack:
        if address is None:
            cluster = stack.enter_context(
                LocalCluster(  # type: ignore[no-untyped-call]
                    n_workers=workers or os.cpu_count() or 1,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address="127.0.0.1:0",
                    worker_dashboard_address="127.0.0.1:0",
                    silence_logs=logging.ERROR,
                )
            )
            address = cluster.scheduler_address
        try:
            client = stack.enter_context(Client(address, timeout="5s"))  # type: ignore[no-untyped-call]
        except (OSError, TimeoutError) as exc:
            raise FeedError(f"cannot reach the Dask scheduler at {address}: {exc}") from exc
        # Engines retry a task whose worker died: tasks are pure, so a retry is harmless.
        return list(client.get_executor(pure=False).map(fn, partitions))
