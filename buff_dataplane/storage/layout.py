"""Where things live in a data directory, and the checks made before touching it.

::

    <root>/
      BUFF_DATA                      marker: this directory belongs to buff (layout version)
      .lock                          flock held by the one writing process
      imports.jsonl                  one line per imported capture file (its SHA-256, counts)
      log/<venue>/<channel>/<symbol>/
        manifest.jsonl               hash-chained, one line per sealed segment
        journal.wal                  write-ahead journal of committed, unsealed events
        segments/<from>-<to>.parquet sealed, read-only, named by ingest_seq range (20 digits)
      quarantine/<venue>/<YYYY-MM-DD>.jsonl   refused payloads with their reason
      quarantine/torn/...            torn journal tails cut off by recovery, kept as evidence

When the sealed data lives in an object store (``open_log(S3Store(...), state_dir=...)``),
the segments and manifest chains are store keys (:func:`segment_key`,
:func:`manifest_chain`; see :mod:`buff_dataplane.storage.objstore`) and a local *state
directory* keeps the rest of this layout: ``.lock``, the journals, quarantine (its first,
fsynced copy; each record is then published to the store), ``status/``, plus
``.staging/`` (segments being encoded before their upload); the gap ledger and the
imports registry are in the store (docs/scale.md). Its
marker is ``BUFF_STATE``, naming the store it belongs to, so journals are never sealed
into another store. For a local log the state directory is the data directory itself.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

from buff_dataplane.core.errors import StorageError, ValidationError
from buff_dataplane.core.ids import StreamId

MARKER = "BUFF_DATA"
LAYOUT_VERSION = 1
LOCK = ".lock"
LOG_DIR = "log"
QUARANTINE_DIR = "quarantine"
IMPORTS = "imports.jsonl"
MANIFEST = "manifest.jsonl"
JOURNAL = "journal.wal"
SEGMENTS = "segments"
TMP_PREFIX = ".tmp-"
STATE_MARKER = "BUFF_STATE"
STAGING = ".staging"
MANIFEST_CHAIN = "manifest"  # a LocalStore keeps chain ``manifest`` as ``manifest.jsonl``

_SEGMENT_RE = re.compile(r"(\d{20})-(\d{20})\.parquet")


def stream_dir(root: Path, sid: StreamId) -> Path:
    return root / LOG_DIR / sid.venue / sid.channel / sid.symbol


def stream_key(sid: StreamId) -> str:
    """The store key prefix of a stream: ``log/<venue>/<channel>/<symbol>``."""
    return f"{LOG_DIR}/{sid.venue}/{sid.channel}/{sid.symbol}"


def segment_key(sid: StreamId, name: str) -> str:
    return f"{stream_key(sid)}/{SEGMENTS}/{name}"


def manifest_chain(sid: StreamId) -> str:
    """The store chain of a stream's manifest (locally: its ``manifest.jsonl``)."""
    return f"{stream_key(sid)}/{MANIFEST_CHAIN}"


def marker_body() -> bytes:
    return (json.dumps({"format": "buff-data", "layout_version": LAYOUT_VERSION}) + "\n").encode()


def segment_name(seq_from: int, seq_to: int) -> str:
    return f"{seq_from:020d}-{seq_to:020d}.parquet"


def parse_segment_name(name: str) -> tuple[int, int] | None:
    match = _SEGMENT_RE.fullmatch(name)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))


def _is_data_dir(path: Path) -> bool:
    return (path / MARKER).is_file()


def resolve_root(data: str | os.PathLike[str], *, create: bool) -> Path:
    """Validate ``data`` as a data directory; with ``create``, make it (and the marker).

    Refuses, with a ValidationError and before writing anything: a path that is a file,
    a non-empty directory that is not a buff data directory, a directory that cannot be
    written (probed by creating a file, so it holds for root and read-only mounts too),
    and, for readers, a directory that does not exist.
    """
    text = os.fspath(data)
    if not text or "\x00" in text:
        raise ValidationError(f"invalid data dir {text!r}")
    if text.startswith("s3://"):
        raise ValidationError(f"data dir {text}: object storage is not supported by this build")
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise ValidationError(f"data dir {path} is not a directory")
    if not create:
        if not path.is_dir():
            raise ValidationError(f"data dir {path} does not exist")
        if not _is_data_dir(path):
            raise ValidationError(f"data dir {path} is not a buff data directory (no {MARKER})")
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValidationError(f"data dir {path} cannot be created: {exc.strerror}") from exc
    if not _is_data_dir(path) and any(path.iterdir()):
        raise ValidationError(
            f"data dir {path} is not empty and is not a buff data directory; "
            "refusing to write into it"
        )
    _probe_writable(path)
    if not _is_data_dir(path):
        write_file_atomic(path / MARKER, marker_body(), fsync=True)
    return path


