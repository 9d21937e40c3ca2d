"""``buff replay --verify``: re-derive revisions from the raw log and compare.

For each selected revision: every recorded input segment must still hash to its recorded
SHA-256; the observed window is re-read from the window segments themselves; the bars
are rebuilt from exactly the recorded input files with the recorded config; and the
content digest and every bar's hash must equal the stored ones. Each mismatch is named:
the segment, or the bar (open time, expected and found hash, which fields differ).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from buff_dataplane.core.bars import BAR_FIELDS, Bar, bar_hash, content_digest
from buff_dataplane.core.config import BarConfig
from buff_dataplane.core.errors import BuffError, ValidationError
from buff_dataplane.pipeline.canonicalize import DEFAULT_ENGINE, run_engine
from buff_dataplane.pipeline.executors import DEFAULT_EXECUTOR, check_executor, map_partitions
from buff_dataplane.storage.bars_store import ArtifactKey, BarStore
from buff_dataplane.storage.objstore import ObjectStore, store_for, task_store
from buff_dataplane.storage.segment import SegmentFiles, segment_source

MAX_LISTED = 10


@dataclass
class ReplayItem:
    key: ArtifactKey
    revision: int
    expected_digest: str
    found_digest: str | None = None
    faults: list[str] = field(default_factory=list)
    differing_bars: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.faults and self.found_digest == self.expected_digest

    def to_dict(self) -> dict[str, Any]:
        return {
            "artifact": str(self.key),
            "revision": self.revision,
            "ok": self.ok,
            "expected_digest": self.expected_digest,
            "found_digest": self.found_digest,
            "faults": self.faults,
            "differing_bars": self.differing_bars,
        }


def select(
    store: BarStore,
    venue: str | None,
    symbol: str | None,
    timeframe: str | None,
    revision: int | None,
) -> list[tuple[ArtifactKey, int]]:
    keys = [
        k
        for k in store.artifacts()
        if venue in (None, k.venue)
        and symbol in (None, k.symbol)
        and timeframe in (None, k.timeframe)
    ]
    if not keys:
        raise ValidationError("no bar artifacts match the selection (run buff canonicalize)")
    out = []
    for k in keys:
        revs = store.revisions(k)
        if revision is not None:
            if revision not in revs:
                raise ValidationError(f"{k}: no revision {revision} (revisions: {revs})")
            revs = [revision]
        out += [(k, r) for r in revs]
    return out


def _window(
    segments: SegmentFiles, manifest: dict[str, Any], item: ReplayItem
) -> tuple[int, int] | None:
    lows, highs = [], []
    store = segments.store
    for w in manifest["window_inputs"]:
        key = segments.key(w["stream_id"], w["segment"])
        where = store.url(key)
        if not segments.exists(w["stream_id"], w["segment"]):
            item.faults.append(f"window input missing: {where}")
            continue
        source = segment_source(store, key)  # one column: ranged reads, no download
        col = pq.read_table(source, columns=["event_ts_exchange_ms"]).column(0)
        lo, hi = pc.min(col).as_py(), pc.max(col).as_py()
        if (lo, hi) != (w["ts_exchange_min"], w["ts_exchange_max"]):
            item.faults.append(f"window input {where} now spans {lo}..{hi}")
        lows.append(lo)
        highs.append(hi)
    return (min(lows), max(highs)) if lows else None


def _compare(stored: list[Bar], rebuilt: list[Bar], item: ReplayItem) -> None:
    old = {b.open_time_ms: b for b in stored}
    new = {b.open_time_ms: b for b in rebuilt}
    for t in sorted(set(old) | set(new)):
        a, b = old.get(t), new.get(t)
        if a == b:
            continue
        fields = [f for f in BAR_FIELDS if getattr(a, f) != getattr(b, f)] if a and b else ["(bar)"]
        item.differing_bars.append(
            {
                "open_time_ms": t,
                "expected": bar_hash(a) if a else None,
                "found": bar_hash(b) if b else None,
                "fields": fields,
                "expected_values": {f: getattr(a, f) for f in fields if a and f != "(bar)"},
                "found_values": {f: getattr(b, f) for f in fields if b and f != "(bar)"},
            }
        )


def verify_revision(
    segments: SegmentFiles,
    store: BarStore,
    key: ArtifactKey,
    revision: int,
    engine: str,
    threads: int | None = None,
) -> ReplayItem:
    """Re-derive one revision from the raw log in ``segments``' store and compare."""
    manifest = store.manifest(key, revision)
    item = ReplayItem(key, revision, manifest["content_digest"])
    present = []
    for i in manifest["inputs"]:
        where = segments.url(i["stream_id"], i["segment"])
        if not segments.exists(i["stream_id"], i["segment"]):
            item.faults.append(f"input missing: {where}")
            continue
        present.append(i)
        if segments.sha256(i["stream_id"], i["segment"]) != i["file_sha256"]:
            item.faults.append(f"input changed: {where} no longer hashes to its recorded SHA-256")
    try:
        stored = store.read_bars(key, revision)
    except BuffError as exc:
        item.faults.append(str(exc))
        stored = []
    if stored and content_digest(stored) != manifest["content_digest"]:
        item.faults.append("stored bars do not match the manifest's content digest")
    window = _window(segments, manifest, item)
    results = run_engine(
        engine,
        segments,
        present,
        venue=key.venue,
        symbol=key.symbol,
        timeframes=[key.timeframe],
        config=BarConfig.from_dict(manifest["config"]),
        window=window,
        threads=threads,
        gaps=manifest.get("gap_inputs", []),
    )
    rebuilt = results[key.timeframe].bars
    item.found_digest = content_digest(rebuilt)
    _compare(stored, rebuilt, item)
    return item


def _verify_task(task: tuple[str, ArtifactKey, int, str, int | None]) -> ReplayItem:
    """One revision's verification: a pure partition task (pipeline.executors).

    ``task[0]`` is the store's URL: each task opens its own store (a local directory, or
    an S3 client, which does not cross processes).
    """
    data, key, rev, engine, threads = task
    store = task_store(data)
    with SegmentFiles(store) as segments:
        return verify_revision(segments, BarStore.over(store), key, rev, engine, threads)


def replay(
    root: Path | str | ObjectStore,
    *,
    venue: str | None = None,
    symbol: str | None = None,
    timeframe: str | None = None,
    revision: int | None = None,
    engine: str = DEFAULT_ENGINE,
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
    executor: str = DEFAULT_EXECUTOR,
    workers: int | None = None,
    address: str | None = None,
) -> list[ReplayItem]:
    """Verify the selected revisions, one partition task each, reported in sorted order.

    ``root`` is a data directory, an ``s3://`` URI, or a store; raw log and bars are read
    from the same place.
    """
    check_executor(executor, workers)
    data = root if isinstance(root, ObjectStore) else store_for(root, fsync=False)
    store = BarStore.over(data)
    url = data.url()
    chosen = list(select(store, venue, symbol, timeframe, revision))
    if executor == "serial" and address is None:
        out = []
        for key, rev in chosen:
            if progress is not None:
                progress(f"{key} rev {rev}")
            out.append(_verify_task((url, key, rev, engine, threads)))
        return out
    if progress is not None:
        progress(f"{len(chosen)} revisions on {executor} workers")
    tasks = [(url, key, rev, engine, threads) for key, rev in chosen]
    return map_partitions(_verify_task, tasks, executor=executor, workers=workers, address=address)


__all__ = ["MAX_LISTED", "ReplayItem", "replay", "verify_revision"]
