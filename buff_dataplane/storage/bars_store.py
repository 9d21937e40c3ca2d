"""The revision store of canonical bars: every build that changes anything is a new,
immutable revision; earlier revisions stay readable.

::

    <root>/bars/<venue>/<symbol>/<timeframe>/rev-0001/
        bars.parquet     the bars (decimals as canonical text) and each bar's hash
        manifest.json    config and digest, exact raw input set, content digest, file
                         SHA-256, parent revision, reason, diff summary, counts
        diff.json        bars added / changed / removed against the parent, with hashes
        late.json        late trades left out of this revision (revision candidates)

The store reads and writes through an :class:`~buff_dataplane.storage.objstore.ObjectStore`:
``BarStore(root)`` is a local directory (a LocalStore), ``BarStore.over(store)`` any
store, S3 included. The keys are the paths above relative to ``<root>``, so a local tree
and an S3 prefix hold the same names and, for the same build, the same bytes.

**A revision exists when its ``manifest.json`` does.** That is the commit point on every
store: :meth:`BarStore.revisions` (and so ``latest``, ``artifacts``) count only revisions
with a manifest, and the manifest is always the last object written.

Publishing:

- On S3 (any store but a local directory) each file is written with ``put_new``, in the
  order bars.parquet, diff.json, late.json, manifest.json. A crash before the manifest
  leaves files no reader counts; publishing that revision again rewrites them (put_new
  accepts identical bytes) and completes it, or is refused if its bytes differ (an
  orphan of a different build blocks its revision number until an operator removes it).
  Before writing, the files already under the revision are compared, so a refused
  publish writes nothing.
- On a local directory a new revision is written into a temp directory (files fsynced
  and read-only) and renamed into place, as it always was. The rename publishes all four
  files at once and a crash leaves only a dot-named temp directory that no reader lists
  and that never blocks a later publish of that number: stronger than file-by-file
  put_new, which would leave visible orphans that refuse a different build. If the
  revision directory exists already (an identical retry, a revision copied from S3 half
  way), the put_new route above applies there too.

Either way a publish of an existing revision succeeds only if every byte is the same
(an idempotent retry) and otherwise raises ObjectExists (an ImmutabilityError); a
revision is never rewritten.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from buff_dataplane.core.bars import (
    BAR_FIELDS,
    TIMEFRAMES,
    Bar,
    LateCandidate,
    bar_hash,
)
from buff_dataplane.core.errors import (
    IntegrityError,
    StorageError,
    ValidationError,
)
from buff_dataplane.core.ids import validate_symbol, validate_venue
from buff_dataplane.storage import layout
from buff_dataplane.storage.objstore import LocalStore, ObjectExists, ObjectNotFound, ObjectStore

BARS_DIR = "bars"
MANIFEST = "manifest.json"  # the commit point of a revision
REASONS = (
    "initial",
    "new_data",
    "late_data",
    "backfill",
    "source_correction",
    "rebuild",
    "config_change",
)
_REV_RE = re.compile(r"rev-(\d{4,})")

BARS_SCHEMA = pa.schema(
    [
        pa.field(name, typ, nullable=nullable)
        for name, typ, nullable in (
            ("venue", pa.string(), False),
            ("symbol", pa.string(), False),
            ("timeframe", pa.string(), False),
            ("open_time_ms", pa.int64(), False),
            ("close_time_ms", pa.int64(), False),
            ("open", pa.string(), False),
            ("high", pa.string(), False),
            ("low", pa.string(), False),
            ("close", pa.string(), False),
            ("volume", pa.string(), False),
            ("quote_volume", pa.string(), False),
            ("trade_count", pa.int64(), False),
            ("taker_buy_volume", pa.string(), False),
            ("taker_buy_quote_volume", pa.string(), False),
            ("first_trade_id", pa.int64(), True),
            ("last_trade_id", pa.int64(), True),
            ("status", pa.string(), False),
            ("backfilled", pa.bool_(), False),
            ("event_count", pa.int64(), False),
            ("seq_min", pa.int64(), True),
            ("seq_max", pa.int64(), True),
            ("segments", pa.string(), False),
            ("payload_digest", pa.string(), False),
            ("bar_hash", pa.string(), False),
        )
    ],
    metadata={"buff.schema": "bars", "buff.schema_version": "1"},
)
assert tuple(BARS_SCHEMA.names[:-1]) == BAR_FIELDS, "BARS_SCHEMA must follow BAR_FIELDS"


@dataclass(frozen=True, order=True)
class ArtifactKey:
    venue: str
    symbol: str
    timeframe: str

    def __post_init__(self) -> None:
        validate_venue(self.venue)
        validate_symbol(self.symbol)
        if self.timeframe not in TIMEFRAMES:
            raise ValidationError(
                f"unknown timeframe {self.timeframe!r}: expected one of {', '.join(TIMEFRAMES)}"
            )

    def __str__(self) -> str:
        return f"{self.venue}/{self.symbol}/{self.timeframe}"


def rev_name(n: int) -> str:
    return f"rev-{n:04d}"


def bars_to_table(bars: list[Bar]) -> pa.Table:
    columns: dict[str, list[Any]] = {name: [] for name in BARS_SCHEMA.names}
    for bar in bars:
        for name in BAR_FIELDS:
            columns[name].append(getattr(bar, name))
        columns["bar_hash"].append(bar_hash(bar))
    return pa.table(columns, schema=BARS_SCHEMA)


def table_to_bars(table: pa.Table) -> list[Bar]:
    return [Bar(**{k: v for k, v in row.items() if k != "bar_hash"}) for row in table.to_pylist()]


def _canonical_json(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=True).encode() + b"\n"


class BarStore:
    """The bars/ tree of a data directory or of an object store (see the module doc)."""

    def __init__(self, root: Path | None = None, *, store: ObjectStore | None = None) -> None:
        if store is None:
            if root is None:
                raise TypeError("BarStore needs a root directory or store=")
            store = LocalStore(Path(root))
        elif root is not None:
            raise TypeError("BarStore takes a root directory or store=, not both")
        self.store: ObjectStore = store
        # Where the data lives, for messages: the directory, or the s3:// URL.
        self.root: Path | str = (
            self.store.root if isinstance(self.store, LocalStore) else self.store.url()
        )

    @classmethod
    def over(cls, store: ObjectStore) -> BarStore:
        """The bar store kept in ``store`` (a LocalStore, an S3Store...)."""
        return cls(store=store)

    def url(self, key: str = "") -> str:
        return self.store.url(key)

    @staticmethod
    def artifact_prefix(key: ArtifactKey) -> str:
        return f"{BARS_DIR}/{key.venue}/{key.symbol}/{key.timeframe}"

    def revision_prefix(self, key: ArtifactKey, revision: int) -> str:
        return f"{self.artifact_prefix(key)}/{rev_name(revision)}"

    def artifacts(self) -> list[ArtifactKey]:
        """Every artifact with at least one published revision, sorted."""
        out: set[ArtifactKey] = set()
        for k in self.store.list(BARS_DIR):
            parts = k.split("/")
            if len(parts) == 6 and parts[5] == MANIFEST and _REV_RE.fullmatch(parts[4]):
                try:
                    out.add(ArtifactKey(parts[1], parts[2], parts[3]))
                except ValidationError:
                    continue
        return sorted(out)

    def revisions(self, key: ArtifactKey) -> list[int]:
        """The published revisions of ``key``: those whose manifest.json exists."""
        prefix = self.artifact_prefix(key)
        revs = []
        for k in self.store.list(prefix):
            rev, _, name = k[len(prefix) + 1 :].partition("/")
            if name == MANIFEST and (m := _REV_RE.fullmatch(rev)):
                revs.append(int(m.group(1)))
        return sorted(revs)

    def latest(self, key: ArtifactKey) -> int | None:
        revs = self.revisions(key)
        return revs[-1] if revs else None

    def manifest(self, key: ArtifactKey, revision: int) -> dict[str, Any]:
        name = f"{self.revision_prefix(key, revision)}/{MANIFEST}"
        try:
            raw = self.store.get(name)
        except ObjectNotFound:
            known = ", ".join(str(r) for r in self.revisions(key)) or "none"
            raise ValidationError(f"{key}: no revision {revision} (revisions: {known})") from None
        url = self.store.url(name)
        try:
            data: dict[str, Any] = json.loads(raw)
        except ValueError as exc:
            raise IntegrityError(f"{url}: corrupted manifest ({exc})") from exc
        required = {"revision", "content_digest", "bars_sha256", "config", "inputs", "reason"}
        if not isinstance(data, dict) or not required <= set(data):
            raise IntegrityError(f"{url}: corrupted manifest (missing fields)")
        return data

    def read_bars(self, key: ArtifactKey, revision: int) -> list[Bar]:
        """The bars of a revision, after checking the file against its manifest."""
        manifest = self.manifest(key, revision)
        name = f"{self.revision_prefix(key, revision)}/bars.parquet"
        # One read (a memory map locally, ranged GETs on S3) serves the hash and the parse.
        with self.store.open_input(name) as fh:
            try:
                data = fh.read_buffer()
            except OSError as exc:
                raise StorageError(f"cannot read {self.store.url(name)}: {exc}") from exc
            if hashlib.sha256(data).hexdigest() != manifest["bars_sha256"]:
                raise IntegrityError(
                    f"{self.store.url(name)}: file SHA-256 differs from its manifest"
                )
            return table_to_bars(pq.read_table(pa.BufferReader(data)))

    def read_late(self, key: ArtifactKey, revision: int) -> list[LateCandidate]:
        raw = self.store.get(f"{self.revision_prefix(key, revision)}/late.json")
        return msgspec.json.decode(raw, type=list[LateCandidate])

    def write_revision(
        self,
        key: ArtifactKey,
        revision: int,
        bars: list[Bar],
        manifest: dict[str, Any],
        diff: dict[str, Any],
        late: list[LateCandidate],
    ) -> dict[str, Any]:
        """Publish a revision; return its final manifest (with file hashes). Never overwrites.

        An identical second publish is an idempotent retry; different bytes raise
        ObjectExists and change nothing.
        """
        sink = pa.BufferOutputStream()
        pq.write_table(bars_to_table(bars), sink, compression="zstd", store_schema=True)
        parquet = sink.getvalue().to_pybytes()
        manifest = {**manifest, "bars_sha256": hashlib.sha256(parquet).hexdigest()}
        files = {
            "bars.parquet": parquet,
            "diff.json": _canonical_json(diff),
            "late.json": msgspec.json.encode(late) + b"\n",
            MANIFEST: _canonical_json(manifest),
        }
        prefix = self.revision_prefix(key, revision)
        if not (
            isinstance(self.store, LocalStore) and _rename_into_place(self.store, prefix, files)
        ):
            self._put_files(prefix, files)
        return manifest

    def _put_files(self, prefix: str, files: dict[str, bytes]) -> None:
        """put_new every file, the manifest last; refuse before writing if any differ."""
        present = set(self.store.list(prefix))
        for name, data in files.items():
            k = f"{prefix}/{name}"
            if k in present and self.store.get(k) != data:
                state = "" if f"{prefix}/{MANIFEST}" in present else " (an unfinished publish)"
                raise ObjectExists(
                    f"{self.store.url(k)}: revision exists{state} with different bytes; "
                    "a revision is never rewritten",
                    k,
                )
        for name, data in files.items():  # dict order: the manifest is last
            self.store.put_new(f"{prefix}/{name}", data)


def _rename_into_place(store: LocalStore, prefix: str, files: dict[str, bytes]) -> bool:
    """Publish a new revision directory with one rename; False if it already exists."""
    final = store.path(prefix)
    if final.exists():
        return False
    directory = final.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create {directory}: {exc.strerror}") from exc
    tmp = directory / f"{layout.TMP_PREFIX}{final.name}.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        for name, data in files.items():
            layout.write_file_atomic(tmp / name, data, fsync=store.fsync, read_only=True)
        os.rename(tmp, final)  # fails if final exists and is not empty
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
            return False  # another writer published it first: compare, file by file
        raise StorageError(f"{final}: cannot publish ({exc.strerror})") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if store.fsync:
        layout.fsync_dir(directory)
    return True


def diff_bars(before: list[Bar], after: list[Bar]) -> dict[str, Any]:
    """Bars added / changed / removed by open time, with before and after hashes."""
    old = {b.open_time_ms: b for b in before}
    new = {b.open_time_ms: b for b in after}
    added = [{"open_time_ms": t, "after": bar_hash(new[t])} for t in sorted(set(new) - set(old))]
    removed = [{"open_time_ms": t, "before": bar_hash(old[t])} for t in sorted(set(old) - set(new))]
    changed = []
    for t in sorted(set(old) & set(new)):
        if old[t] != new[t]:
            fields = [f for f in BAR_FIELDS if getattr(old[t], f) != getattr(new[t], f)]
            changed.append(
                {
                    "open_time_ms": t,
                    "before": bar_hash(old[t]),
                    "after": bar_hash(new[t]),
                    "fields": fields,
                }
            )
    return {"added": added, "changed": changed, "removed": removed}
