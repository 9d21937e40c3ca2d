"""``buff import``: fill the raw log from recorded capture files.

Two passes per file. The first checks the whole file's framing (see capture_files) and
learns which instruments it holds, so a file that is not what the user said is refused
before anything is written. The second parses every message with the venue's parser and
appends it to its stream (receive time from the capture line, exchange time from the
payload); a message the parser refuses is quarantined with its reason, never dropped.

A file is imported once: its SHA-256 is recorded in ``imports.jsonl`` and a second import
of the same bytes is refused. Messages that name no instrument (a REST depth snapshot, a
subscription ack) belong to the file's one instrument; in a file of several instruments
they are quarantined as ``no_symbol``.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from buff_dataplane.core.errors import PayloadRejected, ValidationError
from buff_dataplane.core.ids import StreamId, validate_venue
from buff_dataplane.feeds.base import Parser
from buff_dataplane.feeds.registry import parser_for
from buff_dataplane.pipeline.capture_files import CaptureLine, HeaderLine, read_capture
from buff_dataplane.storage.log import RawLog

# Hosts whose recorded URLs tell which venue a cryptofeed capture came from.
_VENUE_HOSTS = {
    "fstream.binance.com": "binance-usdm",
    "stream.binance.com": "binance-spot",
}

Progress = Callable[[int], object]


@dataclass
class ImportReport:
    file: str
    file_sha256: str
    venue: str
    format: str
    messages: int = 0
    events: Counter[str] = field(default_factory=Counter)
    quarantined: Counter[str] = field(default_factory=Counter)
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
            "connections": self.connections,
        }


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    except OSError as exc:
        raise ValidationError(f"cannot read {path}: {exc.strerror}") from exc
    return h.hexdigest()


def check_file(path: Path, fmt: str, venue: str, max_payload_bytes: int) -> tuple[int, set[str]]:
    """First pass: framing of every line; return the message count and venue symbols."""
    parser = parser_for(venue)
    messages = 0
    symbols: set[str] = set()
    for item in read_capture(path, fmt, max_payload_bytes=max_payload_bytes):
        if isinstance(item, HeaderLine):
            host = urlsplit(item.url).hostname or ""
            other = _VENUE_HOSTS.get(host)
            if other is not None and other != venue:
                raise ValidationError(
                    f"{path}:{item.line_no}: recorded from {host}, which is {other}, not {venue}"
                )
            continue
        messages += 1
        try:
            parsed = parser.parse(item.payload)
        except PayloadRejected:
            continue
        if parsed.venue_symbol is not None:
            symbols.add(parsed.venue_symbol)
    return messages, symbols


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
    messages, venue_symbols = check_file(path, fmt, venue, max_bytes)
    if total is not None:
        total(total=messages)
    parser = parser_for(venue)
    only_symbol = (
        parser.to_canonical(next(iter(venue_symbols))) if len(venue_symbols) == 1 else None
    )
    origin = f"import:{sha[:16]}:{path.name}"
    report = ImportReport(str(path), sha, venue, fmt)
    for item in read_capture(path, fmt, max_payload_bytes=max_bytes):
        if isinstance(item, HeaderLine):
            report.connections += 1
            continue
        report.messages += 1
        _import_one(log, parser, item, venue, only_symbol, origin, report)
        if progress is not None:
            progress(1)
    for writer in log.writers():
        writer.seal()
    log.quarantine.flush()
    log.record_import(report.to_dict())
    return report


def _import_one(
    log: RawLog,
    parser: Parser,
    item: CaptureLine,
    venue: str,
    only_symbol: str | None,
    origin: str,
    report: ImportReport,
) -> None:
    try:
        parsed = parser.parse(item.payload)
        symbol = parsed.symbol or only_symbol
        if symbol is None:
            raise PayloadRejected(
                "no_symbol", f"{parsed.kind} names no instrument and the file holds several"
            )
    except PayloadRejected as exc:
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
    sid = StreamId(venue, parsed.channel, symbol)
    log.writer(sid).append(
        item.payload, parsed.event_ts_exchange_ms, item.received_ms, source="ws", origin=origin
    )
    report.events[str(sid)] += 1
