"""The Bybit v5 linear dialect of the simulator (exchanges.md section 3).

WebSocket, on ``/v5/public/linear`` only (any other path: HTTP 404)::

    -> {"op":"subscribe","args":["publicTrade.BTCUSDT","tickers.BTCUSDT"],"req_id":"1"}
    <- {"success":true,"ret_msg":"","conn_id":"sim-1","req_id":"1","op":"subscribe"}
    -> {"op":"subscribe","args":["publicTrade.NOTASYMBOL"]}
    <- {"success":false,"ret_msg":"error:handler not found,topic:publicTrade.NOTASYMBOL",...}
    -> {"op":"ping"}
    <- {"success":true,"ret_msg":"pong","conn_id":"sim-1","req_id":"","op":"ping"}

``unsubscribe`` is answered like ``subscribe``; a topic subscribed twice is refused
(``error:already subscribed``); an unknown op or a message that is not JSON gets
``success:false``. Topics: ``publicTrade.<SYM>`` (one push per millisecond of the tape:
its trades together in ``data``, through the server's ``trade_batch_frame`` hook; faults
count pushes) and ``tickers.<SYM>`` (a delta per push). The
server sends no protocol pings within a test's life; the venue's 10-minute idle cut is
not simulated.

REST (every answer the envelope ``retCode``/``retMsg``/``result``/``retExtInfo``/``time``,
with ``X-Bapi-Limit``, ``X-Bapi-Limit-Status`` (remaining) and
``X-Bapi-Limit-Reset-Timestamp``)::

    GET /v5/market/recent-trade      category=linear, symbol, limit 1..1000 (default 500):
                                     the latest trades that happened, newest first
    GET /v5/market/kline             category, symbol, interval (1..720, D), start, end,
                                     limit 1..1000 (default 200): newest first, opened at
                                     the previous close (sim.bybit_linear.klines)
    GET /v5/market/instruments-info  category, limit (default 500), cursor
    GET /v5/market/time              timeSecond, timeNano

Errors: ``retCode 10001`` (params error: a bad category, symbol, interval or limit) in an
HTTP 200; more than ``weight_limit_1m`` requests in a minute: HTTP 403 "access too
frequent" (the venue's IP ban); fault answers: 429 with ``retCode 10006`` and
``Retry-After: 1``, 418 becomes the venue's 403, 503 with ``retCode 10016``; an unknown
path: HTTP 404 with a plain-text body (not the API).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Final

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Response

from buff_dataplane.sim import bybit_linear as render
from buff_dataplane.sim.dialects.base import SimHost, Subscription
from buff_dataplane.sim.http import respond
from buff_dataplane.sim.tape import TapeTrade

PATH: Final = "/v5/public/linear"
_TOPIC_RE: Final = re.compile(r"(publicTrade|tickers)\.([A-Z0-9]+)")
_CHANNEL_TOPICS: Final = {"trade": "publicTrade", "book_ticker": "tickers"}
INTERVALS: Final[Mapping[str, int]] = {
    "1": 60_000, "3": 180_000, "5": 300_000, "15": 900_000, "30": 1_800_000,
    "60": 3_600_000, "120": 7_200_000, "240": 14_400_000, "360": 21_600_000,
    "720": 43_200_000, "D": 86_400_000,
}  # fmt: skip
_MINUTE_MS: Final = 60_000


@dataclass
class BybitSubscription(Subscription):
    """A connection's topics (in ``streams``), its conn_id and the symbols served."""

    conn_id: str = ""
    symbols: frozenset[str] = field(default_factory=frozenset)


