"""The storage seam: what the raw log and the bar store need of their storage.

Two implementations of one :class:`ObjectStore` protocol, chosen by :func:`store_for`
from the ``--data`` value: :class:`LocalStore` (a directory, as the embedded default has
always been) and :class:`S3Store` (``s3://bucket/prefix`` on any S3-compatible service,
configured only by the standard ``AWS_*`` environment variables: ``AWS_ENDPOINT_URL``
(or ``AWS_ENDPOINT_URL_S3``), ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_SESSION_TOKEN``, ``AWS_DEFAULT_REGION``, ``AWS_PROFILE``, ``AWS_MAX_ATTEMPTS``...).

Keys are relative POSIX paths made of components ``[A-Za-z0-9_=-][A-Za-z0-9._=-]*``
(``log/binance-usdm/trade/BTC-USDT-PERP/segments/<from>-<to>.parquet``). No component
starts with a dot, so a key can never name a temp file (``.tmp-*``) or the lock.

Operations, and what makes each one safe on both stores:

``put_new(key, data)`` / ``put_new_file(key, path)``
    Publish an object that must not exist. A second write of the same key succeeds
    (returning False) only if the bytes are identical, an idempotent retry; different
    bytes raise :class:`ObjectExists` and leave the object unchanged. Local: temp file,
    fsync, read-only, hard link (fails if the name exists), directory fsync. S3: one
    ``PutObject`` with ``If-None-Match: *`` (atomic: a reader sees all of it or nothing);
    on 412 the existing object is read back and compared.
``get`` / ``exists`` / ``size`` / ``list(prefix)`` / ``list_dirs(prefix)`` / ``open_input``
    Reads. ``list`` returns every key under a directory-like prefix, sorted (byte order,
    as S3 lists). ``list_dirs`` returns only the names of the immediate "subdirectories"
    under a prefix, sorted (S3: ``ListObjectsV2`` with ``Delimiter="/"``, one page per
    1,000 names; local: child directories, dot names skipped), so finding the streams
    costs a few LISTs however many segments they hold. ``open_input`` returns a
    random-access ``pyarrow.NativeFile`` so ``pq.ParquetFile`` reads only the footer and
    the row groups and columns it needs;
    DuckDB then queries the Arrow data (its S3 extension cannot be loaded offline).
``chain_read(name)`` / ``chain_append(name, index, line)``
    An append-only, position-checked sequence of one-line entries: the manifest chain
    (and, on a store, the gap ledger). ``chain_append`` writes entry
    ``index`` only if that position is free; the same line again is an idempotent retry;
    a different line raises ObjectExists, so two writers can never both append the same
    position, and the loser re-reads the chain instead of forking it.
    ``chain_read(name, use_checkpoints=False)`` reads every entry and ignores checkpoints
    (``verify-log`` does, to check them).

Layout on S3 (the local one is :mod:`buff_dataplane.storage.layout`'s, unchanged)::

    s3://bucket/prefix/
      BUFF_DATA                                  marker, written with put_new
      log/<venue>/<channel>/<symbol>/
        manifest/00000000000000000000.json       entry index 0: one object per entry
        manifest/00000000000000000001.json       ...named by its 20-digit index
        manifest-checkpoints/<N:020>.jsonl       entries 0..N-1 concatenated, put_new,
                                                 every CHECKPOINT_EVERY (1,000) entries
        segments/<from>-<to>.parquet             sealed, put_new
      gaps/ledger/<index:020>.json               the gap ledger, a chain like the manifest
      gaps/ledger-checkpoints/<N:020>.jsonl      ...with its checkpoints
      quarantine/<venue>/<day>/<writer>-<line:08>.json   one refused payload, put_new
      imports/<file_sha256>.json                 one imported capture file, put_new
      bars/<venue>/<symbol>/<tf>/rev-0001/...    bars.parquet, diff.json, late.json, then
                                                 manifest.json last (see below)

How the manifest maps to today's ``manifest.jsonl``: an entry object holds exactly the
bytes of one line of the local file, newline included, so concatenating the objects in
index order (which is what ``chain_read`` returns) *is* that stream's ``manifest.jsonl``,
byte for byte; ``prev`` and ``index`` are unchanged, and the same parser and the same
``verify-log`` checks apply. The local store keeps ``<name>.jsonl`` as the chain's file
(``log/.../manifest`` -> ``log/.../manifest.jsonl``), appended under an exclusive
``flock``; its position check is a count of complete lines. What changes on S3: a torn
tail cannot exist (a PUT is atomic), and a missing or foreign object under ``manifest/``
is reported in :attr:`ChainRead.faults`. Reading every entry costs one LIST page per
1,000 entries plus one GET per entry (8 threads): 200 entries took 1.25 s against moto
here, and a stream with years of hourly segments has ~9k.

Checkpoints (S3 only; a local chain is one file already). After ``chain_append`` writes
entry ``i`` with ``i + 1`` a multiple of :data:`CHECKPOINT_EVERY`, it also puts (with
put_new) the checkpoint ``<name>-checkpoints/<i+1:020>.jsonl``: the bytes of entries
``0..i`` concatenated, built from a read of the chain (the previous checkpoint plus the
entries after it). The entries stay the truth: a checkpoint that cannot be written is
logged and skipped (a later reader reads more entries, nothing else), and a chain
without checkpoints (every log written before them) reads every entry as it always did,
after one LIST that finds no checkpoint.
``chain_read`` lists the (few) checkpoints, takes the highest ``N`` whose body is ``N``
complete lines and whose last line is anchored to the entries, then lists the entries
from position ``N - 1`` on (``StartAfter``) and GETs only those ``>= N``: one LIST of
checkpoints, one GET of the checkpoint, one LIST of the entries from ``N - 1`` on, and
one GET per entry after the checkpoint (fewer than CHECKPOINT_EVERY): for a year of
hourly segments (~8,760 entries), 760 entry GETs instead of 8,760.
Anchored means: entry ``N - 1`` exists, and if no entry follows the checkpoint, its body
equals the checkpoint's last line (one more GET, only then); otherwise the next lower
checkpoint is tried, and in the end the entries alone. The bytes returned are exactly
those a full read returns. A reader trusts such a checkpoint without reading the entries
it covers; for the manifest that trust is checked anyway, since every line holds the
hash of the line before it: a checkpoint that differs from the entries breaks the chain
at its last line or at the first entry after it, and
:func:`~buff_dataplane.storage.manifest.read_store_manifest` then re-reads without
checkpoints (a warning, not a failure). The gap ledger has no hash chain: its readers
trust a checkpoint as this read returns it. ``verify-log`` compares every checkpoint (the
manifests' and the ledger's) with the entries, byte for byte, and reports a difference as
``checkpoint_mismatch``.

What stays local, and why:

- **Journals.** A write-ahead journal is an append plus an fsync every group commit
  (100 ms). An object store has neither append nor fsync: each commit would have to be a
  new object (a PUT of 10-50 ms, billed per request) and recovery would have to list
  them. The journal stays on local disk next to the process that writes it; only sealed
  segments and their manifest entries go to S3. Events committed but not yet sealed are
  on that machine's disk, as they are today.
- **The write lock.** ``flock`` has no S3 counterpart; the conditional manifest entry
  takes its place: two writers of one stream cannot both publish position N.
- **Temp files.** A sealed segment is encoded into a local temp file and uploaded with
  ``put_new_file``; an upload is a single PUT (a segment stays far below S3's 5 GB
  single-PUT limit), so readers never see a partial segment.

A bar revision on S3 cannot be renamed into place as a directory; its files are put with
put_new and ``manifest.json`` last, so a revision exists for readers only when its
manifest does, and a crash before that leaves files a re-run rewrites identically
(put_new accepts identical bytes) or refuses (different bytes).

Library choice: boto3 (``pip install 'buff_dataplane[s3]'``), imported only when an
``s3://`` URI is used. It exposes the ``If-None-Match`` precondition and its 412 answer
directly, is synchronous (no event-loop thread, unlike s3fs/aiobotocore), its clients are
thread-safe, and it reads every ``AWS_*`` variable itself. Parquet is read through a
ranged-GET file object over the same client rather than ``pyarrow.fs.S3FileSystem``: one
credential chain, one endpoint and retry policy, and one place where S3 errors become ours;
both measured the same speed against moto. pyarrow's filesystem is unusable for writes
anyway: it cannot refuse an overwrite.

Errors: a malformed URI, missing credentials, a bucket that does not exist or cannot be
accessed raise ValidationError (exit 2) before anything is written; an unreachable
endpoint and any S3 failure during an operation raise StorageError (exit 4).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import fcntl
import hashlib
import io
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from buff_dataplane.core.errors import (
    BuffError,
    ImmutabilityError,
    StorageError,
    ValidationError,
)
from buff_dataplane.storage.layout import fsync_dir, write_all

_COMPONENT_RE = re.compile(r"[A-Za-z0-9_=-][A-Za-z0-9._=-]*")
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP_RE = re.compile(r"\d+\.\d+\.\d+\.\d+")
_ENTRY_RE = re.compile(r"(\d{20})\.json")
_CHECKPOINT_RE = re.compile(r"(\d{20})\.jsonl")
MAX_KEY_BYTES = 1024  # S3's limit, bucket prefix included
CHAIN_SUFFIX = ".jsonl"
CHECKPOINT_SUFFIX = "-checkpoints"  # <name>-checkpoints/: a sibling of <name>/
CHECKPOINT_EVERY = 1000  # an S3 chain gets a checkpoint after every this many entries
_CHUNK = 1 << 20

logger = logging.getLogger(__name__)

Keys = list[str]  # ``list`` is also a method name of the stores
Indexed = list[tuple[int, str]]  # (entry index, key), as a chain's listing holds
Messages = list[str]  # fault messages


class ObjectExists(ImmutabilityError):
    """A put_new (or chain position) found different bytes already there."""

    def __init__(self, message: str, key: str) -> None:
        super().__init__(message)
        self.key = key


class ObjectNotFound(StorageError):
    """A read of a key that holds no object."""

    def __init__(self, message: str, key: str) -> None:
        super().__init__(message)
        self.key = key


def validate_key(key: str) -> str:
    """Return ``key`` if it is a store key; ValidationError otherwise (nothing touched)."""
    parts = key.split("/") if isinstance(key, str) else []
    if not parts or not all(_COMPONENT_RE.fullmatch(p) for p in parts):
        raise ValidationError(
            f"invalid object key {key!r}: expected '/'-separated names of "
            "[A-Za-z0-9._=-], none empty or starting with '.'"
        )
    if len(key.encode()) > MAX_KEY_BYTES:
        raise ValidationError(f"invalid object key {key[:60]!r}...: longer than 1024 bytes")
    return key


def chain_entry_key(name: str, index: int) -> str:
    """The S3 object of entry ``index`` of chain ``name``: ``<name>/<index:020d>.json``."""
    if index < 0:
        raise ValidationError(f"chain {name}: negative position {index}")
    return f"{validate_key(name)}/{index:020d}.json"


def chain_checkpoint_prefix(name: str) -> str:
    """Where chain ``name``'s checkpoints live: ``<name>-checkpoints``, beside ``<name>/``."""
    return f"{validate_key(name)}{CHECKPOINT_SUFFIX}"