def resolve_state_dir(state: str | os.PathLike[str], store_url: str, *, create: bool) -> Path:
    """Validate the local state directory of a log whose sealed data is at ``store_url``.

    Like :func:`resolve_root`, refuses before writing anything a file, a non-empty
    directory without the ``BUFF_STATE`` marker, and an unwritable directory; and refuses
    a state directory that belongs to another store (its journals would be sealed there).
    A reader (``create=False``) needs only an existing directory.
    """
    text = os.fspath(state)
    if not text or "\x00" in text or "://" in text:
        raise ValidationError(f"invalid state dir {text!r}: expected a local directory")
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise ValidationError(f"state dir {path} is not a directory")
    marker = path / STATE_MARKER
    body = (json.dumps({"format": "buff-state", "store": store_url}) + "\n").encode()
    if marker.is_file():
        try:
            owner = json.loads(marker.read_bytes()).get("store")
        except (OSError, ValueError, AttributeError) as exc:
            raise ValidationError(f"state dir {path}: unreadable {STATE_MARKER} marker") from exc
        if owner != store_url:
            raise ValidationError(
                f"state dir {path} belongs to {owner}, not {store_url}; "
                "its journals must not be sealed into another store"
            )
        if create:
            _probe_writable(path)
        return path
    if not create:
        if not path.is_dir():
            raise ValidationError(f"state dir {path} does not exist")
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValidationError(f"state dir {path} cannot be created: {exc.strerror}") from exc
    if any(path.iterdir()):
        raise ValidationError(
            f"state dir {path} is not empty and is not a buff state directory; "
            "refusing to write into it"
        )
    _probe_writable(path)
    write_file_atomic(marker, body, fsync=True)
    return path


def _probe_writable(path: Path) -> None:
    probe = path / f"{TMP_PREFIX}probe-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise ValidationError(f"data dir {path} is not writable: {exc.strerror}") from exc
    os.close(fd)
    os.unlink(probe)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file_atomic(path: Path, data: bytes, *, fsync: bool, read_only: bool = False) -> None:
    """Write ``data`` to ``path`` through a temp file; never replaces an existing file."""
    with atomic_file(path, fsync=fsync, read_only=read_only) as fd:
        write_all(fd, data)


def write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


@contextlib.contextmanager
def atomic_file(path: Path, *, fsync: bool, read_only: bool = False) -> Iterator[int]:
    """Yield the fd of a new temp file; publish it at ``path`` when the block returns.

    The temp file is written by the caller, then fsynced and (optionally) made
    read-only, then hard-linked to its final name, which fails with FileExistsError if
    that name exists: an existing name is an error, never an overwrite. The directory is
    fsynced so the new name survives a crash. If the block raises, nothing is published
    and the temp file is removed.
    """
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}.{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError as exc:
        raise StorageError(f"cannot create {tmp}: {exc.strerror}") from exc
    try:
        try:
            yield fd
            if fsync:
                os.fsync(fd)
            if read_only:
                os.fchmod(fd, 0o444)
        finally:
            os.close(fd)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, FileExistsError):
            raise StorageError(f"cannot write {tmp}: {exc.strerror}") from exc
        raise
    try:
        os.link(tmp, path)
    except FileExistsError:
        os.unlink(tmp)
        raise
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if exc.errno == errno.EEXIST:  # pragma: no cover - FileExistsError covers it
            raise FileExistsError(str(path)) from exc
        raise StorageError(f"cannot publish {path}: {exc.strerror}") from exc
    os.unlink(tmp)
    if fsync:
        fsync_dir(path.parent)
