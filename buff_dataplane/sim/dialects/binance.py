"""The Binance dialects of the simulator: USD-M futures and spot.

Shared, as the venue shares it: stream names ``<lower-case symbol>@<suffix>``; a
connection on ``.../stream?streams=a/b`` gets combined-stream messages
(``{"stream":...,"data":...}``), one on ``.../ws/<stream>`` or ``.../ws`` bare ones;
``SUBSCRIBE`` / ``UNSUBSCRIBE`` / ``LIST_SUBSCRIPTIONS`` answered as the venue does; REST
``aggTrades`` (fromId, startTime/endTime, limit <= 1000, ``X-MBX-USED-WEIGHT-1M``, 429
with ``Retry-After`` past the weight limit), ``klines`` (the 12-column layout, built from
the same tape by :func:`klines`), ``exchangeInfo`` and ``time``; errors as
``{"code": -1121, "msg": "Invalid symbol."}``.

Each market's facts::

                     binance-usdm                      binance-spot
    WS paths         any; /market, /public routes      /stream, /ws, /ws/<stream>
    streams          aggTrade, bookTicker, markPrice   aggTrade, bookTicker
    server pings     every 180 s                       every 20 s, pong within 60 s
    REST prefix      /fapi/v1                          /api/v3
    aggTrades        weight 20; start..end < 1 h       weight 4; no window limit;
                     (-1127); endTime alone: from 0    endTime alone: the latest before it
    klines           limit <= 1500; weight 1/2/5       limit <= 1000; weight 2; 1s too
    weight limit     2400 / min                        6000 / min
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import ClassVar
from urllib.parse import parse_qs

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Response

from buff_dataplane.core.bars import TIMEFRAMES
from buff_dataplane.core.errors import ValidationError
from buff_dataplane.feeds.binance_spot.parse import to_canonical as spot_canonical
from buff_dataplane.sim import binance_spot as spot
from buff_dataplane.sim import binance_usdm as usdm
from buff_dataplane.sim.dialects.base import SimHost, Subscription
from buff_dataplane.sim.http import respond
from buff_dataplane.sim.tape import TapeTrade

_NO_WINDOW = 1 << 62


class BinanceDialect:
    """What both Binance markets do alike; a subclass states one market's facts."""

    venue: ClassVar[str]
    prefix: ClassVar[str]  # of the REST paths
    ping_interval_s: ClassVar[float]
    ping_timeout_s: ClassVar[float]
    weight_limit_1m: ClassVar[int]
    agg_trades_weight: ClassVar[int]
    window_limit_ms: ClassVar[int | None]  # startTime..endTime must span less
    end_alone_latest: ClassVar[bool]  # endTime alone: the latest trades before it
    klines_max: ClassVar[int]
    intervals: ClassVar[Mapping[str, int]]
    suffixes: ClassVar[Mapping[str, str]]  # channel -> stream suffix
    routes: ClassVar[frozenset[str] | None]  # path prefixes served; None: any

    # -- WebSocket -----------------------------------------------------------------------

    def open(self, path: str, query: str) -> Subscription | None:
        parts = path.strip("/").split("/")
        if parts[-1] == "stream":
            route = parts[:-1]
            streams = parse_qs(query).get("streams", [""])[-1]
            sub = Subscription({s for s in streams.split("/") if s}, combined=True)
        elif parts[-1] == "ws":
            route, sub = parts[:-1], Subscription(set(), combined=False)
        elif len(parts) >= 2 and parts[-2] == "ws":
            route, sub = parts[:-2], Subscription({parts[-1]}, combined=False)
        else:
            route, sub = parts, Subscription()
            if self.routes is not None:
                return None
        if self.routes is not None and "/".join(route) not in self.routes:
            return None
        return sub

    def control(self, sub: Subscription, message: str | bytes) -> list[str]:
        try:
            req = json.loads(message)
            method, rid = req["method"], req.get("id")
            params = req.get("params", [])
        except (ValueError, KeyError, TypeError, AttributeError):
            return [json.dumps({"code": 2, "msg": "Invalid request: malformed JSON"})]
        if method == "SUBSCRIBE":
            sub.streams |= {p for p in params if isinstance(p, str)}
            return [json.dumps({"result": None, "id": rid})]
        if method == "UNSUBSCRIBE":
            sub.streams -= {p for p in params if isinstance(p, str)}
            return [json.dumps({"result": None, "id": rid})]
        if method == "LIST_SUBSCRIPTIONS":
            return [json.dumps({"result": sorted(sub.streams), "id": rid})]
        return [json.dumps({"code": 2, "msg": f"Invalid request: {method}", "id": rid})]

    def wants(self, sub: Subscription, channel: str, symbol: str) -> bool:
        suffix = self.suffixes.get(channel)
        return suffix is not None and f"{symbol.lower()}@{suffix}" in sub.streams

    def _frame(self, sub: Subscription, channel: str, symbol: str, data: str) -> str:
        stream = f"{symbol.lower()}@{self.suffixes[channel]}"
        return usdm.combined(stream, data) if sub.combined else data

    def trade_frame(self, sub: Subscription, trade: TapeTrade) -> bytes:
        data = self.agg_trade_data(trade, trade.ts_ms)
        return self._frame(sub, "trade", trade.symbol, data).encode()

    def book_ticker_frame(self, sub: Subscription, trade: TapeTrade) -> str:
        return self._frame(sub, "book_ticker", trade.symbol, self.book_ticker_data(trade))

    def mark_price_frame(self, sub: Subscription, symbol: str, price: str, now: int) -> str:
        return self._frame(sub, "mark_price", symbol, self.mark_price_data(symbol, price, now))

    # -- what a market renders -----------------------------------------------------------

    def agg_trade_data(self, t: TapeTrade, event_ms: int) -> str:
        raise NotImplementedError

    def rest_item(self, t: TapeTrade) -> bytes:
        raise NotImplementedError

    def book_ticker_data(self, t: TapeTrade) -> str:
        raise NotImplementedError

    def mark_price_data(self, symbol: str, price: str, now: int) -> str:
        raise NotImplementedError(f"{self.venue} has no mark price stream")

    def klines_weight(self, limit: int) -> int:
        raise NotImplementedError

    def exchange_info(self, symbols: list[str], now: int) -> object:
        raise NotImplementedError

    # -- REST ----------------------------------------------------------------------------

    def failure(self, ws: ServerConnection, status: int) -> Response:
        if status in (418, 429):
            return _error(ws, status, -1003, "Too many requests.", retry_after=1)
        return _error(ws, status, -1001, "Service unavailable.")

    def rest(
        self, host: SimHost, ws: ServerConnection, path: str, query: Mapping[str, str]
    ) -> Response:
        if path == f"{self.prefix}/time":
            return _json(ws, {"serverTime": host.clock()})
        if path == f"{self.prefix}/exchangeInfo":
            return _json(ws, self.exchange_info(sorted(host.tapes), host.clock()))
        if path == f"{self.prefix}/aggTrades":
            return self._agg_trades(host, ws, query)
        if path == f"{self.prefix}/klines":
            return self._klines(host, ws, query)
        return _error(ws, 404, -1000, f"Unknown path {path}.")

    def _agg_trades(self, host: SimHost, ws: ServerConnection, q: Mapping[str, str]) -> Response:
        used = host.spend(self.agg_trades_weight)
        if used is None:
            return _error(ws, 429, -1003, "Too many requests.", retry_after=1)
        symbol = q.get("symbol", "")
        if symbol not in host.tapes:
            return _error(ws, 400, -1121, "Invalid symbol.", used=used)
        try:
            limit = int(q.get("limit", "500"))
            from_id = int(q["fromId"]) if "fromId" in q else None
            start = int(q["startTime"]) if "startTime" in q else None
            end = int(q["endTime"]) if "endTime" in q else None
        except ValueError:
            return _error(ws, 400, -1100, "Illegal characters found in a parameter.", used=used)
        if not 1 <= limit <= 1000:
            return _error(ws, 400, -1130, "Invalid data sent for a parameter.", used=used)
        if from_id is not None and (start is not None or end is not None):
            return _error(ws, 400, -1128, "Combination of optional parameters invalid.", used=used)
        span = self.window_limit_ms
        if span is not None and start is not None and end is not None and end - start >= span:
            return _error(
                ws, 400, -1127, "More than 1 hours between startTime and endTime.", used=used
            )
        rows = host.happened(symbol)
        if from_id is not None:
            rows = [t for t in rows if t.agg_id >= from_id][:limit]
        elif start is None and end is not None and self.end_alone_latest:
            rows = [t for t in rows if t.ts_ms <= end][-limit:]
        elif start is not None or end is not None:
            lo, hi = start or 0, end if end is not None else _NO_WINDOW
            rows = [t for t in rows if lo <= t.ts_ms <= hi][:limit]
        else:
            rows = rows[-limit:]
        body = "[" + ",".join(self.rest_item(t).decode() for t in host.history(rows)) + "]"
        return _respond(ws, 200, body, "application/json", used=used)

    def _klines(self, host: SimHost, ws: ServerConnection, q: Mapping[str, str]) -> Response:
        limit_n = int(q.get("limit", "500"))
        used = host.spend(self.klines_weight(limit_n))
        if used is None:
            return _error(ws, 429, -1003, "Too many requests.", retry_after=1)
        symbol, interval = q.get("symbol", ""), q.get("interval", "")
        if symbol not in host.tapes:
            return _error(ws, 400, -1121, "Invalid symbol.", used=used)
        if interval not in self.intervals:
            return _error(ws, 400, -1120, "Invalid interval.", used=used)
        return _json(
            ws,
            klines(
                host.happened(symbol),
                self.intervals[interval],
                int(q.get("startTime", host.start_ms)),
                int(q.get("endTime", host.clock())),
                min(limit_n, self.klines_max),
            ),
            used=used,
        )


