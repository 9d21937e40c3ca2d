"""``buff canonicalize``: build bars from the raw log into the revision store.

For each (venue, symbol) with a trade stream: the input set is every sealed segment of
that stream (names, seq ranges, file SHA-256s and payload digests are recorded); the
observed window is the exchange-time range of the symbol's sealed feed (every channel
but ``control``). Each timeframe's bars are compared with the latest revision: unchanged
inputs and config write nothing; otherwise a new revision is published with a reason:

=================  ======================================================================
``initial``        the first revision of the artifact
``rebuild``        asked for with ``--rebuild``
``late_data``      the config changed only in ``apply_late`` and bars changed (late
                   trades applied; with no late trades nothing is written)
``config_change``  any other config change (lateness, range)
``backfill``       new inputs, and a changed or added bar now holds back-filled trades
``new_data``       new inputs otherwise (the capture went on; edge bars completed)
=================  ======================================================================

Options left unset are inherited from the latest revision's config, so a late-data
revision is not undone by the next plain build.

A build task is one stream (``partition="stream"``), or one stream and UTC day of exchange
time (``"day"``) whose parts are combined into the same bars (core.day_bars; a stream the
days cannot give exactly is built whole). Either way the revision records the stream's
inputs, and replay rebuilds it whole.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from buff_dataplane import __version__
from buff_dataplane.core.bars import (
    TIMEFRAMES,
    Bar,
    BuildResult,
    apply_gap_facts,
    content_digest,
    timeframe_ms,
)
from buff_dataplane.core.config import BarConfig
from buff_dataplane.core.day_bars import DayPart, combine_days, segment_days
from buff_dataplane.core.errors import ValidationError
from buff_dataplane.core.ids import StreamId, validate_symbol, validate_venue
from buff_dataplane.core.venues import id_rules
from buff_dataplane.pipeline.executors import DEFAULT_EXECUTOR, check_executor, map_partitions
from buff_dataplane.storage.bars_store import ArtifactKey, BarStore, diff_bars
from buff_dataplane.storage.gap_ledger import ledger_for
from buff_dataplane.storage.log import RawLog
from buff_dataplane.storage.manifest import ManifestEntry
from buff_dataplane.storage.objstore import task_store
from buff_dataplane.storage.segment import SegmentFiles

ENGINES = ("sql", "reference")
DEFAULT_ENGINE = "sql"
# A task per stream, or per (stream, UTC day of exchange time) combined (core.day_bars).
PARTITIONS = ("stream", "day")
DEFAULT_PARTITION = "stream"
# DuckDB spills past this; it keeps a build's RSS bounded however large the log
# (bench: 10M events peak 1.2 GB with 1GB, 2.7 GB with DuckDB's default of 80% of RAM).
DEFAULT_MEMORY_LIMIT = "1GB"

Engine = Callable[..., dict[str, BuildResult]]


def engine_for(name: str) -> Engine:
    if name == "sql":
        from buff_dataplane.pipeline.bars_sql import build_bars_sql

        return build_bars_sql  # type: ignore[no-any-return,unused-ignore]
    if name == "reference":
        from buff_dataplane.pipeline.bars_ref import build_bars_ref

        return build_bars_ref
    raise ValidationError(f"unknown engine {name!r}: expected one of {', '.join(ENGINES)}")


@dataclass
class Outcome:
    key: ArtifactKey
    revision: int | None  # None: nothing written
    reason: str  # or "unchanged"
    bars: int
    status_counts: dict[str, int]
    late_candidates: int
    duplicates: int
    conflicts: list[int]
    content_digest: str
    diff: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "artifact": str(self.key),
            "revision": self.revision,
            "reason": self.reason,
            "bars": self.bars,
            "status_counts": self.status_counts,
            "late_candidates": self.late_candidates,
            "duplicates": self.duplicates,
            "conflicts": self.conflicts,
            "content_digest": self.content_digest,
            "diff": self.diff,
        }


def trade_inputs(log: RawLog, venue: str, symbol: str) -> list[dict[str, Any]]:
    sid = StreamId(venue, "trade", symbol)
    return _inputs_of(sid, log.manifest(sid))


def _inputs_of(sid: StreamId, entries: Sequence[ManifestEntry]) -> list[dict[str, Any]]:
    return [
        {
            "stream_id": str(sid),
            "segment": e.segment,
            "seq_from": e.seq_from,
            "seq_to": e.seq_to,
            "file_sha256": e.file_sha256,
            "payload_digest": e.payload_digest,
        }
        for e in entries
    ]


def window_inputs(log: RawLog, venue: str, symbol: str) -> list[dict[str, Any]]:
    out = []
    for sid in log.stream_ids():
        if sid.venue != venue or sid.symbol != symbol or sid.channel == "control":
            continue
        for e in log.manifest(sid):
            if e.ts_exchange_min is None or e.ts_exchange_max is None:
                continue
            out.append(
                {
                    "stream_id": str(sid),
                    "segment": e.segment,
                    "file_sha256": e.file_sha256,
                    "ts_exchange_min": e.ts_exchange_min,
                    "ts_exchange_max": e.ts_exchange_max,
                }
            )
    return out


def window_of(inputs: list[dict[str, Any]]) -> tuple[int, int] | None:
    if not inputs:
        return None
    return min(i["ts_exchange_min"] for i in inputs), max(i["ts_exchange_max"] for i in inputs)


def gap_inputs(log: RawLog, venue: str, symbol: str) -> list[dict[str, Any]]:
    """The ledger facts a build of the symbol's trade stream uses.

    Unresolved gaps and conflicts (their buckets are GAP_UNRESOLVED / CONFLICT), and
    back-filled range edges (the venue confirmed the time before the stream's first and
    after its last trade: the observed window extends over them). They are an input like
    the segments: recorded in the revision's manifest, so a replay applies exactly the
    facts the build applied.
    """
    sid = str(StreamId(venue, "trade", symbol))
    rows = [
        g
        for g in ledger_for(log).rows(stream_id=sid)
        if g.status == "UNRESOLVED" or (g.status == "BACKFILLED" and g.kind == "edge")
    ]
    return [
        {
            "gap_id": g.gap_id,
            "kind": g.kind,
            "status": g.status,
            "id_from": g.id_from,
            "id_to": g.id_to,
            "ts_from_ms": g.ts_from_ms,
            "ts_to_ms": g.ts_to_ms,
            "reason": g.reason,
        }
        for g in sorted(rows, key=lambda g: g.gap_id)
    ]


def effective_window(
    window: tuple[int, int] | None, gaps: Sequence[dict[str, Any]]
) -> tuple[int, int] | None:
    """The observed window, extended over back-filled edges that adjoin or overlap it."""
    covered = sorted(
        (g["ts_from_ms"], g["ts_to_ms"] + 1)
        for g in gaps
        if g.get("status") == "BACKFILLED" and g["kind"] == "edge"
    )
    if window is None:
        return None
    lo, hi = window
    for a, b in covered:  # sorted by start: a head edge first, then a tail edge
        if a <= lo <= b:
            lo = a
    for a, b in reversed(covered):
        if a <= hi <= b:
            hi = b
    return lo, hi


def schedule_for(config: BarConfig, timeframe: str) -> tuple[int, int] | None:
    """The config's range aligned outward to the timeframe, or None for the default."""
    lo, hi = config.range_from_ms, config.range_to_ms
    if lo is None and hi is None:
        return None
    if lo is None or hi is None:
        raise ValidationError("give both --from and --to, or neither")
    tf = timeframe_ms(timeframe)
    return lo - lo % tf, hi + (-hi) % tf


