"""Readers of recorded capture files: cryptofeed text, hftbacktest gzip, and NDJSON.

Each yields :class:`CaptureLine` (receive time in UTC ms and the exact message bytes) in
file order. Framing problems (bytes that are not UTF-8, a line that is not in the format,
a receive time out of range, an oversized message) raise ValidationError naming the file
and line: they mean the file is not what the user said, so the import refuses it whole.

Formats (details in docs/import-formats.md):

- ``cryptofeed``: ``<url> <-> <start ts>`` header lines, then ``<float seconds>: <message>``.
- ``hftbacktest``: gzip (or plain) text, ``<receive ns> <message>``.
- ``ndjson``: gzip (or plain) JSON lines ``{"recv_ms": <int>, "raw": "<message text>"}``.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO

import msgspec

from buff_dataplane.core.errors import ValidationError
from buff_dataplane.core.events import MAX_TS_MS, MIN_TS_MS

FORMATS: tuple[str, ...] = ("cryptofeed", "hftbacktest", "ndjson")

_CF_HEADER = re.compile(r"(\S+) <-> (\d+(?:\.\d+)?)")
_CF_LINE = re.compile(rb"(\d{9,11}(?:\.\d{1,9})?): ")
_HFT_LINE = re.compile(rb"(\d{18,20}) ")


@dataclass(frozen=True, slots=True)
class CaptureLine:
    line_no: int
    received_ms: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class HeaderLine:
    line_no: int
    url: str
    started_ms: int


class _NdjsonLine(msgspec.Struct, forbid_unknown_fields=True):
    recv_ms: int
    raw: str


_ndjson = msgspec.json.Decoder(_NdjsonLine)


def _open(path: Path) -> IO[bytes]:
    try:
        fh: IO[bytes] = path.open("rb")
    except OSError as exc:
        raise ValidationError(f"cannot read {path}: {exc.strerror}") from exc
    if fh.read(2) == b"\x1f\x8b":
        fh.seek(0)
        return gzip.GzipFile(fileobj=fh, mode="rb")  # type: ignore[return-value]
    fh.seek(0)
    return fh


def _check_ms(path: Path, line_no: int, ms: int) -> int:
    if not MIN_TS_MS <= ms <= MAX_TS_MS:
        raise ValidationError(f"{path}:{line_no}: receive time {ms} ms is out of range")
    return ms


def read_capture(
    path: Path, fmt: str, *, max_payload_bytes: int
) -> Iterator[CaptureLine | HeaderLine]:
    """Yield the lines of ``path``; blank lines are skipped, everything else is checked."""
    if fmt not in FORMATS:
        raise ValidationError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    with _open(path) as fh:
        try:
            for line_no, raw_line in enumerate(fh, start=1):
                line = raw_line[:-1] if raw_line.endswith(b"\n") else raw_line
                if line.endswith(b"\r"):
                    line = line[:-1]
                if not line.strip():
                    continue
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise ValidationError(
                        f"{path}:{line_no}: not UTF-8 (byte {exc.start}); "
                        "capture lines must be text"
                    ) from None
                item = _parse_line(path, fmt, line_no, line)
                if isinstance(item, CaptureLine) and len(item.payload) > max_payload_bytes:
                    raise ValidationError(
                        f"{path}:{line_no}: message of {len(item.payload)} bytes exceeds the "
                        f"limit of {max_payload_bytes} bytes"
                    )
                yield item
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise ValidationError(f"{path}: cannot decompress or read: {exc}") from exc


def _parse_line(path: Path, fmt: str, line_no: int, line: bytes) -> CaptureLine | HeaderLine:
    if fmt == "cryptofeed":
        match = _CF_LINE.match(line)
        if match is None:
            header = _CF_HEADER.fullmatch(line.decode())
            if header is None:
                raise ValidationError(
                    f"{path}:{line_no}: not a cryptofeed capture line "
                    "('<seconds>: <message>' or '<url> <-> <start>')"
                )
            ms = int(Decimal(header.group(2)) * 1000)
            return HeaderLine(line_no, header.group(1), _check_ms(path, line_no, ms))
        ms = int(Decimal(match.group(1).decode()) * 1000)
        return CaptureLine(line_no, _check_ms(path, line_no, ms), line[match.end() :])
    if fmt == "hftbacktest":
        match = _HFT_LINE.match(line)
        if match is None:
            raise ValidationError(
                f"{path}:{line_no}: not an hftbacktest capture line ('<receive ns> <message>')"
            )
        ms = int(match.group(1)) // 1_000_000
        return CaptureLine(line_no, _check_ms(path, line_no, ms), line[match.end() :])
    try:
        item = _ndjson.decode(line)
    except msgspec.DecodeError as exc:
        raise ValidationError(
            f'{path}:{line_no}: not an ndjson capture line ({{"recv_ms": int, "raw": str}}): {exc}'
        ) from None
    return CaptureLine(line_no, _check_ms(path, line_no, item.recv_ms), item.raw.encode())


def sniff_size(path: Path) -> int:
    """Size of ``path`` on disk (progress is reported on compressed bytes read)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


__all__ = ["FORMATS", "CaptureLine", "HeaderLine", "read_capture"]
