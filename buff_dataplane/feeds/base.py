"""What every venue parser returns, and the interface a venue parser offers.

A parser is pure: ``parse`` gets the exact bytes of one message and returns a frozen
:class:`Parsed`, or raises :class:`~buff_dataplane.core.errors.PayloadRejected` with a short
snake_case reason (the caller quarantines the payload under that reason). Reasons used by
the parsers in this package:

=========================  ===============================================================
``not_json``               the bytes are not one JSON document (truncated, bad UTF-8, ...)
``unknown_message``        valid JSON, but not a message shape this venue's parser knows
``bad_field``              a known shape with a missing, mistyped or out-of-range field
``stream_symbol_mismatch`` a combined-stream wrapper names another symbol than its data
``stream_kind_mismatch``   a combined-stream wrapper names another stream than its data
``unsupported_instrument`` a symbol this product does not map (delivery contract, unknown quote)
``other_product``          a valid symbol of another product of the venue (an OKX spot pair)
``mixed_symbols``          one message names several instruments where one stream is expected
``no_trade_id``            a trade message of a protocol that gives trades no id (Kraken v1)
``unexpected_batch``       several trades where the contract is one (a REST history item)
=========================  ===============================================================

Times are integer UTC epoch milliseconds; prices and sizes are exact :class:`~decimal.Decimal`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import msgspec

from buff_dataplane.core.errors import PayloadRejected
from buff_dataplane.core.trades import TAKER_SIDES, Trade

__all__ = ["TAKER_SIDES", "Parsed", "Parser", "Trade"]


class Parsed(msgspec.Struct, frozen=True, kw_only=True):
    """The parser's summary of one message.

    ``kind`` names the message shape (venue-specific, e.g. ``aggTrade``); ``channel`` is one
    of :data:`buff_dataplane.core.ids.CHANNELS`. ``venue_symbol`` / ``symbol`` are None when
    the message names no instrument (acks, errors, a REST depth snapshot).
    ``event_ts_exchange_ms`` is None only when the message carries no time at all.

    ``trades`` holds every trade of the message, in message order; it is non-empty exactly
    when ``channel == "trade"``. Several venues batch trades (a Bybit ``publicTrade`` data
    array, OKX ``trades``, Kraken v2 ``trade``), and the raw log keeps one event per
    message, so one Parsed may carry many trades. For a trade message,
    ``event_ts_exchange_ms`` is the earliest trade time of the batch (for one trade: its
    time). Consumers iterate ``trades``; one that needs exactly one trade (a REST item)
    says so with :func:`single_trade`.
    """

    kind: str
    channel: str
    venue_symbol: str | None
    symbol: str | None
    event_ts_exchange_ms: int | None
    trades: tuple[Trade, ...] = ()
    # A heartbeat's statement of the venue's latest trade id on this instrument (Coinbase
    # ``heartbeat.last_trade_id``): a gap fact even when no later trade shows the jump.
    stated_last_trade_id: int | None = None


def single_trade(parsed: Parsed) -> Trade | None:
    """The trade of a message that holds exactly one; None for a non-trade message.

    For readers whose input is one trade per payload by contract (a REST history item):
    a batch there is out of contract and refused, never reduced to its first trade.
    """
    if not parsed.trades:
        return None
    if len(parsed.trades) != 1:
        raise PayloadRejected(
            "unexpected_batch", f"{parsed.kind} holds {len(parsed.trades)} trades, expected one"
        )
    return parsed.trades[0]


@runtime_checkable
class Parser(Protocol):
    """A venue's message parser and instrument mapping."""

    @property
    def venue(self) -> str:
        """The venue id, e.g. ``binance-usdm``."""
        ...

    def parse(self, payload: bytes) -> Parsed:
        """Parse one message; raise PayloadRejected(reason, detail) if it is out of contract."""
        ...

    def to_canonical(self, venue_symbol: str) -> str:
        """The canonical key of a venue symbol (``BTCUSDT`` -> ``BTC-USDT-PERP``)."""
        ...

    def to_venue(self, symbol: str) -> str:
        """The venue symbol of a canonical key; the inverse of :meth:`to_canonical`."""
        ...
