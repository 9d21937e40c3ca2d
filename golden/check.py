"""make golden-check / golden-update: the golden regression check.

For every case of golden.make: the committed captures must equal what the generator makes
now; the raw log built from them must verify clean; each stream's event count, seq range,
exchange-time range and payload digest must equal golden/digests.json; bars of every
golden timeframe are built (then rebuilt applying late data, then with the case's gap
ledger facts: an unresolved window, a conflict), every revision's content
digest must equal golden/digests.json, and replay --verify must pass on every revision
with both engines. An entry
in digests.json with no case, or a case with no entry, fails the check. Only
``--update`` rewrites digests.json, and it prints what changed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from buff_dataplane.core.ids import StreamId
from buff_dataplane.feeds.registry import parser_for
from buff_dataplane.pipeline.canonicalize import canonicalize
from buff_dataplane.pipeline.executors import executor_session
from buff_dataplane.pipeline.importer import import_file
from buff_dataplane.pipeline.replay import replay
from buff_dataplane.storage.gap_ledger import ledger_for
from buff_dataplane.storage.log import RawLog, open_log
from buff_dataplane.storage.objstore import ObjectStore, task_store
from buff_dataplane.storage.verify import verify_log
from golden.make import (
    BACKFILLS,
    CASES,
    LEDGERS,
    backfill_path,
    capture_path,
    render,
    render_backfill,
)

DIGESTS = Path(__file__).resolve().parent / "digests.json"


ENGINES = ("sql", "reference")
TIMEFRAMES = ("1m", "5m", "1h", "1d")


@dataclass(frozen=True)
class Target:
    """Where and how a golden case is built: the storage and the executor.

    ``data`` is None for a fresh local temp directory, else a store URL (``s3://...``)
    whose log is written through a local state directory. The digests must not depend on
    either, nor on ``partition``: tests/test_golden_targets.py builds every case on each
    combination, tests/pipeline/test_day_partitions.py with day partitions.
    """

    data: str | None = None
    executor: str = "serial"
    workers: int | None = None
    partition: str = "stream"  # canonicalize's tasks: per stream, or per (stream, UTC day)


def _open(target: Target, data: Path, *, readonly: bool = False) -> RawLog:
    if target.data is None:
        return open_log(data, readonly=readonly)
    store = task_store(target.data)
    if readonly:
        return open_log(store, readonly=True)
    return open_log(store, state_dir=data.parent / "state")


def build_case(name: str, data: Path, target: Target = Target()) -> None:
    """The golden raw log of ``name`` as captured (its back-fill comes later)."""
    venue, _ = CASES[name]
    with _open(target, data) as log:
        import_file(log, capture_path(name), venue=venue, fmt="ndjson")


def append_backfill(name: str, data: Path, target: Target = Target()) -> None:
    """Append the case's REST back-fill to its trade stream, as the back-fill job would."""
    venue, _ = CASES[name]
    symbol, _ = BACKFILLS[name]
    parser = parser_for(venue)
    with _open(target, data) as log:
        writer = log.writer(StreamId(venue, "trade", symbol))
        for line in backfill_path(name).read_bytes().splitlines():
            item = json.loads(line)
            raw = item["raw"].encode()
            writer.append(
                raw,
                parser.parse(raw).event_ts_exchange_ms,
                item["recv_ms"],
                source="rest_backfill",
                origin="golden:rest",
            )


def digests_of(name: str, target: Target = Target()) -> dict[str, object]:
    """Build case ``name`` on ``target`` and return its digests (digests.json's entry)."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        executor_session(target.executor, workers=target.workers),
    ):
        data = Path(tmp) / "data"
        build_case(name, data, target)
        # Stages: bars as captured; after the back-fill; then applying late data.
        bars = _build_bars(target, data, CASES[name][0], {})
        if name in BACKFILLS:
            append_backfill(name, data, target)
            bars.update(_build_bars(target, data, CASES[name][0], {}))
        bars.update(_build_bars(target, data, CASES[name][0], {"apply_late": True}))
        if name in LEDGERS:  # facts the repair could not settle: a stage of their own
            with _open(target, data) as log:
                ledger_for(log).record(LEDGERS[name]())
            bars.update(_build_bars(target, data, CASES[name][0], {}))
        where: Path | ObjectStore = data if target.data is None else task_store(target.data)
        _replay_all(where, target)
        report = verify_log(where)
        if not report.ok:
            raise SystemExit(f"golden {name}: verify-log failed: {report.faults[0]}")
        log = _open(target, data, readonly=True)
        streams: dict[str, object] = {}
        for sid in log.stream_ids():
            entries = log.manifest(sid)
            digest = hashlib.sha256()
            for e in entries:
                digest.update(bytes.fromhex(e.payload_digest))
            ex_min = [e.ts_exchange_min for e in entries if e.ts_exchange_min is not None]
            ex_max = [e.ts_exchange_max for e in entries if e.ts_exchange_max is not None]
            streams[str(sid)] = {
                "events": sum(e.rows for e in entries),
                "seq_to": entries[-1].seq_to,
                "segments": len(entries),
                "ts_exchange_min": min(ex_min) if ex_min else None,
                "ts_exchange_max": max(ex_max) if ex_max else None,
                "payload_digest_chain": digest.hexdigest(),
            }
        log.close()
    out: dict[str, object] = {
        "capture_sha256": hashlib.sha256(capture_path(name).read_bytes()).hexdigest(),
        "streams": streams,
        "bars": bars,
    }
    if name in BACKFILLS:
        out["backfill_sha256"] = hashlib.sha256(backfill_path(name).read_bytes()).hexdigest()
    return out


def _build_bars(
    target: Target, data: Path, venue: str, overrides: dict[str, object]
) -> dict[str, object]:
    out: dict[str, object] = {}
    log = _open(target, data, readonly=True)
    outcomes = canonicalize(
        log,
        venue=venue,
        timeframes=TIMEFRAMES,
        overrides=overrides,
        engine=ENGINES[0],
        executor=target.executor,
        workers=target.workers,
        partition=target.partition,
    )
    log.close()
    for o in outcomes:
        if o.revision is not None:
            out[f"{o.key} rev {o.revision}"] = {
                "reason": o.reason,
                "content_digest": o.content_digest,
                "status_counts": o.status_counts,
                "late_candidates": o.late_candidates,
                "duplicates": o.duplicates,
                "conflicts": o.conflicts,
            }
    return out


def _replay_all(data: Path | ObjectStore, target: Target) -> None:
    """replay --verify on every revision, with every engine: all must match."""
    for engine in ENGINES:
        for item in replay(data, engine=engine, executor=target.executor, workers=target.workers):
            if not item.ok:
                raise SystemExit(
                    f"golden: replay --verify ({engine}) failed for {item.key} rev "
                    f"{item.revision}: {item.faults[:1]} {item.differing_bars[:1]}"
                )


def _diff(old: object, new: object, path: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            out += _diff(old.get(key), new.get(key), f"{path}/{key}")
        return out
    return [] if old == new else [f"{path}: {old!r} -> {new!r}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--update", action="store_true", help="rewrite golden/digests.json")
    args = parser.parse_args(argv)
    problems: list[str] = []
    for name in sorted(CASES):
        path = capture_path(name)
        if not path.exists() or path.read_bytes() != render(name):
            problems.append(f"{path.name}: differs from what golden.make generates now")
        if name in BACKFILLS and (
            not backfill_path(name).exists()
            or backfill_path(name).read_bytes() != render_backfill(name)
        ):
            problems.append(f"{backfill_path(name).name}: differs from what golden.make makes")
    if problems and not args.update:
        print("\n".join(f"FAIL {p}" for p in problems))
        return 1
    current = {name: digests_of(name) for name in sorted(CASES)}
    stored = json.loads(DIGESTS.read_text()) if DIGESTS.exists() else {}
    changes = _diff(stored, current)
    if args.update:
        DIGESTS.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
        print("\n".join(changes) if changes else "golden digests unchanged")
        return 0
    for name in sorted(set(stored) - set(current)):
        problems.append(f"digests.json entry {name!r} has no golden case (unused)")
    for name in sorted(set(current) - set(stored)):
        problems.append(f"golden case {name!r} has no entry in digests.json")
    problems += [c for c in changes if c.split("/")[1] in stored and c.split("/")[1] in current]
    for p in problems:
        print(f"FAIL {p}")
    if problems:
        return 1
    events = sum(
        s["events"]
        for c in current.values()
        for s in c["streams"].values()  # type: ignore[attr-defined]
    )
    print(f"golden-check OK: {len(current)} cases, {events} events, digests match")
    return 0


if __name__ == "__main__":
    sys.exit(main())