def _engine_setup(
    engine: str,
    venue: str,
    window: tuple[int, int] | None,
    gaps: Sequence[dict[str, Any]],
    threads: int | None,
    memory_limit: str | None,
) -> tuple[str, tuple[int, int] | None, dict[str, Any]]:
    """The engine that builds ``venue``, the effective window and the engine's knobs."""
    rules = id_rules(venue)
    if engine == "sql" and not rules.ids_ordered:
        # The SQL engine keys trades by 64-bit ids; UUID ids (Bybit) are 128-bit. Both
        # engines give the same bars, so the reference builds these (slower, exact).
        engine = "reference"
    engine_for(engine)
    conflicts = [g for g in gaps if g["kind"] == "conflict"]
    knobs: dict[str, Any] = dict(rules._asdict())
    if conflicts:
        knobs["exclude_ids"] = sorted({g["id_from"] for g in conflicts})
    if engine == "sql":
        knobs["memory_limit"] = memory_limit or DEFAULT_MEMORY_LIMIT
        if threads:
            knobs["threads"] = threads
    return engine, effective_window(window, gaps), knobs


def _by_range(config: BarConfig, timeframes: Sequence[str]) -> list[tuple[Any, list[str]]]:
    """The timeframes grouped by schedule (the range aligns to each), in a fixed order."""
    by_range: dict[tuple[int, int] | None, list[str]] = {}
    for tf in timeframes:
        by_range.setdefault(schedule_for(config, tf), []).append(tf)
    return sorted(by_range.items(), key=lambda kv: str(kv[0]))


