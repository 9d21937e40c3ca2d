"""Quarantine: refused payloads, kept with their reason instead of being dropped.

One append-only JSON-lines file per venue and UTC day of receipt:
``quarantine/<venue>/<YYYY-MM-DD>.jsonl``. Each line holds the receive time, venue,
stream (when known), a snake_case reason, a detail, where the payload came from, its
SHA-256 and the payload itself in base64 (bytes that may not be UTF-8).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import msgspec

from buff_dataplane.core.errors import StorageError
from buff_dataplane.core.ids import validate_venue


class QuarantineRecord(msgspec.Struct, frozen=True, kw_only=True):
    received_ms: int
    venue: str
    stream_id: str | None
    reason: str
    detail: str
    origin: str | None
    payload_sha256: str
    payload_b64: str

    @property
    def payload(self) -> bytes:
        return base64.b64decode(self.payload_b64)


def _day(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms // 1000, tz=dt.UTC).strftime("%Y-%m-%d")


class Quarantine:
    def __init__(self, root: Path, *, fsync: bool) -> None:
        self.dir = root
        self._fsync = fsync
        self._files: dict[Path, IO[bytes]] = {}
        self.counts: Counter[str] = Counter()

    def add(
        self,
        *,
        venue: str,
        payload: bytes,
        reason: str,
        received_ms: int,
        detail: str = "",
        stream_id: str | None = None,
        origin: str | None = None,
    ) -> QuarantineRecord:
        validate_venue(venue)
        record = QuarantineRecord(
            received_ms=received_ms,
            venue=venue,
            stream_id=stream_id,
            reason=reason,
            detail=detail[:500],
            origin=origin,
            payload_sha256=hashlib.sha256(payload).hexdigest(),
            payload_b64=base64.b64encode(payload).decode("ascii"),
        )
        path = self.dir / venue / f"{_day(received_ms)}.jsonl"
        fh = self._files.get(path)
        try:
            if fh is None:
                path.parent.mkdir(parents=True, exist_ok=True)
                fh = self._files[path] = path.open("ab")
            fh.write(msgspec.json.encode(record, order="sorted") + b"\n")
        except OSError as exc:
            raise StorageError(f"cannot write quarantine {path}: {exc.strerror}") from exc
        self.counts[reason] += 1
        return record

    def flush(self) -> None:
        for fh in self._files.values():
            fh.flush()
            if self._fsync:
                os.fsync(fh.fileno())

    def close(self) -> None:
        self.flush()
        for fh in self._files.values():
            fh.close()
        self._files.clear()


_decoder = msgspec.json.Decoder(QuarantineRecord)


def read_quarantine(root: Path) -> Iterator[QuarantineRecord]:
    """Every quarantined record under ``root`` in file-name order, then line order."""
    if not root.is_dir():
        return
    for path in sorted(root.glob("*/*.jsonl")):
        with path.open("rb") as fh:
            for line in fh:
                if line.endswith(b"\n"):
                    yield _decoder.decode(line)
