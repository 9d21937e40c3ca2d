"""The revision store of canonical bars: every build that changes anything is a new,
immutable revision; earlier revisions stay readable.

::

    <root>/bars/<venue>/<symbol>/<timeframe>/rev-0001/
        bars.parquet     the bars (decimals as canonical text) and each bar's hash
        manifest.json    config and digest, exact raw input set, content digest, file
                         SHA-256, parent revision, reason, diff summary, counts
        diff.json        bars added / changed / removed against the parent, with hashes
        late.json        late trades left out of this revision (revision candidates)

A revision is written into a temp directory (files fsynced and made read-only) and
renamed into place; an existing revision directory makes the rename fail, so a revision
is never rewritten.
"""

from __future__ import annotations

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
    ImmutabilityError,
    IntegrityError,
    StorageError,
    ValidationError,
)
from buff_dataplane.core.ids import validate_symbol, validate_venue
from buff_dataplane.storage import layout

BARS_DIR = "bars"
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
    """The bars/ tree of a data directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.base = root / BARS_DIR

    def artifact_dir(self, key: ArtifactKey) -> Path:
        return self.base / key.venue / key.symbol / key.timeframe

    def artifacts(self) -> list[ArtifactKey]:
        out: list[ArtifactKey] = []
        if not self.base.is_dir():
            return out
        for path in sorted(self.base.glob("*/*/*")):
            if path.is_dir():
                try:
                    out.append(ArtifactKey(path.parent.parent.name, path.parent.name, path.name))
                except ValidationError:
                    continue
        return sorted(out)

    def revisions(self, key: ArtifactKey) -> list[int]:
        directory = self.artifact_dir(key)
        if not directory.is_dir():
            return []
        revs = [int(m.group(1)) for p in directory.iterdir() if (m := _REV_RE.fullmatch(p.name))]
        return sorted(revs)

    def latest(self, key: ArtifactKey) -> int | None:
        revs = self.revisions(key)
        return revs[-1] if revs else None

    def manifest(self, key: ArtifactKey, revision: int) -> dict[str, Any]:
        path = self.artifact_dir(key) / rev_name(revision) / "manifest.json"
        if not path.exists():
            known = ", ".join(str(r) for r in self.revisions(key)) or "none"
            raise ValidationError(f"{key}: no revision {revision} (revisions: {known})")
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except (ValueError, OSError) as exc:
            raise IntegrityError(f"{path}: corrupted manifest ({exc})") from exc
        required = {"revision", "content_digest", "bars_sha256", "config", "inputs", "reason"}
        if not isinstance(data, dict) or not required <= set(data):
            raise IntegrityError(f"{path}: corrupted manifest (missing fields)")
        return data

    def read_bars(self, key: ArtifactKey, revision: int) -> list[Bar]:
        """The bars of a revision, after checking the file against its manifest."""
        manifest = self.manifest(key, revision)
        path = self.artifact_dir(key) / rev_name(revision) / "bars.parquet"
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror}") from exc
        if hashlib.sha256(data).hexdigest() != manifest["bars_sha256"]:
            raise IntegrityError(f"{path}: file SHA-256 differs from its manifest")
        return table_to_bars(pq.read_table(pa.py_buffer(data)))

    def read_late(self, key: ArtifactKey, revision: int) -> list[LateCandidate]:
        path = self.artifact_dir(key) / rev_name(revision) / "late.json"
        return msgspec.json.decode(path.read_bytes(), type=list[LateCandidate])

    def write_revision(
        self,
        key: ArtifactKey,
        revision: int,
        bars: list[Bar],
        manifest: dict[str, Any],
        diff: dict[str, Any],
        late: list[LateCandidate],
    ) -> dict[str, Any]:
        """Publish a revision; return its final manifest (with file hashes). Never overwrites."""
        directory = self.artifact_dir(key)
        final = directory / rev_name(revision)
        if final.exists():
            raise ImmutabilityError(f"{final} exists; a revision is never rewritten")
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f"{layout.TMP_PREFIX}{rev_name(revision)}.{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        sink = pa.BufferOutputStream()
        pq.write_table(bars_to_table(bars), sink, compression="zstd", store_schema=True)
        parquet = sink.getvalue().to_pybytes()
        manifest = {**manifest, "bars_sha256": hashlib.sha256(parquet).hexdigest()}
        files = {
            "bars.parquet": parquet,
            "diff.json": _canonical_json(diff),
            "late.json": msgspec.json.encode(late) + b"\n",
            "manifest.json": _canonical_json(manifest),
        }
        for name, data in sorted(files.items()):
            layout.write_file_atomic(tmp / name, data, fsync=True, read_only=True)
        try:
            os.rename(tmp, final)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ImmutabilityError(f"{final}: cannot publish ({exc.strerror})") from exc
        layout.fsync_dir(directory)
        return manifest


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