def _with_gap_facts(
    out: dict[str, BuildResult], gaps: Sequence[dict[str, Any]]
) -> dict[str, BuildResult]:
    if not gaps:
        return out
    unresolved = [
        (g["ts_from_ms"], g["ts_to_ms"])
        for g in gaps
        if g["kind"] != "conflict" and g.get("status", "UNRESOLVED") == "UNRESOLVED"
    ]
    conflicted = [(g["ts_from_ms"], g["ts_to_ms"]) for g in gaps if g["kind"] == "conflict"]
    return {
        tf: msgspec.structs.replace(
            r, bars=apply_gap_facts(r.bars, sorted(unresolved), sorted(conflicted))
        )
        for tf, r in out.items()
    }


def run_engine(
    engine: str,
    segments: SegmentFiles,
    inputs: list[dict[str, Any]],
    *,
    venue: str,
    symbol: str,
    timeframes: Sequence[str],
    config: BarConfig,
    window: tuple[int, int] | None,
    threads: int | None = None,
    memory_limit: str | None = None,
    gaps: Sequence[dict[str, Any]] = (),
) -> dict[str, BuildResult]:
    files = [segments.path(i["stream_id"], i["segment"]) for i in inputs]
    engine, window, knobs = _engine_setup(engine, venue, window, gaps, threads, memory_limit)
    build = engine_for(engine)
    out: dict[str, BuildResult] = {}
    for range_ms, tfs in _by_range(config, timeframes):
        out.update(
            build(
                files,
                venue=venue,
                symbol=symbol,
                timeframes=tfs,
                allowed_lateness_ms=config.allowed_lateness_ms,
                apply_late=config.apply_late,
                window=window,
                range_ms=range_ms,
                **knobs,
            )
        )
    return _with_gap_facts(out, gaps)


def run_day_engine(
    engine: str,
    segments: SegmentFiles,
    inputs: list[dict[str, Any]],
    ranges: Sequence[tuple[int, int]],
    day_ms: int,
    *,
    venue: str,
    symbol: str,
    timeframes: Sequence[str],
    config: BarConfig,
    window: tuple[int, int] | None,
    threads: int | None = None,
    memory_limit: str | None = None,
    gaps: Sequence[dict[str, Any]] = (),
) -> dict[str, DayPart]:
    """One UTC day's parts of the stream's bars (core.day_bars): ``inputs`` are the
    segments whose manifest exchange-time range (``ranges``) reaches the day."""
    files = [segments.path(i["stream_id"], i["segment"]) for i in inputs]
    engine, window, knobs = _engine_setup(engine, venue, window, gaps, threads, memory_limit)
    if engine == "sql":
        from buff_dataplane.pipeline.bars_sql import build_day_sql as build_day
    else:
        from buff_dataplane.pipeline.bars_ref import build_day_ref as build_day  # type: ignore[assignment]
    return build_day(
        files,
        list(ranges),
        day_ms,
        venue=venue,
        symbol=symbol,
        timeframes=timeframes,
        allowed_lateness_ms=config.allowed_lateness_ms,
        apply_late=config.apply_late,
        window=window,
        **knobs,
    )


def combine_day_parts(
    parts: Sequence[dict[str, DayPart]],
    *,
    venue: str,
    symbol: str,
    timeframes: Sequence[str],
    config: BarConfig,
    window: tuple[int, int] | None,
    gaps: Sequence[dict[str, Any]] = (),
) -> dict[str, BuildResult] | None:
    """What run_engine returns for the whole stream, from the parts of every day (sorted
    by day); None when a timeframe cannot be combined exactly (core.day_bars)."""
    window = effective_window(window, gaps)
    ids_contiguous = id_rules(venue).ids_contiguous
    out: dict[str, BuildResult] = {}
    for range_ms, tfs in _by_range(config, timeframes):
        for tf in tfs:
            result = combine_days(
                [p[tf] for p in parts],
                venue=venue,
                symbol=symbol,
                timeframe=tf,
                window=window,
                range_ms=range_ms,
                ids_contiguous=ids_contiguous,
            )
            if result is None:
                return None
            out[tf] = result
    return _with_gap_facts(out, gaps)