class BybitLinearDialect:
    venue: ClassVar[str] = "bybit-linear"
    ping_interval_s: ClassVar[float] = 3_600.0  # the venue sends no protocol pings
    ping_timeout_s: ClassVar[float] = 3_600.0
    weight_limit_1m: ClassVar[int] = 600  # requests; past it, the venue's 403

    def __init__(self) -> None:
        self._conns = itertools.count(1)

    # -- WebSocket -----------------------------------------------------------------------

    def open(self, path: str, query: str) -> Subscription | None:
        if path.rstrip("/") != PATH:
            return None
        return BybitSubscription(combined=False, conn_id=f"sim-{next(self._conns)}")

    def bind(self, sub: Subscription, host: SimHost) -> None:
        """The server's hook: the symbols this simulator serves (else "handler not found")."""
        if isinstance(sub, BybitSubscription):
            sub.symbols = frozenset(host.tapes)

    def _answer(self, sub: Subscription, op: str, rid: str, ok: bool, msg: str) -> str:
        conn_id = sub.conn_id if isinstance(sub, BybitSubscription) else ""
        body = {"success": ok, "ret_msg": msg, "conn_id": conn_id, "req_id": rid, "op": op}
        return json.dumps(body, separators=(",", ":"))

    def control(self, sub: Subscription, message: str | bytes) -> list[str]:
        try:
            req = json.loads(message)
            op = req["op"]
            rid = req.get("req_id", "")
            args = req.get("args", [])
        except (ValueError, KeyError, TypeError, AttributeError):
            return [self._answer(sub, "", "", False, "error:invalid request")]
        rid = rid if isinstance(rid, str) else str(rid)
        if op == "ping":
            return [self._answer(sub, "ping", rid, True, "pong")]
        if op not in ("subscribe", "unsubscribe") or not isinstance(args, list):
            return [self._answer(sub, str(op), rid, False, f"error:unsupported op {op!r}")]
        symbols = sub.symbols if isinstance(sub, BybitSubscription) else frozenset()
        for topic in args:
            m = _TOPIC_RE.fullmatch(topic) if isinstance(topic, str) else None
            refused = None
            if m is None or m.group(2) not in symbols:
                refused = "handler not found"
            elif op == "subscribe" and topic in sub.streams:
                refused = "already subscribed"
            if refused is not None:
                return [self._answer(sub, op, rid, False, f"error:{refused},topic:{topic}")]
        if op == "subscribe":
            sub.streams |= set(args)
        else:
            sub.streams -= set(args)
        return [self._answer(sub, op, rid, True, "")]

    def wants(self, sub: Subscription, channel: str, symbol: str) -> bool:
        prefix = _CHANNEL_TOPICS.get(channel)
        return prefix is not None and f"{prefix}.{symbol}" in sub.streams

    def trade_frame(self, sub: Subscription, trade: TapeTrade) -> bytes:
        return render.public_trade_message([trade], trade.ts_ms + 1)

    def trade_batch_frame(self, sub: Subscription, trades: list[TapeTrade]) -> bytes:
        """The server's optional hook: the trades of one millisecond as one push."""
        return render.public_trade_message(trades, trades[-1].ts_ms + 1)

    def book_ticker_frame(self, sub: Subscription, trade: TapeTrade) -> str:
        return render.tickers_delta(trade)

    def mark_price_frame(self, sub: Subscription, symbol: str, price: str, now: int) -> str:
        raise NotImplementedError("bybit-linear's mark price comes in tickers (book_ticker)")

    # -- REST ----------------------------------------------------------------------------

    def failure(self, ws: ServerConnection, status: int) -> Response:
        if status == 429:
            return _envelope(ws, 429, 10006, "Too many visits!", retry_after=1)
        if status == 418:  # the venue bans by 403, not 418
            return respond(ws, 403, "access too frequent", "text/plain")
        return _envelope(ws, status, 10016, "Internal server error.")

    def rest(
        self, host: SimHost, ws: ServerConnection, path: str, query: Mapping[str, str]
    ) -> Response:
        routes = {
            "/v5/market/time": self._time,
            "/v5/market/recent-trade": self._recent_trade,
            "/v5/market/kline": self._kline,
            "/v5/market/instruments-info": self._instruments,
        }
        route = routes.get(path)
        if route is None:
            return respond(ws, 404, "404 page not found", "text/plain")
        used = host.spend(1)
        if used is None:
            return respond(ws, 403, "access too frequent", "text/plain")
        now = host.clock()
        limits = {
            "X-Bapi-Limit": str(self.weight_limit_1m),
            "X-Bapi-Limit-Status": str(self.weight_limit_1m - used),
            "X-Bapi-Limit-Reset-Timestamp": str(now - now % _MINUTE_MS + _MINUTE_MS),
        }
        code, msg, result = route(host, query)
        return _envelope(ws, 200, code, msg, result, now=now, headers=limits)

    def _time(self, host: SimHost, q: Mapping[str, str]) -> tuple[int, str, object]:
        now = host.clock()
        return 0, "OK", {"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)}

    def _symbol(self, host: SimHost, q: Mapping[str, str]) -> str | None:
        """The asked symbol if the category is linear and the symbol is served."""
        if q.get("category") != "linear" or q.get("symbol") not in host.tapes:
            return None
        return q["symbol"]

    def _recent_trade(self, host: SimHost, q: Mapping[str, str]) -> tuple[int, str, object]:
        symbol = self._symbol(host, q)
        if symbol is None:
            return 10001, "params error: symbol or category invalid", {}
        limit = _int(q.get("limit", "500"))
        if limit is None or not 1 <= limit <= 1000:
            return 10001, "params error: limit must be 1..1000", {}
        rows = host.history(host.happened(symbol)[-limit:])
        items = [json.loads(render.recent_trade_item(t)) for t in reversed(rows)]
        return 0, "OK", {"category": "linear", "list": items}

    def _kline(self, host: SimHost, q: Mapping[str, str]) -> tuple[int, str, object]:
        symbol = self._symbol(host, q)
        tf = INTERVALS.get(q.get("interval", ""))
        limit = _int(q.get("limit", "200"))
        start, end = _int(q.get("start", "0")), _int(q.get("end", str(host.clock())))
        if symbol is None or tf is None:
            return 10001, "params error: symbol, category or interval invalid", {}
        if limit is None or not 1 <= limit <= 1000 or start is None or end is None:
            return 10001, "params error: limit, start or end invalid", {}
        end = min(end, host.clock())
        rows = render.klines(host.happened(symbol), tf, start or None, end, limit)
        return 0, "OK", {"symbol": symbol, "category": "linear", "list": rows}

    def _instruments(self, host: SimHost, q: Mapping[str, str]) -> tuple[int, str, object]:
        if q.get("category") != "linear":
            return 10001, "params error: category invalid", {}
        limit = _int(q.get("limit", "500"))
        offset = _int(q.get("cursor", "0") or "0")
        if limit is None or not 1 <= limit <= 1000 or offset is None:
            return 10001, "params error: limit or cursor invalid", {}
        symbols = sorted(host.tapes)
        page = symbols[offset : offset + limit]
        rows = [
            {
                "symbol": s,
                "contractType": "LinearPerpetual",
                "status": "Trading",
                "baseCoin": s.removesuffix("USDT").removesuffix("USDC"),
                "quoteCoin": s[-4:],
            }
            for s in page
        ]
        more = offset + limit < len(symbols)
        cursor = str(offset + limit) if more else ""
        return 0, "OK", {"category": "linear", "list": rows, "nextPageCursor": cursor}


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _envelope(
    ws: ServerConnection,
    status: int,
    code: int,
    msg: str,
    result: object = None,
    *,
    now: int | None = None,
    headers: Mapping[str, str] | None = None,
    retry_after: int | None = None,
) -> Response:
    body: dict[str, object] = {
        "retCode": code,
        "retMsg": msg,
        "result": {} if result is None else result,
        "retExtInfo": {},
    }
    if now is not None:
        body["time"] = now
    extra = dict(headers or {})
    if retry_after is not None:
        extra["Retry-After"] = str(retry_after)
    return respond(ws, status, json.dumps(body, separators=(",", ":")), "application/json", extra)
