"""Binance USD-M futures message parser (pure; shapes in :mod:`..binance_common`).

A recorded ``btcusdt@trade`` message (nkaz001/hftbacktest, 2024-08-08)::

    {"stream":"btcusdt@trade","data":{"e":"trade","E":1723161256322,"T":1723161256322,
     "s":"BTCUSDT","t":5266583935,"p":"61800.30","q":"0.006","X":"MARKET","m":false}}

parses to ``Parsed(kind="trade", channel="trade", venue_symbol="BTCUSDT",
symbol="BTC-USDT-PERP", event_ts_exchange_ms=1723161256322, trade=Trade(trade_id=5266583935,
price=Decimal("61800.30"), size=Decimal("0.006"), taker_side="buy", ts_ms=1723161256322,
first_trade_id=None, last_trade_id=None), trades=(<that trade>,))``: a
Binance message holds one trade, and ``trades`` holds it too.

Only perpetuals map: ``BTCUSDT`` -> ``BTC-USDT-PERP``; a delivery contract
(``BTCUSDT_240927``) is refused as ``unsupported_instrument``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from buff_dataplane.feeds.base import Parsed
from buff_dataplane.feeds.binance_common import KINDS, BinanceParser
from buff_dataplane.feeds.symbols import SymbolTable

VENUE: Final = "binance-usdm"
# USD-M margin/quote assets of the perpetuals (exchangeInfo `quoteAsset`).
QUOTES: Final[tuple[str, ...]] = ("USDT", "USDC", "BUSD")
# Perpetuals whose quote is not in QUOTES (ETHBTC, listed 2023, is quoted in BTC).
OVERRIDES: Final[Mapping[str, tuple[str, str]]] = {"ETHBTC": ("ETH", "BTC")}

PARSER: Final = BinanceParser(
    symbols=SymbolTable(venue=VENUE, quotes=QUOTES, overrides=OVERRIDES, perpetual=True),
    kinds=KINDS,
)


def parse(payload: bytes) -> Parsed:
    """Parse one USD-M message; raise PayloadRejected if it is out of contract."""
    return PARSER.parse(payload)


def to_canonical(venue_symbol: str) -> str:
    """``BTCUSDT`` -> ``BTC-USDT-PERP``."""
    return PARSER.to_canonical(venue_symbol)


def to_venue(symbol: str) -> str:
    """``BTC-USDT-PERP`` -> ``BTCUSDT``."""
    return PARSER.to_venue(symbol)
