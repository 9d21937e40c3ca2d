"""Binance spot message parser (pure; shapes in :mod:`..binance_common`).

A recorded ``btcusdt@trade`` message (nkaz001/hftbacktest, 2024-08-08)::

    {"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT",
     "t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}}

parses to ``Parsed(kind="trade", channel="trade", venue_symbol="BTCUSDT", symbol="BTC-USDT",
event_ts_exchange_ms=1723161255342, trade=Trade(trade_id=3735683259,
price=Decimal("61837.63000000"), size=Decimal("0.02000000"), taker_side="sell",
ts_ms=1723161255342, first_trade_id=None, last_trade_id=None), trades=(<that trade>,))``: a
Binance message holds one trade, and ``trades`` holds it too.

Spot's bookTicker has no ``e`` and no time (``event_ts_exchange_ms`` is None); spot has no
markPriceUpdate (refused as ``unknown_message``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from buff_dataplane.feeds.base import Parsed
from buff_dataplane.feeds.binance_common import KINDS, BinanceParser
from buff_dataplane.feeds.symbols import SymbolTable

VENUE: Final = "binance-spot"
# Quote assets of spot pairs, stablecoins and fiat first. None may end another one except
# AEUR/EUR, whose collisions (ADAEUR: ADA + EUR, not AD + AEUR) are in OVERRIDES.
QUOTES: Final[tuple[str, ...]] = (
    "USDT", "FDUSD", "USDC", "BUSD", "TUSD", "USDP", "DAI", "AEUR", "EURI", "PAX", "VAI",
    "BTC", "ETH", "BNB", "XRP", "TRX", "DOGE", "DOT",
    "EUR", "TRY", "GBP", "AUD", "BRL", "ARS", "JPY", "MXN", "PLN", "RON", "UAH", "ZAR",
    "COP", "CZK", "NGN", "RUB", "IDRT", "BIDR", "BVND",
)  # fmt: skip
OVERRIDES: Final[Mapping[str, tuple[str, str]]] = {
    "ADAEUR": ("ADA", "EUR"),
    "GALAEUR": ("GALA", "EUR"),
    "LUNAEUR": ("LUNA", "EUR"),
}

PARSER: Final = BinanceParser(
    symbols=SymbolTable(venue=VENUE, quotes=QUOTES, overrides=OVERRIDES, perpetual=False),
    kinds=tuple(kind for kind in KINDS if kind != "markPriceUpdate"),
)


def parse(payload: bytes) -> Parsed:
    """Parse one spot message; raise PayloadRejected if it is out of contract."""
    return PARSER.parse(payload)


def to_canonical(venue_symbol: str) -> str:
    """``BTCUSDT`` -> ``BTC-USDT``."""
    return PARSER.to_canonical(venue_symbol)


def to_venue(symbol: str) -> str:
    """``BTC-USDT`` -> ``BTCUSDT``."""
    return PARSER.to_venue(symbol)