class BinanceUsdmDialect(BinanceDialect):
    venue = "binance-usdm"
    prefix = "/fapi/v1"
    ping_interval_s = 180.0
    ping_timeout_s = 180.0
    weight_limit_1m = 2400
    agg_trades_weight = 20
    window_limit_ms = 3_600_000
    end_alone_latest = False
    klines_max = 1500
    intervals: ClassVar[Mapping[str, int]] = {n: ms for n, ms in TIMEFRAMES.items() if n != "1s"}
    suffixes: ClassVar[Mapping[str, str]] = {
        "trade": "aggTrade",
        "book_ticker": "bookTicker",
        "mark_price": "markPrice",
    }
    routes = None

    def agg_trade_data(self, t: TapeTrade, event_ms: int) -> str:
        return usdm.agg_trade_data(t, event_ms)

    def rest_item(self, t: TapeTrade) -> bytes:
        return usdm.rest_agg_trade_item(t)

    def book_ticker_data(self, t: TapeTrade) -> str:
        return usdm.book_ticker_data(t)

    def mark_price_data(self, symbol: str, price: str, now: int) -> str:
        return usdm.mark_price_data(symbol, price, now)

    def klines_weight(self, limit: int) -> int:
        return 1 if limit < 100 else 2 if limit < 500 else 5

    def exchange_info(self, symbols: list[str], now: int) -> object:
        rows = [{"symbol": s, "status": "TRADING", "contractType": "PERPETUAL"} for s in symbols]
        return {"symbols": rows}


