"""Reading the sealed log: segment pruning by manifest, then streamed record batches.

Nothing here loads a whole stream: :func:`scan` yields Arrow record batches segment by
segment, skipping segments whose manifest ranges miss the filters, so Polars or DuckDB
can consume a log larger than memory (:func:`to_reader` gives a RecordBatchReader).
Segments are read through the log's store: a local file by its path, an S3 object by
ranged GETs (the footer, then only the row groups and columns asked for).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from buff_dataplane.core.errors import StorageError, ValidationError
from buff_dataplane.core.ids import StreamId
from buff_dataplane.storage import layout
from buff_dataplane.storage.manifest import ManifestEntry
from buff_dataplane.storage.segment import RAW_SCHEMA, segment_source

if TYPE_CHECKING:
    from buff_dataplane.storage.log import RawLog

TIME_FIELDS = ("event_ts_exchange_ms", "event_ts_ingest_ms")


def _overlaps(entry: ManifestEntry, lo: int | None, hi: int | None, field: str) -> bool:
    if field == "event_ts_ingest_ms":
        emin, emax = entry.ts_ingest_min, entry.ts_ingest_max
    else:
        if entry.ts_exchange_min is None or entry.ts_exchange_max is None:
            return True
        emin, emax = entry.ts_exchange_min, entry.ts_exchange_max
    return (lo is None or emax >= lo) and (hi is None or emin < hi)


def scan(
    log: RawLog,
    streams: Sequence[StreamId | str] | None = None,
    *,
    seq_from: int | None = None,
    seq_to: int | None = None,
    time_from: int | None = None,
    time_to: int | None = None,
    time_field: str = "event_ts_ingest_ms",
    columns: Sequence[str] | None = None,
    batch_rows: int = 65_536,
) -> Iterator[pa.RecordBatch]:
    """Yield the sealed events of ``streams`` (default: all, sorted) in ingest_seq order.

    Seq bounds are inclusive; time bounds are ``[time_from, time_to)`` on ``time_field``.
    """
    if time_field not in TIME_FIELDS:
        raise ValidationError(f"time field {time_field!r} is not one of {TIME_FIELDS}")
    if seq_from is not None and seq_to is not None and seq_from > seq_to:
        raise ValidationError(f"inverted seq range {seq_from}..{seq_to}")
    if time_from is not None and time_to is not None and time_from >= time_to:
        raise ValidationError(f"empty or inverted time range [{time_from}, {time_to})")
    cols = list(columns) if columns is not None else RAW_SCHEMA.names
    unknown = [c for c in cols if c not in RAW_SCHEMA.names]
    if unknown:
        raise ValidationError(f"unknown columns {unknown}: expected some of {RAW_SCHEMA.names}")
    read_cols = sorted(set(cols) | {"ingest_seq", time_field}, key=RAW_SCHEMA.names.index)
    sids = (
        log.stream_ids()
        if streams is None
        else [s if isinstance(s, StreamId) else StreamId.parse(s) for s in streams]
    )
    for sid in sids:
        for entry in log.manifest(sid):
            if seq_from is not None and entry.seq_to < seq_from:
                continue
            if seq_to is not None and entry.seq_from > seq_to:
                continue
            if not _overlaps(entry, time_from, time_to, time_field):
                continue
            key = layout.segment_key(sid, entry.segment)
            try:
                pf = pq.ParquetFile(segment_source(log.store, key))
                batches = pf.iter_batches(batch_size=batch_rows, columns=read_cols)
                for batch in batches:
                    out = _filter(batch, seq_from, seq_to, time_from, time_to, time_field)
                    if out.num_rows:
                        yield out.select(cols)
            except (OSError, pa.ArrowException) as exc:
                raise StorageError(f"cannot read segment {log.store.url(key)}: {exc}") from exc


def _filter(
    batch: pa.RecordBatch,
    seq_from: int | None,
    seq_to: int | None,
    time_from: int | None,
    time_to: int | None,
    time_field: str,
) -> pa.RecordBatch:
    mask = None
    conds = []
    seq = batch.column("ingest_seq")
    ts = batch.column(time_field)
    if seq_from is not None:
        conds.append(pc.greater_equal(seq, seq_from))
    if seq_to is not None:
        conds.append(pc.less_equal(seq, seq_to))
    if time_from is not None:
        conds.append(pc.greater_equal(ts, time_from))
    if time_to is not None:
        conds.append(pc.less(ts, time_to))
    for cond in conds:
        mask = cond if mask is None else pc.and_(mask, cond)
    return batch if mask is None else batch.filter(mask)


def to_reader(log: RawLog, *args: object, **kwargs: object) -> pa.RecordBatchReader:
    """The same as :func:`scan`, as a RecordBatchReader (DuckDB and Polars read it lazily)."""
    columns = kwargs.get("columns")
    cols = list(columns) if isinstance(columns, (list, tuple)) else RAW_SCHEMA.names
    schema = pa.schema([RAW_SCHEMA.field(c) for c in cols])
    return pa.RecordBatchReader.from_batches(schema, scan(log, *args, **kwargs))  # type: ignore[arg-type]


def to_table(log: RawLog, *args: object, **kwargs: object) -> pa.Table:
    return to_reader(log, *args, **kwargs).read_all()
