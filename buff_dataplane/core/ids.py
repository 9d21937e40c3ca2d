"""Identifiers: venue, symbol, channel and stream_id, validated on every entry point.

Identifiers become directory names, so anything outside these forms (``..``, ``/``,
spaces, lower-case symbols, empty strings) is refused before any file is touched::

    venue      lower-case id            binance-usdm
    symbol     BASE-QUOTE[-PERP]        BTC-USDT-PERP      parts [A-Z0-9]{1,16}
    channel    one of CHANNELS          trade
    stream_id  venue/channel/symbol     binance-usdm/trade/BTC-USDT-PERP

The venue's own symbol (``BTCUSDT``) never appears here; adapters map it with a table.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from buff_dataplane.core.errors import ValidationError

VENUES: tuple[str, ...] = (
    "binance-spot",
    "binance-usdm",
    "bybit-linear",
    "coinbase",
    "kraken",
    "okx-swap",
)
CHANNELS: tuple[str, ...] = (
    "book_ticker",
    "control",
    "depth",
    "funding",
    "kline",
    "mark_price",
    "trade",
)

_VENUE_RE = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
_SYMBOL_RE = re.compile(r"[A-Z0-9]{1,16}-[A-Z0-9]{1,16}(?:-PERP)?")
_MAX_VENUE_LEN = 32


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def validate_venue(value: object, *, known_only: bool = True) -> str:
    """Return ``value`` if it is a venue id (and, by default, one this product knows)."""
    if not isinstance(value, str) or not value:
        raise ValidationError(f"invalid venue {_show(value)}: expected a lower-case id")
    if len(value) > _MAX_VENUE_LEN or not _VENUE_RE.fullmatch(value):
        raise ValidationError(
            f"invalid venue {_show(value)}: expected a lower-case id like 'binance-usdm'"
        )
    if known_only and value not in VENUES:
        raise ValidationError(f"unknown venue {_show(value)}: expected one of {', '.join(VENUES)}")
    return value


def validate_symbol(value: object) -> str:
    """Return ``value`` if it is a canonical instrument key (``BTC-USDT`` / ``BTC-USDT-PERP``)."""
    if not isinstance(value, str) or not _SYMBOL_RE.fullmatch(value):
        raise ValidationError(
            f"invalid symbol {_show(value)}: expected BASE-QUOTE or BASE-QUOTE-PERP "
            "with parts of 1-16 characters A-Z0-9, like 'BTC-USDT-PERP'"
        )
    return value


def validate_channel(value: object) -> str:
    """Return ``value`` if it is one of :data:`CHANNELS`."""
    if not isinstance(value, str) or value not in CHANNELS:
        raise ValidationError(
            f"invalid channel {_show(value)}: expected one of {', '.join(CHANNELS)}"
        )
    return value


class StreamId(NamedTuple):
    """``venue/channel/symbol``; build it with :meth:`parse` or :meth:`of`."""

    venue: str
    channel: str
    symbol: str

    @classmethod
    def of(cls, venue: str, channel: str, symbol: str) -> StreamId:
        return cls(validate_venue(venue), validate_channel(channel), validate_symbol(symbol))

    @classmethod
    def parse(cls, value: object) -> StreamId:
        if not isinstance(value, str) or value.count("/") != 2:
            raise ValidationError(
                f"invalid stream_id {_show(value)}: expected venue/channel/symbol, "
                "like 'binance-usdm/trade/BTC-USDT-PERP'"
            )
        venue, channel, symbol = value.split("/")
        return cls.of(venue, channel, symbol)

    def __str__(self) -> str:
        return f"{self.venue}/{self.channel}/{self.symbol}"
