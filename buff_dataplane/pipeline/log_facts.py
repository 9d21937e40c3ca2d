"""Facts gap detection and back-fill read from the raw log: trade ids, control events.

Trades are decoded by the venue's own parser (the same one capture and the bar builders
use), one sealed segment at a time; only the columns needed are read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from buff_dataplane.core.errors import PayloadRejected, StorageError
from buff_dataplane.core.gaps import ControlFact, Gap, detect
from buff_dataplane.core.ids import StreamId
from buff_dataplane.core.trades import COVERED, Trade, content_digest
from buff_dataplane.core.venues import id_span, trade_ids
from buff_dataplane.feeds.registry import parser_for
from buff_dataplane.storage import layout
from buff_dataplane.storage.log import RawLog
from buff_dataplane.storage.reader import scan
from buff_dataplane.storage.segment import segment_source


def trades(
    log: RawLog, sid: StreamId, *, ts_from: int | None = None, ts_to: int | None = None
) -> Iterator[tuple[int, Trade]]:
    """(ingest_seq, trade) of a trade stream's sealed events, exchange time in [from, to)."""
    parser = parser_for(sid.venue)
    for batch in scan(
        log,
        [sid],
        time_from=ts_from,
        time_to=ts_to,
        time_field="event_ts_exchange_ms",
        columns=["ingest_seq", "payload_raw"],
    ):
        seqs = batch.column("ingest_seq").to_pylist()
        for seq, payload in zip(seqs, batch.column("payload_raw").to_pylist(), strict=True):
            for trade in parser.parse(payload).trades:
                yield seq, trade


def trade_index(log: RawLog, sid: StreamId, ts_from: int, ts_to: int) -> dict[int, int]:
    """Trade id -> content digest of the first version of each trade in [from, to].

    The other ids a print covers (core.venues ``covered``) map to ``COVERED``.
    """
    mode = trade_ids(sid.venue)
    out: dict[int, int] = {}
    for _, trade in trades(log, sid, ts_from=ts_from, ts_to=ts_to + 1):
        lo, hi = id_span(trade, mode)
        for i in range(lo, hi + 1):
            if i != trade.trade_id:
                out.setdefault(i, COVERED)
        # A print of several matches: its own id is a match too, and a REST item for it
        # (one match) cannot equal the print's content.
        out.setdefault(trade.trade_id, content_digest(trade) if lo == hi else COVERED)
    return out


def id_times(log: RawLog, sid: StreamId) -> tuple[list[int], list[int]]:
    """The stream's distinct trade ids ascending, with the exchange time of each.

    On a venue whose prints cover several matches (core.venues ``covered``) these are
    the covered match ids, each with its print's time, so continuity is over matches.
    """
    mode = trade_ids(sid.venue)
    first: dict[int, int] = {}
    for _, trade in trades(log, sid):
        if mode == "covered":
            lo, hi = id_span(trade, mode)
            for i in range(lo, hi + 1):
                first.setdefault(i, trade.ts_ms)
        else:
            first.setdefault(trade.trade_id, trade.ts_ms)
    ids = sorted(first)
    return ids, [first[i] for i in ids]


def last_trade(log: RawLog, sid: StreamId) -> tuple[int, int] | None:
    """(id, exchange time) of the highest trade id at the end of the stream (the top
    of a print's covered ids on a ``covered`` venue).

    Reads row groups newest first and stops after the first that holds a WebSocket
    trade: back-filled rows appended later carry older ids. So a capture restarting on a
    long stream reads one row group, not the stream.
    """
    parser = parser_for(sid.venue)
    mode = trade_ids(sid.venue)
    best: tuple[int, int] | None = None
    for entry in reversed(log.manifest(sid)):
        key = layout.segment_key(sid, entry.segment)
        try:
            pf = pq.ParquetFile(segment_source(log.store, key))
            groups = range(pf.num_row_groups - 1, -1, -1)
            for g in groups:
                table = pf.read_row_group(g, columns=["payload_raw", "source"])
                saw_ws = False
                payloads = table.column("payload_raw").to_pylist()
                sources = table.column("source").to_pylist()
                for payload, source in zip(payloads, sources, strict=True):
                    for trade in parser.parse(payload).trades:
                        saw_ws = saw_ws or source == "ws"
                        top = id_span(trade, mode)[1]
                        if mode == "unordered":  # ids have no order: the latest by time
                            if best is None or trade.ts_ms > best[1]:
                                best = (top, trade.ts_ms)
                        elif best is None or top > best[0]:
                            best = (top, trade.ts_ms)
                if saw_ws:
                    return best
        except (OSError, pa.ArrowException) as exc:
            raise StorageError(f"cannot read segment {log.store.url(key)}: {exc}") from exc
    return best


def _capture_event(payload: bytes) -> ControlFact | None:
    """A control event the capture wrote, or None for a venue's own control message kept
    in the control stream (an ack, a heartbeat, a text ``pong``)."""
    try:
        body = json.loads(payload)
    except ValueError:
        return None
    # The capture's events always carry their clock reading; no venue's message has ts_ms.
    if not isinstance(body, dict):
        return None
    event, ts = body.get("event"), body.get("ts_ms")
    if not (isinstance(event, str) and isinstance(ts, int) and not isinstance(ts, bool)):
        return None
    # Data stopped at the connection's last message, not when the loss was noticed (up to
    # a silence timeout later): the downtime window opens there.
    last = body.get("last_message_ms")
    if event == "disconnected" and isinstance(last, int) and not isinstance(last, bool) and last:
        ts = min(ts, last)
    return ControlFact(ts, event)


def controls(log: RawLog, venue: str, symbol: str) -> list[ControlFact]:
    """The symbol's control events in log order (event name and the capture's clock)."""
    sid = StreamId(venue, "control", symbol)
    if sid not in log.stream_ids():
        return []
    out = []
    for batch in scan(log, [sid], columns=["payload_raw"]):
        for payload in batch.column("payload_raw").to_pylist():
            fact = _capture_event(payload)
            if fact is not None:
                out.append(fact)
    return out


def scan_gaps(
    log: RawLog,
    sid: StreamId,
    *,
    detected_at_ms: int,
    range_ms: tuple[int, int] | None = None,
) -> list[Gap]:
    """Every gap of trade stream ``sid`` the log shows now (see core.gaps.detect)."""
    ids, ts = id_times(log, sid)
    return detect(
        str(sid),
        ids,
        ts,
        controls(log, sid.venue, sid.symbol),
        ids_contiguous=trade_ids(sid.venue) != "unordered",
        detected_at_ms=detected_at_ms,
        range_ms=range_ms,
        stated=stated_ids(log, sid.venue, sid.symbol),
    )


def stated_ids(log: RawLog, venue: str, symbol: str) -> list[tuple[int, int]]:
    """(exchange time, id) of every venue heartbeat in the symbol's control stream that
    states the latest trade id (Coinbase ``last_trade_id``), in log order."""
    sid = StreamId(venue, "control", symbol)
    if sid not in log.stream_ids():
        return []
    parser = parser_for(venue)
    out = []
    for batch in scan(log, [sid], columns=["payload_raw"]):
        for payload in batch.column("payload_raw").to_pylist():
            if _capture_event(payload) is not None:
                continue
            try:
                parsed = parser.parse(payload)
            except PayloadRejected:
                continue  # stored as the venue sent it; not a statement of ids
            said = parsed.stated_last_trade_id
            if said is not None and parsed.event_ts_exchange_ms is not None:
                out.append((parsed.event_ts_exchange_ms, said))
    return out
