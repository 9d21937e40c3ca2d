"""The reference bar engine: segments -> venue parser -> core.bars.build_bars.

Plain and slow (one parse per payload in Python); it defines what the vectorized engine
(``bars_sql``) must produce, and the property tests hold the two equal.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq

from buff_dataplane.core.bars import BuildResult, TradeEvent, build_bars
from buff_dataplane.core.day_bars import DayPart, day_of, day_summary, is_orphan
from buff_dataplane.core.errors import PayloadRejected, StorageError
from buff_dataplane.feeds.registry import parser_for

READ_COLUMNS = ["ingest_seq", "event_ts_ingest_ms", "payload_raw", "payload_sha256", "source"]


def read_trade_events(files: Sequence[Path], venue: str) -> list[TradeEvent]:
    """Every trade in ``files`` (segments of one trade stream), parsed by the venue parser;
    a message holding several trades gives one event per trade, in message order."""
    parser = parser_for(venue)
    out: list[TradeEvent] = []
    for path in files:
        try:
            table = pq.read_table(path, columns=READ_COLUMNS)
        except OSError as exc:
            raise StorageError(f"cannot read segment {path}: {exc}") from exc
        for row in table.to_pylist():
            try:
                parsed = parser.parse(row["payload_raw"])
            except PayloadRejected as exc:
                raise StorageError(
                    f"{path.name}: seq {row['ingest_seq']} holds no trade the parser accepts "
                    f"({exc.reason})"
                ) from exc
            if not parsed.trades:
                raise StorageError(f"{path.name}: seq {row['ingest_seq']} is a {parsed.kind}")
            out.extend(
                TradeEvent(
                    ingest_seq=row["ingest_seq"],
                    ts_ingest_ms=row["event_ts_ingest_ms"],
                    payload_sha256=row["payload_sha256"],
                    source=row["source"],
                    segment=path.name,
                    trade=trade,
                    index=index,
                )
                for index, trade in enumerate(parsed.trades)
            )
    return out


def build_bars_ref(
    files: Sequence[Path],
    *,
    venue: str,
    symbol: str,
    timeframes: Sequence[str],
    allowed_lateness_ms: int,
    apply_late: bool,
    window: tuple[int, int] | None,
    ids_contiguous: bool = True,
    range_ms: tuple[int, int] | None = None,
    exclude_ids: Sequence[int] = (),
    ids_ordered: bool = True,
    ids_cover: bool = False,
) -> dict[str, BuildResult]:
    events = _without(read_trade_events(files, venue), exclude_ids)
    return build_bars_ref_events(
        events,
        venue=venue,
        symbol=symbol,
        timeframes=timeframes,
        allowed_lateness_ms=allowed_lateness_ms,
        apply_late=apply_late,
        window=window,
        ids_contiguous=ids_contiguous,
        range_ms=range_ms,
        ids_ordered=ids_ordered,
        ids_cover=ids_cover,
    )


def _without(events: list[TradeEvent], exclude_ids: Sequence[int]) -> list[TradeEvent]:
    """``events`` less the trades of an unresolved conflict (no version is used)."""
    if not exclude_ids:
        return events
    drop = set(exclude_ids)
    return [e for e in events if e.trade.trade_id not in drop]


def build_bars_ref_events(
    events: Sequence[TradeEvent],
    *,
    venue: str,
    symbol: str,
    timeframes: Sequence[str],
    allowed_lateness_ms: int,
    apply_late: bool,
    window: tuple[int, int] | None,
    ids_contiguous: bool = True,
    range_ms: tuple[int, int] | None = None,
    ids_ordered: bool = True,
    ids_cover: bool = False,
) -> dict[str, BuildResult]:
    return {
        tf: build_bars(
            events,
            venue=venue,
            symbol=symbol,
            timeframe=tf,
            allowed_lateness_ms=allowed_lateness_ms,
            apply_late=apply_late,
            window=window,
            ids_contiguous=ids_contiguous,
            range_ms=range_ms,
            ids_ordered=ids_ordered,
            ids_cover=ids_cover,
        )
        for tf in timeframes
    }


def build_day_ref(
    files: Sequence[Path],
    ranges: Sequence[tuple[int, int]],
    day_ms: int,
    *,
    venue: str,
    symbol: str,
    timeframes: Sequence[str],
    allowed_lateness_ms: int,
    apply_late: bool,
    window: tuple[int, int] | None,
    ids_contiguous: bool = True,
    exclude_ids: Sequence[int] = (),
    ids_ordered: bool = True,
    ids_cover: bool = False,
) -> dict[str, DayPart]:
    """One UTC day's part of the stream's bars (core.day_bars), per timeframe.

    ``files`` are the segments whose manifest range (``ranges``, the same order) reaches
    the day; only the trades of the day are built.
    """
    events = read_trade_events(files, venue)
    seg_range = {Path(p).name: r for p, r in zip(files, ranges, strict=True)}
    orphans = sum(is_orphan(e.trade.ts_ms, seg_range[e.segment]) for e in events)
    events = _without([e for e in events if day_of(e.trade.ts_ms) == day_ms], exclude_ids)
    built = build_bars_ref_events(
        events,
        venue=venue,
        symbol=symbol,
        timeframes=timeframes,
        allowed_lateness_ms=allowed_lateness_ms,
        apply_late=apply_late,
        window=window,
        ids_contiguous=ids_contiguous,
        ids_ordered=ids_ordered,
        ids_cover=ids_cover,
    )
    out = {}
    for tf, result in built.items():
        runs, late_index = day_summary(
            events,
            tf,
            allowed_lateness_ms=allowed_lateness_ms,
            apply_late=apply_late,
            ids_cover=ids_cover,
        )
        out[tf] = DayPart(
            day_ms=day_ms, result=result, runs=runs, late_index=late_index, orphans=orphans
        )
    return out
