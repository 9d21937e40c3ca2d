"""Binance USD-M REST: historical aggregated trades for back-fill, klines for cross-checks.

Endpoints (base ``https://fapi.binance.com``, public, no key)::

    GET /fapi/v1/aggTrades     symbol, fromId | startTime+endTime, limit <= 1000   weight 20
    GET /fapi/v1/klines        symbol, interval, startTime, endTime, limit <= 1500 weight 10
    GET /fapi/v1/exchangeInfo                                                      weight 1

Venue rules this client enforces before sending (a ValidationError, exit 2, names them):
``fromId`` is never combined with ``startTime``/``endTime`` (the venue warns it may time
out); a ``startTime``..``endTime`` span is under one hour (else the venue answers
``-1127``); ``limit`` is at most 1000. History older than :attr:`BinanceUsdmRest.retention_ms`
(48 hours, per the venue's docs of Aug 2026) cannot be queried: callers that back-fill
older gaps record them as unresolved.

Pages, their checks and the decoders are :mod:`buff_dataplane.feeds.binance_rest`'s
(shared with spot). One aggTrades item as the venue sends it::

    {"a":26129,"p":"0.01633102","q":"4.70443515","f":27781,"l":27781,"T":1498793709153,"m":true}

Retries, ``Retry-After``, 418/429 and the per-minute weight budget (header
``X-MBX-USED-WEIGHT-1M``, limit 2400) are :mod:`buff_dataplane.feeds.rest_common`'s. A
rejection (``{"code": -1121, "msg": "Invalid symbol."}``) is a ValidationError naming the
symbol and the venue's message.

Usage::

    async with httpx.AsyncClient() as client:
        rest = BinanceUsdmRest(client, BinanceUsdmRest.default_base_url)
        page = await rest.agg_trades("BTCUSDT", from_id=5_933_014)
        bars = await rest.klines("BTCUSDT", "1m", start_ms, end_ms)
"""

from __future__ import annotations

from typing import ClassVar, Final

from buff_dataplane.feeds.base import Parser
from buff_dataplane.feeds.binance_rest import (
    AggTradesPage,
    BinanceRest,
    Kline,
    decode_agg_trades,
    rejection_message,
)
from buff_dataplane.feeds.binance_rest import decode_klines as _decode_klines
from buff_dataplane.feeds.binance_usdm.parse import PARSER

KLINE_INTERVALS: Final[tuple[str, ...]] = (
    "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M",
)  # fmt: skip

__all__ = ["AggTradesPage", "BinanceUsdmRest", "Kline", "_decode_klines", "rejection_message"]


def _decode_agg_trades(
    body: bytes, request: str, lo_id: int | None, window: tuple[int, int] | None, limit: int
) -> AggTradesPage:
    """An aggTrades body checked with the USD-M parser."""
    return decode_agg_trades(PARSER, body, request, lo_id, window, limit)


class BinanceUsdmRest(BinanceRest):
    """The USD-M REST endpoints this product uses (see the module docstring)."""

    venue: ClassVar[str] = "binance-usdm"
    parser: ClassVar[Parser] = PARSER
    default_base_url: ClassVar[str] = "https://fapi.binance.com"
    prefix: ClassVar[str] = "/fapi/v1"
    retention_ms: ClassVar[int] = 48 * 3_600_000
    max_window_ms: ClassVar[int] = 3_600_000 - 1  # endTime - startTime must be < 1 h
    klines_limit: ClassVar[int] = 1500
    weight_limit_1m: ClassVar[int] = 2400
    intervals: ClassVar[tuple[str, ...]] = KLINE_INTERVALS
    agg_trades_weight: ClassVar[int] = 20
    klines_weight: ClassVar[int] = 10  # at limit > 1000
    exchange_info_weight: ClassVar[int] = 1
