"""The reference bar engine: segments -> venue parser -> core.bars.build_bars.

Plain and slow (one parse per payload in Python); it defines what the vectorized engine
(``bars_sql``) must produce, and the property tests hold the two equal.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq

from buff_dataplane.core.bars import BuildResult, TradeEvent, build_bars
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
    events = read_trade_events(files, venue)
    if exclude_ids:  # trades in an unresolved conflict: no version is used
        drop = set(exclude_ids)
        events = [e for e in events if e.trade.trade_id not in drop]
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
