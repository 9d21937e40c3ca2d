"""Readers of recorded capture files: cryptofeed text and v3, hftbacktest, and NDJSON.

Each yields, in file order, :class:`CaptureLine` (a received message: receive time in UTC
ms, the exact message bytes, its connection), :class:`HeaderLine` (a connection opened, with
its URL) and :class:`SkippedLine` (a recorded line that is not a received message: what the
recorder sent, a REST response). Framing problems (bytes that are not UTF-8, a line that is
not in the format, a receive time out of range, an oversized message) raise
ValidationError naming the file and line: they mean the file is not what the user said, so
the import refuses it whole. gzip and zstd files are recognised by their magic bytes.

Formats (details in docs/import-formats.md):

- ``cryptofeed``: ``<url> <-> <start ts>`` opens a connection, ``<url> <- <ts>: <message>``
  is a message the recorder sent, ``<float seconds>: <message>`` one it received.
- ``cryptofeed-v3``: zstd JSON lines ``{"t": "header"|"connect"|"send"|"recv"|"http",
  "conn": <id>, "ts": <float seconds>, "addr": <url>, "data": <message text>}``.
- ``hftbacktest``: gzip (or plain) text, ``<receive ns> <message>``.
- ``ndjson``: gzip (or plain) JSON lines ``{"recv_ms": <int>, "raw": "<message text>"}``.
"""

from __future__ import annotations

import gzip
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import msgspec
import zstandard

from buff_dataplane.core.errors import ValidationError
from buff_dataplane.core.events import MAX_TS_MS, MIN_TS_MS

FORMATS: tuple[str, ...] = ("cryptofeed", "cryptofeed-v3", "hftbacktest", "ndjson")

_CF_HEADER = re.compile(r"(\S+) <-> (\d+(?:\.\d+)?)")
_CF_SENT = re.compile(rb"\S+ <- \d+(?:\.\d+)?: ")
_CF_LINE = re.compile(rb"(\d{9,11}(?:\.\d{1,9})?): ")
_SECONDS = re.compile(rb"\d{9,11}(?:\.\d{1,9})?")
_HFT_LINE = re.compile(rb"(\d{18,20}) ")
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


@dataclass(frozen=True, slots=True)
class CaptureLine:
    """A received message; ``conn`` names its connection ("" in formats without any)."""

    line_no: int
    received_ms: int
    payload: bytes
    conn: str = ""


@dataclass(frozen=True, slots=True)
class HeaderLine:
    """A connection opened to ``url``."""

    line_no: int
    url: str
    started_ms: int
    conn: str = ""


@dataclass(frozen=True, slots=True)
class SkippedLine:
    """A recorded line that is no received message: ``what`` is ``sent`` or ``http``."""

    line_no: int
    what: str
    conn: str = ""


class _NdjsonLine(msgspec.Struct, forbid_unknown_fields=True):
    recv_ms: int
    raw: str


_ndjson = msgspec.json.Decoder(_NdjsonLine)


class _V3Record(msgspec.Struct):
    """One line of a cryptofeed v3 file; ``ts`` stays Raw so seconds convert exactly."""

    t: str
    conn: str = ""
    ts: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)  # b"" when absent
    addr: str | None = None
    data: str | None = None


_v3 = msgspec.json.Decoder(_V3Record)


def _open(path: Path) -> IO[bytes]:
    try:
        fh: IO[bytes] = path.open("rb")
    except OSError as exc:
        raise ValidationError(f"cannot read {path}: {exc.strerror}") from exc
    magic = fh.read(4)
    fh.seek(0)
    if magic[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=fh, mode="rb")  # type: ignore[return-value]
    if magic == _ZSTD_MAGIC:
        return io.BufferedReader(_ZstdFrames(fh))
    return fh


class _ZstdFrames(io.RawIOBase):
    """The concatenated zstd frames of ``fh``; a file that ends inside a frame raises.

    (zstandard's ``stream_reader`` ends quietly at a truncated frame: a cut file would
    import as a shorter one.)
    """

    def __init__(self, fh: IO[bytes]) -> None:
        super().__init__()
        self._fh = fh
        self._dctx = zstandard.ZstdDecompressor()
        self._obj = self._dctx.decompressobj()
        self._mid_frame = False
        self._out = b""
        self._pos = 0

    def readable(self) -> bool:
        return True

    def _feed(self, data: bytes) -> None:
        parts = []
        while data:
            parts.append(self._obj.decompress(data))
            self._mid_frame = not self._obj.eof
            data = self._obj.unused_data if self._obj.eof else b""
            if self._obj.eof:
                self._obj = self._dctx.decompressobj()
        self._out, self._pos = b"".join(parts), 0

    def readinto(self, buffer: Any) -> int:
        while self._pos >= len(self._out):
            chunk = self._fh.read(1 << 16)
            if not chunk:
                if self._mid_frame:
                    raise zstandard.ZstdError("the file ends inside a zstd frame (truncated)")
                return 0
            self._feed(chunk)
        n = min(len(buffer), len(self._out) - self._pos)
        buffer[:n] = self._out[self._pos : self._pos + n]
        self._pos += n
        return n

    def close(self) -> None:
        self._fh.close()
        super().close()


