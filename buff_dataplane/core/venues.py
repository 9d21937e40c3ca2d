"""What each venue's trade ids prove, as a table (pure; read by gaps, bars, capture).

=================  ============  ==========================================================
venue              trade ids     why
=================  ============  ==========================================================
``binance-spot``   contiguous    aggregate id ``a``: each print's id follows the last one
``binance-usdm``   contiguous    aggregate id ``a`` (``f``/``l`` are raw ids, not contiguous)
``coinbase``       contiguous    ``trade_id`` per product (observed, not documented)
``kraken``         contiguous    v2 ``trade_id``, a sequence number per book
``okx-swap``       covered       ``tradeId`` ends a print of ``count`` consecutive matches:
                                 the matches, not the prints, are contiguous
``bybit-linear``   unordered     UUIDs: they recognise a resent trade, they prove nothing
=================  ============  ==========================================================

*contiguous*: the next print's id is the last one's plus one, so a jump proves a loss.
*covered*: a print covers the ids ``first_trade_id..last_trade_id`` (its own id when the
print is one match) and the covered ranges of consecutive prints touch. *unordered*: ids
only identify; losses are found from downtime windows alone, an empty bucket cannot be
proven empty, and bars carry no trade-id range.
"""

from __future__ import annotations

from typing import Final, Literal, NamedTuple

from buff_dataplane.core.errors import ValidationError
from buff_dataplane.core.ids import validate_venue
from buff_dataplane.core.trades import Trade

TradeIds = Literal["contiguous", "covered", "unordered"]

_TRADE_IDS: Final[dict[str, TradeIds]] = {
    "binance-spot": "contiguous",
    "binance-usdm": "contiguous",
    "bybit-linear": "unordered",
    "coinbase": "contiguous",
    "kraken": "contiguous",
    "okx-swap": "covered",
}


class IdRules(NamedTuple):
    """The bar builders' view of a venue's ids (keyword arguments of build_bars)."""

    ids_contiguous: bool  # a jump proves a loss; an empty bucket can be proven empty
    ids_cover: bool  # continuity runs over first..last of each print
    ids_ordered: bool  # ids have an order: bars carry first/last trade id


def trade_ids(venue: str) -> TradeIds:
    validate_venue(venue)
    try:
        return _TRADE_IDS[venue]
    except KeyError:
        raise ValidationError(f"venue {venue} has no trade-id rule") from None


def id_rules(venue: str) -> IdRules:
    mode = trade_ids(venue)
    return IdRules(mode != "unordered", mode == "covered", mode != "unordered")


def id_span(trade: Trade, mode: TradeIds) -> tuple[int, int]:
    """The ids a print accounts for in the venue's id sequence, ``(lo, hi)`` inclusive."""
    if mode == "covered":
        lo = trade.trade_id if trade.first_trade_id is None else trade.first_trade_id
        hi = trade.trade_id if trade.last_trade_id is None else trade.last_trade_id
        return lo, hi
    return trade.trade_id, trade.trade_id