class BinanceSpotDialect(BinanceDialect):
    venue = "binance-spot"
    prefix = "/api/v3"
    ping_interval_s = 20.0
    ping_timeout_s = 60.0
    weight_limit_1m = 6000
    agg_trades_weight = 4
    window_limit_ms = None
    end_alone_latest = True
    klines_max = 1000
    intervals: ClassVar[Mapping[str, int]] = dict(TIMEFRAMES)
    suffixes: ClassVar[Mapping[str, str]] = {"trade": "aggTrade", "book_ticker": "bookTicker"}
    routes = frozenset({""})

    def agg_trade_data(self, t: TapeTrade, event_ms: int) -> str:
        return spot.agg_trade_data(t, event_ms)

    def rest_item(self, t: TapeTrade) -> bytes:
        return spot.rest_agg_trade_item(t)

    def book_ticker_data(self, t: TapeTrade) -> str:
        return spot.book_ticker_data(t)

    def klines_weight(self, limit: int) -> int:
        return 2

    def exchange_info(self, symbols: list[str], now: int) -> object:
        rows: list[dict[str, str]] = []
        for s in symbols:
            row = {"symbol": s, "status": "TRADING"}
            with contextlib.suppress(ValidationError):  # one it cannot split: listed as is
                row["baseAsset"], row["quoteAsset"] = spot_canonical(s).split("-")
            rows.append(row)
        limits = [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": self.weight_limit_1m,
            }
        ]
        return {"timezone": "UTC", "serverTime": now, "rateLimits": limits, "symbols": rows}


