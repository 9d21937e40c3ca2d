"""The raw event model (schema_version 1) and the hashes taken over it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import msgspec

SCHEMA_VERSION = 1
SOURCES: tuple[str, ...] = ("rest_backfill", "ws")
# Epoch-ms bounds accepted for any timestamp: 2000-01-01 .. 2100-01-01 UTC.
MIN_TS_MS = 946_684_800_000
MAX_TS_MS = 4_102_444_800_000
MS_PER_DAY = 86_400_000


class RawEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the raw log, as read back.

    ``event_ts_exchange_ms`` is None only when the venue's message carries no time at all
    (Binance spot bookTicker). ``origin`` says where the bytes came from (an import file and
    line, or the REST request of a back-fill); ``conn_id`` is the capture connection's
    generation id.
    """

    stream_id: str
    ingest_seq: int
    event_ts_exchange_ms: int | None
    event_ts_ingest_ms: int
    symbol: str
    channel: str
    payload_raw: bytes
    payload_sha256: bytes
    source: str
    schema_version: int = SCHEMA_VERSION
    origin: str | None = None
    conn_id: int | None = None


def payload_sha256(payload: bytes) -> bytes:
    return hashlib.sha256(payload).digest()


def payload_digest(hashes: Iterable[bytes]) -> str:
    """SHA-256 over the concatenated 32-byte payload hashes, in ingest_seq order."""
    h = hashlib.sha256()
    for item in hashes:
        h.update(item)
    return h.hexdigest()


def utc_day(ts_ms: int) -> int:
    """Days since the epoch of a UTC epoch-ms timestamp."""
    return ts_ms // MS_PER_DAY
