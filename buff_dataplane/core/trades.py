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


def content_key(trade: Trade) -> tuple[object, ...]:
    """What must match for two reports of one trade id to be the same trade.

    A venue's wrapper and push time may differ between two sends of the same trade (a
    WebSocket resend, the REST item of a back-fill); price, size, side, trade time and
    covered ids may not. Decimals compare by value, so ``"1.50"`` equals ``"1.5"``.
    """
    return (
        trade.price,
        trade.size,
        trade.taker_side,
        trade.ts_ms,
        trade.first_trade_id,
        trade.last_trade_id,
    )


# In a map of trade id -> content digest: an id accounted for inside another print's
# covered span (an OKX print of several matches), whose own content is not reported.
# CPython's hash() never returns -1, so no content digest equals it.
COVERED = -1


def content_digest(trade: Trade) -> int:
    """A 64-bit digest of :func:`content_key`, for this process only.

    What a capture keeps per recent trade id (a small int, not the parsed fields) to tell
    an exact duplicate from a conflict. It is Python's tuple hash: decimals hash by value
    (``"1.50"`` and ``"1.5"`` alike), strings by a per-process seed, so digests are never
    stored or compared across processes. Two different contents share a digest with a
    probability near 2**-61; the cost of one would be a conflict counted as a duplicate.
    """
    return hash(content_key(trade))