def klines(
    trades: list[TapeTrade], tf: int, start: int, end: int, limit: int
) -> list[list[object]]:
    """The venue's 12-column klines of ``trades`` for buckets opening in [start, end]."""
    out: list[list[object]] = []
    first = start - start % tf
    by_bucket: dict[int, list[TapeTrade]] = {}
    for t in trades:
        by_bucket.setdefault(t.ts_ms - t.ts_ms % tf, []).append(t)
    prev_close: str | None = None
    for t in trades:
        if t.ts_ms < first:
            prev_close = t.price
    b = first
    last_trade = trades[-1].ts_ms if trades else first
    while b <= end and b <= last_trade and len(out) < limit:
        rows = by_bucket.get(b, [])
        if rows:
            prices = [Decimal(t.price) for t in rows]
            vol = sum((Decimal(t.qty) for t in rows), Decimal(0))
            quote = sum((Decimal(t.price) * Decimal(t.qty) for t in rows), Decimal(0))
            buys = [t for t in rows if not t.buyer_maker]
            out.append(
                [
                    b,
                    rows[0].price,
                    str(max(prices)),
                    str(min(prices)),
                    rows[-1].price,
                    str(vol),
                    b + tf - 1,
                    str(quote),
                    sum(t.last_id - t.first_id + 1 for t in rows),
                    str(sum((Decimal(t.qty) for t in buys), Decimal(0))),
                    str(sum((Decimal(t.price) * Decimal(t.qty) for t in buys), Decimal(0))),
                    "0",
                ]
            )
            prev_close = rows[-1].price
        elif prev_close is not None:
            p = prev_close
            out.append([b, p, p, p, p, "0", b + tf - 1, "0", 0, "0", "0", "0"])
        b += tf
    return out


def _respond(
    ws: ServerConnection,
    status: int,
    body: str,
    ctype: str,
    used: int | None = None,
    retry_after: int | None = None,
) -> Response:
    headers = {}
    if used is not None:
        headers["X-MBX-USED-WEIGHT-1M"] = str(used)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return respond(ws, status, body, ctype, headers)


def _json(ws: ServerConnection, obj: object, used: int | None = None) -> Response:
    return _respond(ws, 200, json.dumps(obj, separators=(",", ":")), "application/json", used)


def _error(
    ws: ServerConnection,
    status: int,
    code: int,
    msg: str,
    *,
    used: int | None = None,
    retry_after: int | None = None,
) -> Response:
    body = json.dumps({"code": code, "msg": msg})
    return _respond(ws, status, body, "application/json", used, retry_after)