def chain_checkpoint_key(name: str, count: int) -> str:
    """The checkpoint of the first ``count`` entries: ``<name>-checkpoints/<count:020d>.jsonl``."""
    if count <= 0:
        raise ValidationError(f"chain {name}: a checkpoint holds at least one entry")
    return f"{chain_checkpoint_prefix(name)}/{count:020d}.jsonl"


def checkpoint_count(key: str) -> int | None:
    """The entry count a checkpoint key names (its last component), None if not one."""
    match = _CHECKPOINT_RE.fullmatch(key.rsplit("/", 1)[-1])
    count = int(match.group(1)) if match else 0
    return count if count > 0 else None


def first_lines(data: bytes, count: int) -> bytes | None:
    """The first ``count`` complete lines of ``data``, or None if it holds fewer."""
    end = 0
    for _ in range(count):
        nl = data.find(b"\n", end)
        if nl < 0:
            return None
        end = nl + 1
    return data[:end]


@dataclass
class ChainRead:
    """A chain as read: ``data`` is its complete entries, one line each, in order.

    ``data`` equals the local ``<name>.jsonl`` up to its last newline. ``torn_tail`` is
    what follows that newline (local only: a crash mid-append); ``faults`` names missing
    positions, stray keys and entries that are not one line (S3 only; a read from a
    checkpoint sees only the keys after it). ``checkpoint`` is the number of leading
    entries taken from a checkpoint (0: every entry was read).
    """

    data: bytes = b""
    count: int = 0
    torn_tail: bytes = b""
    faults: list[str] = field(default_factory=list)
    # How many of the entries came from a checkpoint instead of their own objects (S3).
    checkpoint: int = 0

    def lines(self) -> list[bytes]:
        return self.data.splitlines()


