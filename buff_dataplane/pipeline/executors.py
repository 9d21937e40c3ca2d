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
import contextvars
import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TypeVar

from buff_dataplane.core.errors import ExecutorError, FeedError, ValidationError

EXECUTORS: tuple[str, ...] = ("serial", "process", "dask")
DEFAULT_EXECUTOR = "process"
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
    Inside :func:`executor_session` for the same executor, its pool or cluster is used
    instead of a new one.
    """
    check_executor(executor, workers)
    if address is not None and executor != "dask":
        raise ValidationError("--address names a Dask scheduler: use it with --executor dask")
    if executor == "serial" or (executor == "process" and len(partitions) <= 1):
        return [fn(p) for p in partitions]
    session = _SESSION.get()
    if session is not None and session.executor == executor:
        try:
            return list(session.pool.map(fn, partitions))  # map yields in input order
        except BrokenProcessPool as exc:
            # A pool does not rerun the task of a dead worker (Dask does). The caller
            # publishes only after every task returned, so nothing was written.
            raise ExecutorError(
                f"a worker process died while running {getattr(fn, '__name__', 'a task')} "
                f"({exc}); nothing was published, and a rerun is safe"
            ) from exc
    with executor_session(executor, workers=workers, address=address, size=len(partitions)):
        return map_partitions(fn, partitions, executor=executor)


@dataclass(frozen=True)
class _Session:
    executor: str
    pool: Executor


_SESSION: contextvars.ContextVar[_Session | None] = contextvars.ContextVar(
    "buff_executor_session", default=None
)


@contextlib.contextmanager
def executor_session(
    executor: str,
    *,
    workers: int | None = None,
    address: str | None = None,
    size: int | None = None,
) -> Iterator[None]:
    """Run every :func:`map_partitions` of ``executor`` in the block on one pool/cluster.

    A job that maps several times (a canonicalize per venue, a golden check's stages)
    then pays for starting processes or a cluster once. ``size`` caps the pool at the
    number of partitions when it is known. ``serial`` needs no session, and a session
    inside a session of the same executor uses the outer one.
    """
    check_executor(executor, workers)
    if address is not None and executor != "dask":
        raise ValidationError("--address names a Dask scheduler: use it with --executor dask")
    active = _SESSION.get()
    if executor == "serial" or (active is not None and active.executor == executor):
        yield  # nothing to start, or an enclosing session's pool serves this block
        return
    with contextlib.ExitStack() as stack:
        if executor == "dask":
            pool = _dask_executor(stack, workers, address)
        else:
            n = workers or os.cpu_count() or 1
            pool = stack.enter_context(
                ProcessPoolExecutor(
                    max_workers=min(n, size) if size else n,
                    mp_context=multiprocessing.get_context("spawn"),
                )
            )
        token = _SESSION.set(_Session(executor, pool))
        try:
            yield
        finally:
            _SESSION.reset(token)


def _dask_executor(
    stack: contextlib.ExitStack, workers: int | None, address: str | None
) -> Executor:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ValidationError(
            "--executor dask needs Dask: pip install 'buff_dataplane[dask]'"
        ) from None
    address = address or os.environ.get("DASK_SCHEDULER_ADDRESS") or None
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
    executor: Executor = client.get_executor(pure=False)
    return executor