def _status_counts(bars: list[Bar]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for bar in bars:
        counts[bar.status] = counts.get(bar.status, 0) + 1
    return dict(sorted(counts.items()))


def _reason(
    parent: dict[str, Any] | None,
    config: BarConfig,
    inputs: list[dict[str, Any]],
    window_in: list[dict[str, Any]],
    gaps_in: list[dict[str, Any]],
    diff: dict[str, Any],
    bars: list[Bar],
    rebuild: bool,
) -> str | None:
    if parent is None:
        return "initial"
    if rebuild:
        return "rebuild"
    if parent["config_digest"] != config.digest():
        old = BarConfig.from_dict(parent["config"])
        only_late = BarConfig.from_dict({**old.to_dict(), "apply_late": config.apply_late})
        return "late_data" if only_late == config else "config_change"
    if parent["inputs"] == inputs and parent["window_inputs"] == window_in:
        if parent.get("gap_inputs", []) == gaps_in or not any(diff.values()):
            return None
        return "backfill"  # the repair's outcome changed: a gap given up, a conflict found
    touched = {d["open_time_ms"] for d in diff["added"] + diff["changed"]}
    if any(b.backfilled for b in bars if b.open_time_ms in touched):
        return "backfill"
    return "new_data"


def canonicalize(
    log: RawLog,
    *,
    venue: str,
    symbols: Sequence[str] | None = None,
    timeframes: Sequence[str] = ("1m",),
    overrides: dict[str, Any] | None = None,
    rebuild: bool = False,
    engine: str = DEFAULT_ENGINE,
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
    executor: str = DEFAULT_EXECUTOR,
    workers: int | None = None,
    address: str | None = None,
    partition: str = DEFAULT_PARTITION,
) -> list[Outcome]:
    """Build and publish bars; ``overrides`` are BarConfig fields given on the command line.

    Each symbol's build is a partition task run by ``executor`` (pipeline.executors);
    revisions are published here, in sorted order, after every build has returned. With
    ``partition="day"`` a symbol's build is one task per UTC day of exchange time, whose
    parts are combined in (symbol, day) order into the same bars (core.day_bars); a symbol
    whose days cannot be combined exactly is built whole, as with ``"stream"``.
    """
    validate_venue(venue)
    check_executor(executor, workers)
    if partition not in PARTITIONS:
        raise ValidationError(
            f"unknown partition {partition!r}: expected one of {', '.join(PARTITIONS)}"
        )
    for tf in timeframes:
        timeframe_ms(tf)
    if len(set(timeframes)) != len(timeframes):
        raise ValidationError(f"timeframes repeat: {', '.join(timeframes)}")
    available = sorted(
        s.symbol for s in log.stream_ids() if s.venue == venue and s.channel == "trade"
    )
    if symbols is None:
        chosen = available
    else:
        chosen = sorted({validate_symbol(s) for s in symbols})
        missing = [s for s in chosen if s not in available]
        if missing:
            raise ValidationError(
                f"no trade stream for {', '.join(missing)} on {venue} "
                f"(have: {', '.join(available) or 'none'})"
            )
    if not chosen:
        raise ValidationError(f"no trade streams for venue {venue} in {log.url}")
    store = BarStore.over(log.store)
    plans = [_plan(log, store, venue, symbol, timeframes, overrides) for symbol in chosen]
    tasks = [
        _BuildTask(engine, log.url, plan.inputs, venue, plan.symbol, tuple(tfs), cfg,
                   plan.window, plan.gaps_in, threads)
        for plan in plans
        for cfg, tfs in plan.by_config.items()
    ]  # fmt: skip
    if progress is not None:
        for plan in plans:
            progress(f"{venue}/{plan.symbol}: building {', '.join(plan.configs)}")
    results: dict[tuple[str, str], BuildResult] = {}
    if partition == "day":
        tasks = _build_by_day(plans, tasks, results, executor, workers, address)
    for task, built in zip(
        tasks,
        map_partitions(_build, tasks, executor=executor, workers=workers, address=address),
        strict=True,
    ):
        for tf, result in built.items():
            results[(task.symbol, tf)] = result
    outcomes: list[Outcome] = []
    for plan in plans:  # published in sorted (symbol, timeframe) order, whatever ran them
        for key in plan.keys:
            outcomes.append(
                _publish(
                    store,
                    key,
                    plan.parents[key],
                    results[(plan.symbol, key.timeframe)],
                    plan.configs[key.timeframe],
                    plan.inputs,
                    plan.window_in,
                    plan.gaps_in,
                    plan.window,
                    rebuild,
                )
            )
    return outcomes


def _build_by_day(
    plans: Sequence[_SymbolPlan],
    tasks: list[_BuildTask],
    results: dict[tuple[str, str], BuildResult],
    executor: str,
    workers: int | None,
    address: str | None,
) -> list[_BuildTask]:
    """Build ``tasks`` by UTC day into ``results``; return the tasks to build whole."""
    ranges = {plan.symbol: plan.ranges for plan in plans}
    whole: list[_BuildTask] = []
    split: list[tuple[_BuildTask, list[_DayTask]]] = []
    for task in tasks:
        day_tasks = _day_tasks(task, ranges[task.symbol])
        if day_tasks is None:
            whole.append(task)
        else:
            split.append((task, day_tasks))
    flat = [d for _, days in split for d in days]  # sorted (symbol, config, day)
    parts = iter(
        map_partitions(_build_day, flat, executor=executor, workers=workers, address=address)
    )
    for task, days in split:
        combined = combine_day_parts(
            [next(parts) for _ in days],
            venue=task.venue,
            symbol=task.symbol,
            timeframes=task.timeframes,
            config=task.config,
            window=task.window,
            gaps=task.gaps,
        )
        if combined is None:
            whole.append(task)  # the days cannot give the whole build exactly
            continue
        for tf, result in combined.items():
            results[(task.symbol, tf)] = result
    return whole


def _day_tasks(
    task: _BuildTask, ranges: Sequence[tuple[int | None, int | None]]
) -> list[_DayTask] | None:
    """One task per UTC day a segment's exchange-time range reaches, each given those
    segments; None when the stream is built whole: no segments, a segment without
    exchange times, or segments whose seq ranges overlap (the order of trades across
    segments would then rest on more than ``(ts, ingest_seq, index)``)."""
    known = [(lo, hi) for lo, hi in ranges if lo is not None and hi is not None]
    if not task.inputs or len(known) != len(ranges):
        return None
    seqs = sorted((i["seq_from"], i["seq_to"]) for i in task.inputs)
    if any(b[0] <= a[1] for a, b in itertools.pairwise(seqs)):
        return None
    days = sorted({d for lo, hi in known for d in segment_days(lo, hi)})
    out = []
    for day in days:
        mine = [(i, r) for i, r in zip(task.inputs, known, strict=True) if day in segment_days(*r)]
        out.append(
            _DayTask(
                dataclasses.replace(task, inputs=[i for i, _ in mine]), day, [r for _, r in mine]
            )
        )
    return out


@dataclass(frozen=True)
class _SymbolPlan:
    """What one symbol's build reads and publishes against (made in this process)."""

    symbol: str
    inputs: list[dict[str, Any]]
    ranges: list[tuple[int | None, int | None]]  # each input's exchange-time range
    window_in: list[dict[str, Any]]
    window: tuple[int, int] | None
    gaps_in: list[dict[str, Any]]
    keys: list[ArtifactKey]
    parents: dict[ArtifactKey, int | None]
    configs: dict[str, BarConfig]
    by_config: dict[BarConfig, list[str]]


def _plan(
    log: RawLog,
    store: BarStore,
    venue: str,
    symbol: str,
    timeframes: Sequence[str],
    overrides: dict[str, Any] | None,
) -> _SymbolPlan:
    sid = StreamId(venue, "trade", symbol)
    entries = log.manifest(sid)
    inputs = _inputs_of(sid, entries)
    ranges = [(e.ts_exchange_min, e.ts_exchange_max) for e in entries]
    window_in = window_inputs(log, venue, symbol)
    keys = [
        ArtifactKey(venue, symbol, tf) for tf in sorted(timeframes, key=lambda tf: TIMEFRAMES[tf])
    ]
    parents = {k: store.latest(k) for k in keys}
    configs: dict[str, BarConfig] = {}
    for k in keys:
        rev = parents[k]
        base = store.manifest(k, rev)["config"] if rev is not None else {}
        configs[k.timeframe] = BarConfig.from_dict({**base, **(overrides or {})})
    by_config: dict[BarConfig, list[str]] = {}
    for tf, cfg in configs.items():
        by_config.setdefault(cfg, []).append(tf)
    return _SymbolPlan(
        symbol, inputs, ranges, window_in, window_of(window_in), gap_inputs(log, venue, symbol),
        keys, parents, configs, by_config,
    )  # fmt: skip


@dataclass(frozen=True)
class _BuildTask:
    """One partition's bar build: every argument of run_engine, picklable."""

    engine: str
    data: str  # the store's URL: each task opens its own (a client does not cross processes)
    inputs: list[dict[str, Any]]
    venue: str
    symbol: str
    timeframes: tuple[str, ...]
    config: BarConfig
    window: tuple[int, int] | None
    gaps: list[dict[str, Any]]
    threads: int | None


def _build(task: _BuildTask) -> dict[str, BuildResult]:
    """A pure partition task (pipeline.executors): the bars of one symbol and config."""
    with SegmentFiles(task_store(task.data)) as segments:
        return run_engine(
            task.engine,
            segments,
            task.inputs,
            venue=task.venue,
            symbol=task.symbol,
            timeframes=task.timeframes,
            config=task.config,
            window=task.window,
            threads=task.threads,
            gaps=task.gaps,
        )


@dataclass(frozen=True)
class _DayTask:
    """One UTC day of a partition's bar build (core.day_bars), picklable."""

    build: _BuildTask  # its inputs: the segments whose exchange-time range reaches the day
    day_ms: int
    ranges: list[tuple[int, int]]  # each input's exchange-time range (manifest)


def _build_day(task: _DayTask) -> dict[str, DayPart]:
    """A pure partition task: one UTC day's parts of one symbol and config's bars."""
    b = task.build
    with SegmentFiles(task_store(b.data)) as segments:
        return run_day_engine(
            b.engine,
            segments,
            b.inputs,
            task.ranges,
            task.day_ms,
            venue=b.venue,
            symbol=b.symbol,
            timeframes=b.timeframes,
            config=b.config,
            window=b.window,
            threads=b.threads,
            gaps=b.gaps,
        )


def _publish(
    store: BarStore,
    key: ArtifactKey,
    parent_rev: int | None,
    result: BuildResult,
    config: BarConfig,
    inputs: list[dict[str, Any]],
    window_in: list[dict[str, Any]],
    gaps_in: list[dict[str, Any]],
    window: tuple[int, int] | None,
    rebuild: bool,
) -> Outcome:
    parent = store.manifest(key, parent_rev) if parent_rev is not None else None
    before = store.read_bars(key, parent_rev) if parent_rev is not None else []
    diff = diff_bars(before, result.bars)
    digest = content_digest(result.bars)
    reason = _reason(parent, config, inputs, window_in, gaps_in, diff, result.bars, rebuild)
    if reason == "late_data" and not any(diff.values()):
        reason = None  # there was no late data to apply: nothing to publish
    summary = {k: len(v) for k, v in diff.items()}
    outcome = Outcome(
        key=key,
        revision=None,
        reason=reason or "unchanged",
        bars=len(result.bars),
        status_counts=_status_counts(result.bars),
        late_candidates=len(result.late),
        duplicates=result.duplicates,
        conflicts=result.conflicts,
        content_digest=digest,
        diff=summary,
    )
    if reason is None:
        return outcome
    revision = (parent_rev or 0) + 1
    schedule = (
        [result.bars[0].open_time_ms, result.bars[-1].close_time_ms + 1] if result.bars else None
    )
    manifest = {
        "format": "buff-bars",
        "format_version": 1,
        "built_by": f"buff_dataplane {__version__}",
        "venue": key.venue,
        "symbol": key.symbol,
        "timeframe": key.timeframe,
        "revision": revision,
        "parent": parent_rev,
        "reason": reason,
        "config": config.to_dict(),
        "config_digest": config.digest(),
        "inputs": inputs,
        "window_inputs": window_in,
        "gap_inputs": gaps_in,
        "window": list(window) if window else None,
        "schedule": schedule,
        "content_digest": digest,
        "bars": len(result.bars),
        "status_counts": outcome.status_counts,
        "late_candidates": len(result.late),
        "duplicates": result.duplicates,
        "conflicts": result.conflicts,
        "diff": summary,
    }
    store.write_revision(key, revision, result.bars, manifest, diff, result.late)
    outcome.revision = revision
    return outcome