@runtime_checkable
class ObjectStore(Protocol):
    """What storage/ needs of where it keeps the log and the bars. Keys: see module doc."""

    def url(self, key: str = "") -> str:
        """Where ``key`` lives, for messages (a path, or ``s3://bucket/prefix/key``)."""
        ...

    def put_new(self, key: str, data: bytes) -> bool:
        """Publish ``data`` at a new ``key``; True if created, False if identical existed.

        False is a success too: the object holds exactly ``data`` (a retry of a write whose
        answer was lost lands here). Different bytes raise ObjectExists.
        """
        ...

    def put_new_file(self, key: str, path: Path) -> bool:
        """put_new with the bytes of the local file ``path``, streamed, not loaded."""
        ...

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int: ...

    def list(self, prefix: str = "") -> Keys:
        """Every key under ``prefix`` (a directory-like key, '' for all), sorted."""
        ...

    def list_dirs(self, prefix: str = "") -> Keys:
        """The names of the immediate "subdirectories" under ``prefix``, sorted.

        A name is listed if some key lies below ``<prefix>/<name>/`` (locally: if it is a
        directory); names that are not key components (dot names, temp files) are not.
        """
        ...

    def open_input(self, key: str) -> pa.NativeFile:
        """A random-access reader of ``key`` for pyarrow (Parquet footer, row groups)."""
        ...

    def chain_read(self, name: str, *, use_checkpoints: bool = True) -> ChainRead:
        """Every entry of chain ``name``, in order; ``use_checkpoints=False`` reads each
        entry's own object even where a checkpoint covers it (S3; local has none)."""
        ...

    def chain_append(self, name: str, index: int, line: bytes) -> bool:
        """Write entry ``index``; True if written, False if this line was already there."""
        ...


