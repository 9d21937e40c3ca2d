"""Binance spot REST: historical aggregated trades for back-fill, klines for cross-checks.

Endpoints (base ``https://api.binance.com``, public, no key)::

    GET /api/v3/aggTrades      symbol, fromId | startTime/endTime, limit <= 1000   weight 4
    GET /api/v3/klines         symbol, interval, startTime, endTime, limit <= 1000 weight 2
    GET /api/v3/exchangeInfo                                                       weight 20
    GET /api/v3/time                                                               weight 1

What differs from USD-M (venue docs): since 2025-02-26 ``startTime`` and ``endTime`` may
be sent alone and their span is no longer limited to an hour; spot history is complete
from listing (paged by ``fromId``), so no gap is too old to repair; the IP limit is 6000
weight per minute; klines include ``1s``. An item carries the extra ``M`` field::

    {"a":26129,"p":"0.01633102","q":"4.70443515","f":27781,"l":27781,"T":1498793709153,"m":true,"M":true}

Everything else (the checks on a page, retries, the weight budget, rejections) is shared
with USD-M in :mod:`buff_dataplane.feeds.binance_rest`.

Usage::

    async with httpx.AsyncClient() as client:
        rest = BinanceSpotRest(client, BinanceSpotRest.default_base_url)
        page = await rest.agg_trades("BTCUSDT", from_id=1_257_346_680)
"""

from __future__ import annotations

from typing import ClassVar, Final

from buff_dataplane.feeds.base import Parser
from buff_dataplane.feeds.binance_rest import BinanceRest
from buff_dataplane.feeds.binance_spot.parse import PARSER

KLINE_INTERVALS: Final[tuple[str, ...]] = (
    "1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w",
    "1M",
)  # fmt: skip
# The venue keeps every trade since listing: a century stands for "no retention limit".
FULL_HISTORY_MS: Final = 100 * 365 * 86_400_000

__all__ = ["BinanceSpotRest"]


class BinanceSpotRest(BinanceRest):
    """The spot REST endpoints this product uses (see the module docstring)."""

    venue: ClassVar[str] = "binance-spot"
    parser: ClassVar[Parser] = PARSER
    default_base_url: ClassVar[str] = "https://api.binance.com"
    prefix: ClassVar[str] = "/api/v3"
    retention_ms: ClassVar[int] = FULL_HISTORY_MS
    max_window_ms: ClassVar[int] = FULL_HISTORY_MS  # no window limit since 2025-02-26
    klines_limit: ClassVar[int] = 1000
    weight_limit_1m: ClassVar[int] = 6000
    intervals: ClassVar[tuple[str, ...]] = KLINE_INTERVALS
    agg_trades_weight: ClassVar[int] = 4
    klines_weight: ClassVar[int] = 2
    exchange_info_weight: ClassVar[int] = 20
