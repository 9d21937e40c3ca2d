"""Options and output helpers shared by the commands."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from buff_dataplane.core.config import LogConfig
    from buff_dataplane.storage.log import RawLog
    from buff_dataplane.storage.objstore import ObjectStore

DataOpt = Annotated[
    str,
    typer.Option(
        "--data",
        envvar="BUFF_DATA",
        help="Data directory (created on first write), or s3://bucket/prefix on any "
        "S3-compatible store (configured by the AWS_* environment variables; see "
        "docs/scale.md). Env: BUFF_DATA.",
        show_default=True,
    ),
]
StateOpt = Annotated[
    str | None,
    typer.Option(
        "--state-dir",
        envvar="BUFF_STATE_DIR",
        help="With --data s3://...: the local directory of the journals, the write lock, "
        "quarantine staging and status files (needed to write; a journal cannot live in "
        "an object store). Env: BUFF_STATE_DIR.",
    ),
]
ExecutorOpt = Annotated[
    str,
    typer.Option(
        help="What runs the partition tasks: serial (this process), process (a pool of "
        "--workers processes; one partition runs in this process) or dask (a Dask "
        "cluster); results are combined in sorted order either way."
    ),
]
AddressOpt = Annotated[
    str | None,
    typer.Option(
        help="A Dask scheduler, tcp://host:8786, for --executor dask (default: "
        "$DASK_SCHEDULER_ADDRESS, else a local cluster on 127.0.0.1)."
    ),
]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        min=1, max=256, help="Worker processes for --executor process or dask (default: cores)."
    ),
]


JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable JSON report.")]


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, sort_keys=True, indent=2) + "\n")


def err(text: str) -> None:
    sys.stderr.write(text + "\n")


@contextmanager
def progress_bar(label: str, enabled: bool) -> Iterator[Any]:
    """A rich progress bar on stderr when it is a terminal; a no-op object otherwise."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(
        f"[bold]{label}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        yield bar


def open_data_log(
    data: str,
    *,
    readonly: bool,
    state_dir: str | None = None,
    config: LogConfig | None = None,
) -> RawLog:
    """The raw log at ``--data``: a local data directory, or sealed data on S3.

    A writer of an object store needs ``--state-dir`` (journals and the lock are local);
    a reader needs none. A local data directory keeps its state itself, so a state
    directory given with it is refused rather than silently ignored.
    """
    from buff_dataplane.core.errors import ValidationError
    from buff_dataplane.storage.log import open_log
    from buff_dataplane.storage.objstore import LocalStore, store_for

    store = store_for(data)
    no_state_for_local(store, state_dir)
    if isinstance(store, LocalStore):
        return open_log(data, config, readonly=readonly)
    if state_dir is None and not readonly:
        raise ValidationError(
            f"--data {data}: writing to object storage needs --state-dir DIR (or "
            "BUFF_STATE_DIR): journals and the write lock stay on local disk"
        )
    return open_log(store, config, readonly=readonly, state_dir=state_dir)


def data_store(data: str) -> ObjectStore:
    """The store at ``--data`` for a reader of bars: it must hold buff data already."""
    from buff_dataplane.storage.objstore import existing_store

    return existing_store(data)


def no_state_for_local(store: ObjectStore, state_dir: str | None) -> None:
    """Refuse ``--state-dir`` with a local data directory, which keeps its own state
    (rather than ignore an option the user meant for something)."""
    from buff_dataplane.core.errors import ValidationError
    from buff_dataplane.storage.objstore import LocalStore

    if isinstance(store, LocalStore) and state_dir is not None:
        raise ValidationError(
            f"--state-dir is for --data s3://...; the local data directory {store.url()} "
            "keeps its own journals (unset BUFF_STATE_DIR)"
        )