def _check_line(name: str, line: bytes) -> None:
    if not line or b"\n" in line or b"\r" in line:
        raise ValidationError(f"chain {name}: an entry must be one non-empty line")


def _exists_error(url: str) -> ObjectExists:
    return ObjectExists(
        f"{url} already exists with different bytes; published objects are never rewritten",
        url,
    )


def _same_file(path: Path, other: Path) -> bool:
    return path.stat().st_size == other.stat().st_size and _sha256_file(path) == _sha256_file(other)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


# -- local -------------------------------------------------------------------------------


class LocalStore:
    """A directory. Objects are read-only files published by hard link; never replaced."""

    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = Path(root)
        self.fsync = fsync
        # chain file -> ((inode, size), complete lines): skips re-counting on append.
        self._chain_counts: dict[Path, tuple[tuple[int, int], int]] = {}

    def path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    def url(self, key: str = "") -> str:
        return str(self.path(key)) if key else str(self.root)

    def _mkdirs(self, directory: Path) -> None:
        missing: list[Path] = []
        d = directory
        while not d.is_dir():
            missing.append(d)
            d = d.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create {directory}: {exc.strerror}") from exc
        if self.fsync:
            for made in reversed(missing):  # a new name survives a crash once its parent is
                fsync_dir(made.parent)

    def _publish(self, path: Path, write: Callable[[int], None]) -> bool:
        """Write a unique temp file, then link it to ``path``; False if ``path`` exists."""
        self._mkdirs(path.parent)
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}.", dir=path.parent)
        except OSError as exc:
            raise StorageError(f"cannot create a temp file in {path.parent}: {exc}") from exc
        try:
            try:
                write(fd)
                if self.fsync:
                    os.fsync(fd)
                os.fchmod(fd, 0o444)
            finally:
                os.close(fd)
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError as exc:
            raise StorageError(f"cannot publish {path}: {exc.strerror}") from exc
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if self.fsync:
            fsync_dir(path.parent)
        return True

    def put_new(self, key: str, data: bytes) -> bool:
        path = self.path(key)
        # A retry skips the temp file and its fsync; a racing writer is caught by the link.
        if not path.exists() and self._publish(path, lambda fd: write_all(fd, data)):
            return True
        if self.get(key) == bytes(data):
            return False
        raise _exists_error(str(path))

    def put_new_file(self, key: str, path: Path) -> bool:
        target = self.path(key)

        def copy(fd: int) -> None:
            with path.open("rb") as src:
                while chunk := src.read(_CHUNK):
                    write_all(fd, chunk)

        if not target.exists() and self._publish(target, copy):
            return True
        if _same_file(target, path):
            return False
        raise _exists_error(str(target))

    def get(self, key: str) -> bytes:
        path = self.path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ObjectNotFound(f"{path}: no such object", key) from exc
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror}") from exc

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def size(self, key: str) -> int:
        path = self.path(key)
        if not path.is_file():
            raise ObjectNotFound(f"{path}: no such object", key)
        return path.stat().st_size

    def list(self, prefix: str = "") -> Keys:
        """Every key under ``prefix``; dot-names (temp files, the lock) are never keys."""
        base = self.path(prefix) if prefix else self.root
        if not base.is_dir():
            return []
        out: Keys = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                if not name.startswith("."):  # temp files, the lock: never keys
                    out.append(name if rel == "." else f"{rel}/{name}")
        return sorted(out)

    def list_dirs(self, prefix: str = "") -> Keys:
        """Child directories of ``prefix``; dot names (temp, staging) are never listed."""
        base = self.path(prefix) if prefix else self.root
        try:
            with os.scandir(base) as it:
                return sorted(e.name for e in it if e.is_dir() and _COMPONENT_RE.fullmatch(e.name))
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise StorageError(f"cannot list {base}: {exc.strerror}") from exc

    def open_input(self, key: str) -> pa.NativeFile:
        path = self.path(key)
        try:
            return pa.memory_map(str(path), "r")
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"{path}: no such object", key) from exc
        except OSError as exc:
            raise StorageError(f"cannot open {path}: {exc}") from exc

    # -- chains: <name>.jsonl, appended under flock --------------------------------------

    def chain_path(self, name: str) -> Path:
        path = self.path(name)
        return path.with_name(path.name + CHAIN_SUFFIX)

    def chain_read(self, name: str, *, use_checkpoints: bool = True) -> ChainRead:
        path = self.chain_path(name)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return ChainRead()
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror}") from exc
        cut = data.rfind(b"\n") + 1
        return ChainRead(data=data[:cut], count=data.count(b"\n", 0, cut), torn_tail=data[cut:])

    def chain_append(self, name: str, index: int, line: bytes) -> bool:
        _check_line(name, line)
        path = self.chain_path(name)
        self._mkdirs(path.parent)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            raise StorageError(f"cannot open {path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return self._append_locked(fd, path, name, index, line)
        except OSError as exc:
            raise StorageError(f"cannot append to {path}: {exc.strerror}") from exc
        finally:
            os.close(fd)  # releases the flock

    def _append_locked(self, fd: int, path: Path, name: str, index: int, line: bytes) -> bool:
        st = os.fstat(fd)
        ident = (st.st_ino, st.st_size)
        cached = self._chain_counts.get(path)
        body: bytes | None = None
        if cached is not None and cached[0] == ident:
            count = cached[1]
        else:
            body = os.pread(fd, st.st_size, 0)
            if body and not body.endswith(b"\n"):
                raise StorageError(
                    f"{path} ends in a torn line; recovery must cut it before appending"
                )
            count = body.count(b"\n")
        if index < count:
            if body is None:
                body = os.pread(fd, st.st_size, 0)
            if body.split(b"\n")[index] == line:
                return False
            raise ObjectExists(
                f"{path}: position {index} holds a different entry; "
                "another writer appended it first",
                f"{name}#{index}",
            )
        if index > count:
            raise ImmutabilityError(
                f"{path}: cannot append position {index}, the chain has {count} entries"
            )
        write_all(fd, line + b"\n")
        if self.fsync:
            os.fsync(fd)
            if st.st_size == 0:
                fsync_dir(path.parent)
        self._chain_counts[path] = ((st.st_ino, st.st_size + len(line) + 1), count + 1)
        return True


# -- S3 ----------------------------------------------------------------------------------


def _botocore_exceptions() -> Any:
    import botocore.exceptions

    return botocore.exceptions


def _error_code(exc: Any) -> tuple[str, int]:
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code, status


class S3Store:
    """``s3://bucket/prefix`` through a boto3 S3 ``client`` (see :func:`store_for`).

    One store may be shared by threads (boto3 clients are thread-safe), never across a
    fork: a process-pool or Dask task builds its own with ``store_for(uri)``.
    """

    # AWS answers 409 ConditionalRequestConflict while another conditional PUT of the
    # same key is in flight; the answer after it settles is the real one.
    _CONFLICT_RETRIES = 5

    def __init__(self, bucket: str, prefix: str, client: Any) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client
        self._exc = _botocore_exceptions()

    def _full(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def url(self, key: str = "") -> str:
        path = self._full(key) if key else self.prefix
        return f"s3://{self.bucket}/{path}" if path else f"s3://{self.bucket}"

    @contextlib.contextmanager
    def _errors(self, key: str, action: str) -> Iterator[None]:
        """Turn botocore's errors into ours, one line each."""
        exc_mod = self._exc
        try:
            yield
        except exc_mod.ClientError as exc:
            code, status = _error_code(exc)
            if code != "NoSuchBucket" and (status == 404 or code in ("NoSuchKey", "NotFound")):
                raise ObjectNotFound(f"{self.url(key)}: no such object", key) from exc
            message = exc.response.get("Error", {}).get("Message", "") or str(exc)
            raise StorageError(
                f"{self.url(key)}: {action} failed: S3 {code or status} ({message})"
            ) from exc
        except exc_mod.BotoCoreError as exc:
            raise StorageError(f"{self.url(key)}: {action} failed: {exc}") from exc

    def check(self) -> None:
        """Refuse a bucket that does not exist or cannot be reached (nothing is written)."""
        exc_mod = self._exc
        endpoint = self.client.meta.endpoint_url
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except exc_mod.ClientError as exc:
            code, status = _error_code(exc)
            if status == 404 or code in ("404", "NoSuchBucket", "NotFound"):
                raise ValidationError(
                    f"{self.url()}: bucket {self.bucket!r} does not exist at {endpoint}"
                ) from exc
            if status == 403 or code in ("403", "AccessDenied", "Forbidden"):
                raise ValidationError(
                    f"{self.url()}: access to bucket {self.bucket!r} denied at {endpoint} "
                    "(check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)"
                ) from exc
            raise ValidationError(
                f"{self.url()}: bucket {self.bucket!r} refused at {endpoint}: S3 {code or status}"
            ) from exc
        except exc_mod.NoCredentialsError as exc:
            raise ValidationError(f"{self.url()}: no AWS credentials ({exc})") from exc
        except (exc_mod.EndpointConnectionError, exc_mod.ConnectTimeoutError) as exc:
            raise StorageError(f"{self.url()}: cannot reach the S3 endpoint {endpoint}") from exc
        except exc_mod.BotoCoreError as exc:
            raise StorageError(f"{self.url()}: S3 endpoint {endpoint} failed: {exc}") from exc

    def _put_if_absent(self, key: str, body: Callable[[], Any]) -> bool:
        """One conditional PUT; False if the key exists (412). ``body`` makes the payload."""
        full = self._full(key)
        for attempt in range(self._CONFLICT_RETRIES):
            if attempt:
                time.sleep(0.05 * 2**attempt)
            with self._errors(key, "put"):
                try:
                    self.client.put_object(
                        Bucket=self.bucket, Key=full, Body=body(), IfNoneMatch="*"
                    )
                    return True
                except self._exc.ClientError as exc:
                    code, status = _error_code(exc)
                    if status == 412 or code == "PreconditionFailed":
                        return False
                    if status != 409 or code != "ConditionalRequestConflict":
                        raise
        raise StorageError(f"{self.url(key)}: put kept conflicting with another writer")

    def put_new(self, key: str, data: bytes) -> bool:
        payload = bytes(data)
        if self._put_if_absent(key, lambda: payload):
            return True
        if self.get(key) == payload:
            return False
        raise _exists_error(self.url(key))

    def put_new_file(self, key: str, path: Path) -> bool:
        with path.open("rb") as fh:

            def rewound() -> io.BufferedReader:
                fh.seek(0)
                return fh

            if self._put_if_absent(key, rewound):
                return True
        size = path.stat().st_size
        if self.size(key) == size and self._sha256(key) == _sha256_file(path):
            return False
        raise _exists_error(self.url(key))

    def _sha256(self, key: str) -> str:
        h = hashlib.sha256()
        with self._errors(key, "get"):
            body = self.client.get_object(Bucket=self.bucket, Key=self._full(key))["Body"]
            for chunk in body.iter_chunks(_CHUNK):
                h.update(chunk)
        return h.hexdigest()

    def get(self, key: str) -> bytes:
        with self._errors(key, "get"):
            data: bytes = self.client.get_object(Bucket=self.bucket, Key=self._full(key))[
                "Body"
            ].read()
            return data

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except ObjectNotFound:
            return False
        return True

    def size(self, key: str) -> int:
        with self._errors(key, "head"):
            head = self.client.head_object(Bucket=self.bucket, Key=self._full(key))
            return int(head["ContentLength"])

    def _base(self, prefix: str) -> str:
        """The S3 ``Prefix`` of a directory-like key: ``<prefix>/`` under the store's."""
        return self._full(prefix) + "/" if prefix else (self.prefix + "/" if self.prefix else "")

    def list(self, prefix: str = "") -> Keys:
        return self._list(prefix)

    def _list(self, prefix: str, start_after: str | None = None) -> Keys:
        """Every key under ``prefix``, sorted; only those after ``start_after`` if given."""
        strip = len(self.prefix) + 1 if self.prefix else 0
        args: dict[str, str] = {"Bucket": self.bucket, "Prefix": self._base(prefix)}
        if start_after is not None:
            args["StartAfter"] = self._full(start_after)
        out: Keys = []
        with self._errors(prefix, "list"):
            for page in self.client.get_paginator("list_objects_v2").paginate(**args):
                for item in page.get("Contents", []):
                    key = str(item["Key"])
                    if not key.endswith("/"):  # "directory markers" some tools leave
                        out.append(key[strip:])
        return sorted(out)

    def list_dirs(self, prefix: str = "") -> Keys:
        """One LIST page per 1,000 names (``Delimiter="/"``), whatever lies below them."""
        base = self._base(prefix)
        out: Keys = []
        with self._errors(prefix, "list"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base, Delimiter="/"
            )
            for page in pages:
                for common in page.get("CommonPrefixes", []):
                    name = str(common["Prefix"])[len(base) :].removesuffix("/")
                    if _COMPONENT_RE.fullmatch(name):
                        out.append(name)
        return sorted(out)

    def open_input(self, key: str) -> pa.NativeFile:
        return pa.PythonFile(_S3RangeReader(self, key, self.size(key)), mode="r")

    def get_range(self, key: str, start: int, length: int) -> bytes:
        with self._errors(key, "get"):
            data: bytes = self.client.get_object(
                Bucket=self.bucket, Key=self._full(key), Range=f"bytes={start}-{start + length - 1}"
            )["Body"].read()
        if len(data) != length:
            raise StorageError(
                f"{self.url(key)}: short read at {start}: {len(data)} of {length} bytes"
            )
        return data

    # -- chains: one object per entry ---------------------------------------------------

    def chain_read(self, name: str, *, use_checkpoints: bool = True) -> ChainRead:
        if use_checkpoints:
            counts = sorted(
                {
                    n
                    for key in self.list(chain_checkpoint_prefix(name))
                    if (n := checkpoint_count(key))
                },
                reverse=True,
            )
            for count in counts:
                read = self._read_from_checkpoint(name, count)
                if read is not None:
                    return read
        indexed, faults = self._list_entries(name, None)
        return self._read_entries(indexed, 0, b"", faults, name)

    def _list_entries(self, name: str, after: int | None) -> tuple[Indexed, Messages]:
        """The entries of chain ``name`` (index, key), sorted; only those past ``after``."""
        faults: Messages = []
        indexed: Indexed = []
        start = None if after is None else chain_entry_key(name, after)
        for key in self._list(name, start):
            match = _ENTRY_RE.fullmatch(key[len(name) + 1 :])
            if match is None:
                faults.append(f"{self.url(key)}: not a chain entry")
            else:
                indexed.append((int(match.group(1)), key))
        indexed.sort()
        return indexed, faults

    def _read_entries(
        self, indexed: Indexed, first: int, head: bytes, faults: Messages, name: str
    ) -> ChainRead:
        """The chain: ``head`` (entries ``0..first-1``, from a checkpoint) + ``indexed``."""
        out = ChainRead(faults=faults, checkpoint=first)
        for expected, (index, _key) in enumerate(indexed, start=first):
            if index != expected:
                out.faults.append(f"{self.url(name)}: position {expected} is missing")
                break
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            bodies = list(pool.map(self.get, [key for _, key in indexed]))
        parts: list[bytes] = [head]
        for (_index, key), body in zip(indexed, bodies, strict=True):
            if not body.endswith(b"\n") or body.count(b"\n") != 1:
                out.faults.append(f"{self.url(key)}: entry is not exactly one line")
                body = body.rstrip(b"\n").replace(b"\n", b" ") + b"\n"
            parts.append(body)
        out.data = b"".join(parts)
        out.count = first + len(indexed)
        return out

    def _read_from_checkpoint(self, name: str, count: int) -> ChainRead | None:
        """The chain read from checkpoint ``count`` on; None if it is not usable.

        Usable: its body is ``count`` complete lines, entry ``count - 1`` exists (listed
        with the tail: no extra request), and when no entry follows, that entry's bytes
        are the checkpoint's last line. The entries from ``count`` on are then read as
        a full read would read them.
        """
        key = chain_checkpoint_key(name, count)
        where = self.url(key)
        try:
            body = self.get(key)
        except ObjectNotFound:
            return None
        if not body.endswith(b"\n") or body.count(b"\n") != count:
            logger.warning("%s: not %d complete lines; checkpoint skipped", where, count)
            return None
        indexed, faults = self._list_entries(name, count - 2 if count > 1 else None)
        if not indexed or indexed[0][0] != count - 1:
            logger.warning("%s: entry %d does not exist; checkpoint skipped", where, count - 1)
            return None
        anchor_key = indexed[0][1]
        tail = indexed[1:]
        if not tail:
            last = body[body.rfind(b"\n", 0, len(body) - 1) + 1 :]
            if self.get(anchor_key) != last:
                logger.warning(
                    "%s: last line differs from entry %d; checkpoint skipped", where, count - 1
                )
                return None
        return self._read_entries(tail, count, body, faults, name)

    def chain_append(self, name: str, index: int, line: bytes) -> bool:
        _check_line(name, line)
        key = chain_entry_key(name, index)
        # The position check is one HEAD of the previous entry, never a listing.
        if index > 0 and not self.exists(chain_entry_key(name, index - 1)):
            raise ImmutabilityError(
                f"{self.url(key)}: cannot append position {index}, position {index - 1} "
                "does not exist"
            )
        try:
            written = self.put_new(key, line + b"\n")
        except ObjectExists as exc:
            raise ObjectExists(
                f"{self.url(key)}: position {index} holds a different entry; "
                "another writer appended it first",
                key,
            ) from exc
        if (index + 1) % CHECKPOINT_EVERY == 0:
            self._write_checkpoint(name, index + 1)
        return written

    def _write_checkpoint(self, name: str, count: int) -> None:
        """Put the checkpoint of the first ``count`` entries; a failure is only logged.

        Built from a read of the chain (the previous checkpoint and the entries after
        it), which runs once per CHECKPOINT_EVERY appends. The entries are the truth: a
        reader without this checkpoint reads more entries, nothing else changes.
        """
        key = chain_checkpoint_key(name, count)
        try:
            read = S3Store.chain_read(self, name)  # the class's: not a caller's spy
            data = first_lines(read.data, count)
            if read.faults or data is None:
                reason = read.faults[0] if read.faults else f"only {read.count} entries read"
                logger.warning("%s: not written: %s", self.url(key), reason)
                return
            self.put_new(key, data)
        except BuffError as exc:
            logger.warning("%s: checkpoint not written: %s", self.url(key), exc)


class _S3RangeReader(io.RawIOBase):
    """A seekable read-only file over ranged GETs, for ``pa.PythonFile``.

    pyarrow's Parquet reader asks for the footer, then coalesced column-chunk ranges,
    so a read costs a few GETs and never the whole object unless asked.
    """

    def __init__(self, store: S3Store, key: str, size: int) -> None:
        super().__init__()
        self._store = store
        self._key = key
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise OSError(errno.EINVAL, "negative seek position")
        self._pos = base + offset
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        end = self._size if size is None or size < 0 else min(self._size, self._pos + size)
        if end <= self._pos:
            return b""
        data = self._store.get_range(self._key, self._pos, end - self._pos)
        self._pos = end
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        return self.read(-1)


# -- choosing a store --------------------------------------------------------------------


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix); ValidationError for anything else."""
    if not uri.startswith("s3://"):
        raise ValidationError(f"--data {uri!r}: expected s3://bucket/prefix")
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ValidationError(f"--data {uri!r}: no bucket name; expected s3://bucket/prefix")
    if not _BUCKET_RE.fullmatch(bucket) or ".." in bucket or _IP_RE.fullmatch(bucket):
        raise ValidationError(
            f"--data {uri!r}: invalid bucket name {bucket!r} (3-63 characters of a-z, 0-9, "
            "'.' and '-', starting and ending with a letter or digit)"
        )
    prefix = prefix[:-1] if prefix.endswith("/") else prefix
    if prefix:
        try:
            validate_key(prefix)
        except ValidationError:
            raise ValidationError(
                f"--data {uri!r}: invalid prefix {prefix!r} (names of [A-Za-z0-9._=-] "
                "separated by single '/', none starting with '.')"
            ) from None
    return bucket, prefix


def _client_config() -> Any:
    from botocore.config import Config

    options: dict[str, Any] = {"connect_timeout": 10, "read_timeout": 60}
    # Explicit Config values beat the environment; set retries only if it is silent.
    if not os.environ.get("AWS_MAX_ATTEMPTS") and not os.environ.get("AWS_RETRY_MODE"):
        options["retries"] = {"mode": "standard", "max_attempts": 3}
    options["max_pool_connections"] = 16
    return Config(**options)


def store_for(data: str | os.PathLike[str], *, fsync: bool = True) -> ObjectStore:
    """The store for a ``--data`` value: a local directory or ``s3://bucket/prefix``.

    For S3, checks before returning (and before writing anything) that the URI is well
    formed, that credentials are configured, and that the bucket exists at the endpoint.
    """
    text = os.fspath(data)
    if not text or "\x00" in text:
        raise ValidationError(f"--data {text!r}: expected a directory or s3://bucket/prefix")
    scheme, sep, _ = text.partition("://")
    if not sep and not text.lower().startswith("s3:"):
        return LocalStore(Path(text), fsync=fsync)
    if scheme != "s3":
        raise ValidationError(
            f"--data {text!r}: unsupported scheme {scheme!r}; expected a directory or "
            "s3://bucket/prefix"
        )
    bucket, prefix = parse_s3_uri(text)
    try:
        import boto3
    except ImportError:
        raise ValidationError(
            f"--data {text}: S3 needs the s3 extra: pip install 'buff_dataplane[s3]'"
        ) from None
    exc_mod = _botocore_exceptions()
    try:
        session = boto3.session.Session()
        credentials = session.get_credentials()
    except exc_mod.BotoCoreError as exc:
        raise ValidationError(f"--data {text}: AWS configuration is invalid: {exc}") from exc
    if credentials is None:
        raise ValidationError(
            f"--data {text}: no AWS credentials; set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
        )
    try:
        client = session.client("s3", config=_client_config())
    except (ValueError, exc_mod.BotoCoreError) as exc:
        raise ValidationError(f"--data {text}: cannot configure the S3 client: {exc}") from exc
    store = S3Store(bucket, prefix, client)
    store.check()
    return store


def existing_store(data: str | os.PathLike[str]) -> ObjectStore:
    """The store at ``data`` for a reader: it must hold buff data already (its marker).

    A local path is checked as a data directory (``layout.resolve_root``); an S3 URI as
    :func:`store_for` does, then for the ``BUFF_DATA`` marker.
    """
    from buff_dataplane.storage.layout import MARKER, resolve_root

    store = store_for(data, fsync=False)
    if isinstance(store, LocalStore):
        return LocalStore(resolve_root(data, create=False), fsync=False)
    if not store.exists(MARKER):
        raise ValidationError(f"{store.url()} is not a buff data store (no {MARKER})")
    return store


# A process's stores for its partition tasks, so its tasks share one client: building
# one (a boto3 session, its service model, the bucket check) took ~160 ms against moto,
# more than a small task's work. Keyed by the process too (a forked child builds its
# own) and by the AWS_* variables (a changed endpoint or key is another store).
_TASK_STORES: dict[tuple[str, int, tuple[tuple[str, str], ...]], ObjectStore] = {}


def task_store(url: str) -> ObjectStore:
    """:func:`store_for` ``url`` (fsync off: tasks only read), cached per process."""
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))
    key = (url, os.getpid(), env)
    store = _TASK_STORES.get(key)
    if store is None:
        if len(_TASK_STORES) >= 8:
            _TASK_STORES.clear()
        store = _TASK_STORES[key] = store_for(url, fsync=False)
    return store
