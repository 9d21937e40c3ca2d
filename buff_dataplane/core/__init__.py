"""Pure core: identifiers, decimals, events, config, errors.

Nothing here does I/O, reads a clock, or imports asyncio, sockets, httpx, websockets or
pyarrow; a test holds this line.
"""

from buff_dataplane.core.config import LogConfig
from buff_dataplane.core.decimals import canonical_decimal, parse_decimal
from buff_dataplane.core.errors import (
    BuffError,
    ConfigError,
    FeedError,
    ImmutabilityError,
    IncompleteDataError,
    IntegrityError,
    LockedError,
    PayloadRejected,
    StorageError,
    ValidationError,
    exit_code_for,
)
from buff_dataplane.core.events import SCHEMA_VERSION, RawEvent
from buff_dataplane.core.ids import (
    CHANNELS,
    VENUES,
    StreamId,
    validate_channel,
    validate_symbol,
    validate_venue,
)

__all__ = [
    "CHANNELS",
    "SCHEMA_VERSION",
    "VENUES",
    "BuffError",
    "ConfigError",
    "FeedError",
    "ImmutabilityError",
    "IncompleteDataError",
    "IntegrityError",
    "LockedError",
    "LogConfig",
    "PayloadRejected",
    "RawEvent",
    "StorageError",
    "StreamId",
    "ValidationError",
    "canonical_decimal",
    "exit_code_for",
    "parse_decimal",
    "validate_channel",
    "validate_symbol",
    "validate_venue",
]