def _check_ms(path: Path, line_no: int, ms: int) -> int:
    if not MIN_TS_MS <= ms <= MAX_TS_MS:
        raise ValidationError(f"{path}:{line_no}: receive time {ms} ms is out of range")
    return ms


def read_capture(
    path: Path, fmt: str, *, max_payload_bytes: int
) -> Iterator[CaptureLine | HeaderLine | SkippedLine]:
    """Yield the lines of ``path``; blank lines are skipped, everything else is checked."""
    if fmt not in FORMATS:
        raise ValidationError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    conn = _Connections()
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
                item = _parse_line(path, fmt, line_no, line, conn)
                if item is None:
                    continue
                if isinstance(item, CaptureLine) and len(item.payload) > max_payload_bytes:
                    raise ValidationError(
                        f"{path}:{line_no}: message of {len(item.payload)} bytes exceeds the "
                        f"limit of {max_payload_bytes} bytes"
                    )
                yield item
        except (OSError, EOFError, gzip.BadGzipFile, zstandard.ZstdError) as exc:
            raise ValidationError(f"{path}: cannot decompress or read: {exc}") from exc


class _Connections:
    """The current connection of a cryptofeed text file: each header opens the next."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    @property
    def current(self) -> str:
        return str(self.count) if self.count else ""


def _seconds_ms(path: Path, line_no: int, text: bytes) -> int:
    """Float seconds text to ms, exactly (decimal) and floored."""
    return _check_ms(path, line_no, int(Decimal(text.decode()) * 1000))


def _parse_line(
    path: Path, fmt: str, line_no: int, line: bytes, conn: _Connections
) -> CaptureLine | HeaderLine | SkippedLine | None:
    if fmt == "cryptofeed":
        match = _CF_LINE.match(line)
        if match is None:
            if _CF_SENT.match(line) is not None:
                return SkippedLine(line_no, "sent", conn.current)
            header = _CF_HEADER.fullmatch(line.decode())
            if header is None:
                raise ValidationError(
                    f"{path}:{line_no}: not a cryptofeed capture line "
                    "('<seconds>: <message>', '<url> <-> <start>' or '<url> <- <ts>: <sent>')"
                )
            conn.count += 1
            ms = _seconds_ms(path, line_no, header.group(2).encode())
            return HeaderLine(line_no, header.group(1), ms, conn.current)
        ms = _seconds_ms(path, line_no, match.group(1))
        return CaptureLine(line_no, ms, line[match.end() :], conn.current)
    if fmt == "cryptofeed-v3":
        return _v3_line(path, line_no, line)
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


_V3_FORM = (
    'a cryptofeed v3 line ({"t": "header"|"connect"|"send"|"recv"|"http", "conn": ..., '
    '"ts": <seconds>, ...})'
)


def _v3_line(
    path: Path, line_no: int, line: bytes
) -> CaptureLine | HeaderLine | SkippedLine | None:
    try:
        rec = _v3.decode(line)
    except msgspec.DecodeError as exc:
        raise ValidationError(f"{path}:{line_no}: not {_V3_FORM}: {exc}") from None
    if rec.t == "header":
        return None  # file metadata: what was recorded, when
    if rec.t in ("send", "http"):
        return SkippedLine(line_no, "sent" if rec.t == "send" else "http", rec.conn)
    if rec.t not in ("connect", "recv"):
        raise ValidationError(f"{path}:{line_no}: unknown cryptofeed v3 record t={rec.t!r}")
    if _SECONDS.fullmatch(bytes(rec.ts)) is None:
        raise ValidationError(f"{path}:{line_no}: {rec.t} without a receive time in seconds")
    ms = _seconds_ms(path, line_no, bytes(rec.ts))
    if rec.t == "connect":
        if rec.addr is None:
            raise ValidationError(f"{path}:{line_no}: connect without addr")
        return HeaderLine(line_no, rec.addr, ms, rec.conn)
    if rec.data is None:
        raise ValidationError(f"{path}:{line_no}: recv without data")
    try:
        payload = rec.data.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(f"{path}:{line_no}: recv data is not UTF-8 text") from None
    return CaptureLine(line_no, ms, payload, rec.conn)


def sniff_size(path: Path) -> int:
    """Size of ``path`` on disk (progress is reported on compressed bytes read)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


__all__ = ["FORMATS", "CaptureLine", "HeaderLine", "SkippedLine", "read_capture"]
