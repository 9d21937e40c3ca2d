"""``buff import``: fill the raw log from recorded capture files.

Two passes per file. The first checks the whole file's framing (see capture_files),
learns which connections belong to the venue and which instruments each holds, so a file
that is not what the user said is refused before anything is written. The second parses
every received message with the venue's parser and appends it to its stream (receive time
from the capture line, exchange time from the payload); a message the parser refuses is
quarantined with its reason, never dropped.

Connections. A recorded connection URL names the product it served (:data:`ENDPOINTS`):
``wss://stream.bybit.com/v5/public/spot`` is Bybit spot, not ``bybit-linear``. A file
whose every connection served another product is refused whole; in a file that holds
both (cryptofeed v3 records several connections in one file), the other product's
connections are skipped and counted (``skipped["other_endpoint"]``): their messages never
reach the parser, which could not tell a spot push from a linear one. A message the
parser refuses as ``other_product`` (an OKX spot pair recorded on the connection that also
carried swaps) is skipped and counted the same way, not quarantined: it is valid, only not
this venue's. Lines that are not received messages (what the recorder sent, its REST
calls) are skipped and counted too.

A file is imported once: its SHA-256 is recorded in ``imports.jsonl`` and a second import
of the same bytes is refused. A message that names no instrument belongs to its
connection's instruments: a control message (an ack, a heartbeat, a status) is appended
to the ``control`` stream of each of them, as a capture writes its control events; any
other (a REST depth snapshot) belongs to the connection's one instrument, and with
several it is quarantined as ``no_symbol``.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from buff_dataplane.core.errors import PayloadRejected, ValidationError
from buff_dataplane.core.ids import StreamId, validate_venue
from buff_dataplane.feeds.base import Parsed, Parser
from buff_dataplane.feeds.registry import parser_for
from buff_dataplane.pipeline.capture_files import (
    CaptureLine,
    HeaderLine,
    SkippedLine,
    read_capture,
)
from buff_dataplane.storage.log import RawLog

# Recorded WebSocket endpoints: (host, path prefix, what they serve): a venue id, or the
# name of a product this build has no venue for. The longest matching prefix wins; a host
# not listed here is not checked.
ENDPOINTS: tuple[tuple[str, str, str], ...] = (
    ("fstream.binance.com", "", "binance-usdm"),
    ("stream.binance.com", "", "binance-spot"),
    ("stream.bybit.com", "/v5/public/linear", "bybit-linear"),
    ("stream-testnet.bybit.com", "/v5/public/linear", "bybit-linear"),
    ("stream.bybit.com", "/v5/public/spot", "Bybit spot"),
    ("stream.bybit.com", "/v5/public/inverse", "Bybit inverse contracts"),
    ("stream.bybit.com", "/v5/public/option", "Bybit options"),
    ("stream.bybit.com", "/realtime", "Bybit inverse perpetuals, pre-v5 API"),
    ("ws.okx.com", "/ws/v5/public", "okx-swap"),
    ("ws.okx.com", "/ws/v5/business", "okx-swap"),
    ("ws-feed.exchange.coinbase.com", "", "coinbase"),
    ("ws-feed.pro.coinbase.com", "", "coinbase"),
    ("advanced-trade-ws.coinbase.com", "", "coinbase"),
    ("ws.kraken.com", "", "kraken"),
    ("beta-ws.kraken.com", "", "kraken"),
)

Progress = Callable[[int], object]


def served_by(url: str) -> str | None:
    """What a recorded endpoint serves (see :data:`ENDPOINTS`), or None if unknown."""
    parts = urlsplit(url)
    host, path = parts.hostname or "", parts.path or "/"
    best: tuple[int, str] | None = None
    for h, prefix, what in ENDPOINTS:
        if h == host and path.startswith(prefix) and (best is None or len(prefix) > best[0]):
            best = (len(prefix), what)
    return None if best is None else best[1]


@dataclass
class ImportReport:
    file: str
    file_sha256: str
    venue: str
    format: str
    messages: int = 0
    events: Counter[str] = field(default_factory=Counter)
    quarantined: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    other_endpoints: dict[str, str] = field(default_factory=dict)
    connections: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "file_sha256": self.file_sha256,
            "venue": self.venue,
            "format": self.format,
            "messages": self.messages,
            "events": dict(sorted(self.events.items())),
            "quarantined": dict(sorted(self.quarantined.items())),
            "skipped": dict(sorted(self.skipped.items())),
            "other_endpoints": dict(sorted(self.other_endpoints.items())),
            "connections": self.connections,
        }


@dataclass
class FilePlan:
    """What the first pass learned: messages to import, instruments and foreign connections.

    ``symbols`` maps a connection to the canonical instruments its messages name;
    ``other_endpoints`` maps a connection of another product to its URL and product.
    """

    messages: int = 0
    symbols: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    other_endpoints: dict[str, str] = field(default_factory=dict)


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    except OSError as exc:
        raise ValidationError(f"cannot read {path}: {exc.strerror}") from exc
    return h.hexdigest()


def check_file(path: Path, fmt: str, venue: str, max_payload_bytes: int) -> FilePlan:
    """First pass: framing of every line, connections, and the instruments of each."""
    parser = parser_for(venue)
    plan = FilePlan()
    connections: list[tuple[HeaderLine, str | None]] = []
    for item in read_capture(path, fmt, max_payload_bytes=max_payload_bytes):
        if isinstance(item, HeaderLine):
            other = served_by(item.url)
            connections.append((item, other))
            if other is not None and other != venue:
                plan.other_endpoints[item.conn] = f"{item.url} ({other})"
            continue
        if isinstance(item, SkippedLine) or item.conn in plan.other_endpoints:
            continue
        plan.messages += 1
        try:
            parsed = parser.parse(item.payload)
        except PayloadRejected:
            continue
        if parsed.symbol is not None:
            plan.symbols[item.conn].add(parsed.symbol)
    if connections and all(o is not None and o != venue for _, o in connections):
        header, other = connections[0]
        where = (urlsplit(header.url).hostname or "") + urlsplit(header.url).path.rstrip("/")
        raise ValidationError(
            f"{path}:{header.line_no}: recorded from {where}, which is {other}, not {venue}"
        )
    return plan


def import_file(
    log: RawLog,
    path: Path,
    *,
    venue: str,
    fmt: str,
    progress: Progress | None = None,
    total: Callable[..., object] | None = None,
) -> ImportReport:
    validate_venue(venue)
    if not path.is_file():
        raise ValidationError(f"{path}: no such file")
    sha = _file_sha256(path)
    previous = log.find_import(sha)
    if previous is not None:
        raise ValidationError(
            f"{path}: these bytes were already imported (as {previous.get('file')}); "
            "nothing written"
        )
    max_bytes = log.config.max_payload_bytes
    plan = check_file(path, fmt, venue, max_bytes)
    if total is not None:
        total(total=plan.messages)
    parser = parser_for(venue)
    origin = f"import:{sha[:16]}:{path.name}"
    report = ImportReport(str(path), sha, venue, fmt, other_endpoints=dict(plan.other_endpoints))
    for item in read_capture(path, fmt, max_payload_bytes=max_bytes):
        if isinstance(item, HeaderLine):
            report.connections += 1
        elif isinstance(item, SkippedLine):
            report.skipped[item.what] += 1
        elif item.conn in plan.other_endpoints:
            report.skipped["other_endpoint"] += 1
        else:
            report.messages += 1
            symbols = sorted(plan.symbols.get(item.conn, ()))
            _import_one(log, parser, item, venue, symbols, origin, report)
            if progress is not None:
                progress(1)
    for writer in log.writers():
        writer.seal()
    log.quarantine.flush()
    log.record_import(report.to_dict())
    return report


def _route(parser: Parser, payload: bytes, conn_symbols: list[str]) -> tuple[Parsed, list[str]]:
    """The message parsed, and the instruments whose stream it goes to."""
    parsed = parser.parse(payload)
    if parsed.symbol is not None:
        return parsed, [parsed.symbol]
    if parsed.channel == "control" and conn_symbols:
        return parsed, conn_symbols  # an ack or heartbeat of the whole connection
    if len(conn_symbols) == 1:
        return parsed, conn_symbols
    raise PayloadRejected(
        "no_symbol",
        f"{parsed.kind} names no instrument and its connection holds "
        f"{len(conn_symbols) or 'no'} instruments",
    )


def _import_one(
    log: RawLog,
    parser: Parser,
    item: CaptureLine,
    venue: str,
    conn_symbols: list[str],
    origin: str,
    report: ImportReport,
) -> None:
    try:
        parsed, targets = _route(parser, item.payload, conn_symbols)
    except PayloadRejected as exc:
        if exc.reason == "other_product":  # valid, another product's: not a refusal
            report.skipped["other_product"] += 1
            return
        log.quarantine.add(
            venue=venue,
            payload=item.payload,
            reason=exc.reason,
            detail=f"line {item.line_no}: {exc.detail}",
            received_ms=item.received_ms,
            origin=origin,
        )
        report.quarantined[exc.reason] += 1
        return
    for symbol in targets:
        sid = StreamId(venue, parsed.channel, symbol)
        log.writer(sid).append(
            item.payload, parsed.event_ts_exchange_ms, item.received_ms, source="ws", origin=origin
        )
        report.events[str(sid)] += 1
