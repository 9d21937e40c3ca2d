"""A trade print, as every venue parser reports it (pure; shared by feeds and bars)."""

from __future__ import annotations

from decimal import Decimal

import msgspec

TAKER_SIDES: tuple[str, ...] = ("buy", "sell")


class Trade(msgspec.Struct, frozen=True, kw_only=True):
    """One trade print as the venue reported it.

    ``trade_id`` is the venue's id of the print (Binance aggTrade ``a``, trade ``t``).
    ``first_trade_id`` / ``last_trade_id`` are the raw trade ids an aggregated print covers
    (Binance aggTrade ``f`` / ``l``), None for an unaggregated trade.
    """

    trade_id: int
    price: Decimal
    size: Decimal
    taker_side: str
    ts_ms: int
    first_trade_id: int | None
    last_trade_id: int | None
