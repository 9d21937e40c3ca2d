"""The OKX v5 swap dialect of the simulator (exchanges.md section 4).

WebSocket: ``/ws/v5/public`` serves ``trades``, ``tickers`` and ``mark-price``;
``/ws/v5/business`` exists (``trades-all`` lives there) but this simulator serves no data
on it. A connection starts with no subscription::

    -> {"id":"1","op":"subscribe","args":[{"channel":"trades","instId":"BTC-USDT-SWAP"}]}
    <- {"id":"1","event":"subscribe","arg":{"channel":"trades","instId":"BTC-USDT-SWAP"},
        "connId":"0000002a"}                                    one ack per arg
    -> ping                                                     <- pong    (plain text)
    -> {"op":"subscribe","args":[{"channel":"trades","instId":"NOPE-USDT-SWAP"}]}
    <- {"event":"error","msg":"Subscribe failed, wrong URL or channel:trades,instId:...",
        "code":"60018","connId":"0000002a"}
    -> not JSON / no op                                         <- error 60012
    -> trades-all on /public, trades on /business               <- error 64001 / 64002

Each tape trade is one ``trades`` print of ``count`` matches (:mod:`buff_dataplane.sim.
okx_swap`), so prints covering several matches are common (the tape draws 1-7 matches).
The server sends no protocol pings worth the name (one every 10 minutes reaps dead
sockets); the venue's own 30 s idle close (4004) is not simulated.

REST (envelope ``{"code":"0","msg":"","data":[...]}``)::

    /api/v5/market/history-trades   instId, type 1|2, after, before, limit <= 100; newest
                                    first; one item per match
    /api/v5/market/candles          instId, bar, after, before, limit <= 300; newest first;
                                    only the latest 1,440 rows of the bar
    /api/v5/market/history-candles  the same without the 1,440-row horizon
    /api/v5/public/instruments      instType=SWAP
    /api/v5/public/time

Errors: ``51001`` unknown instrument (HTTP 200), ``51000`` a bad parameter (HTTP 400),
``50011`` rate limit: HTTP 429 "Too Many Requests" for the ``rest429`` fault, HTTP 200
"Rate limit reached..." past the simulator's request budget (one per request,
``weight_limit_1m`` a minute: the venue's limits are per endpoint per 2 s, this is the
simulator's approximation); ``50001`` with 503 for ``rest5xx``. No ``Retry-After``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Final

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Response

from buff_dataplane.core.bars import TIMEFRAMES
from buff_dataplane.sim import okx_swap as okx
from buff_dataplane.sim.dialects.base import SimHost, Subscription
from buff_dataplane.sim.http import respond
from buff_dataplane.sim.tape import TapeTrade

PUBLIC: Final = "/ws/v5/public"
BUSINESS: Final = "/ws/v5/business"
# OKX channel -> our channel, on /public.
PUBLIC_CHANNELS: Final[Mapping[str, str]] = {
    "trades": "trade",
    "tickers": "book_ticker",
    "mark-price": "mark_price",
}
BUSINESS_CHANNELS: Final = frozenset(("trades-all", "candle1m"))
BARS: Final[Mapping[str, int]] = {
    "1s": TIMEFRAMES["1s"],
    "1m": TIMEFRAMES["1m"],
    "3m": TIMEFRAMES["3m"],
    "5m": TIMEFRAMES["5m"],
    "15m": TIMEFRAMES["15m"],
    "30m": TIMEFRAMES["30m"],
    "1H": TIMEFRAMES["1h"],
    "2H": TIMEFRAMES["2h"],
    "4H": TIMEFRAMES["4h"],
    "6Hutc": TIMEFRAMES["6h"],
    "12Hutc": TIMEFRAMES["12h"],
    "1Dutc": TIMEFRAMES["1d"],
}
CANDLES_HORIZON: Final = 1_440  # rows of /candles; older ones are on /history-candles
_RATE_LIMITED: Final = (
    "Rate limit reached. Please refer to API documentation and throttle requests accordingly"
)


@dataclass
class OkxSubscription(Subscription):
    """A connection's (OKX channel, instId) pairs and whether it is the business URL."""

    business: bool = False
    conn_id: str = "00000000"
    symbols: frozenset[str] | None = None  # the instruments served; None: not known yet


class OkxSwapDialect:
    venue: ClassVar[str] = "okx-swap"
    ping_interval_s: ClassVar[float] = 600.0
    ping_timeout_s: ClassVar[float] = 600.0
    weight_limit_1m: ClassVar[int] = 1_200

    def __init__(self) -> None:
        self._connections = 0

    # -- WebSocket -------------------------------------------------------------------------

    def open(self, path: str, query: str) -> Subscription | None:
        if path.rstrip("/") not in (PUBLIC, BUSINESS):
            return None
        self._connections += 1
        return OkxSubscription(
            set(),
            combined=False,
            business=path.rstrip("/") == BUSINESS,
            conn_id=f"{self._connections:08x}",
        )

    def bind(self, sub: Subscription, host: SimHost) -> None:
        """The server's hook: the instruments this simulator serves (for ``60018``)."""
        if isinstance(sub, OkxSubscription):
            sub.symbols = frozenset(host.tapes)

    def _event(self, sub: Subscription, body: dict[str, object]) -> str:
        conn_id = sub.conn_id if isinstance(sub, OkxSubscription) else "00000000"
        return json.dumps({**body, "connId": conn_id}, separators=(",", ":"))

    def _error(self, sub: Subscription, code: str, msg: str, rid: object = None) -> str:
        body: dict[str, object] = {"event": "error", "code": code, "msg": msg}
        if rid is not None:
            body = {"id": rid, **body}
        return self._event(sub, body)

    def control(self, sub: Subscription, message: str | bytes) -> list[str]:
        text = message.decode(errors="replace") if isinstance(message, bytes) else message
        if text == "ping":
            return ["pong"]
        try:
            req = json.loads(text)
            op, args, rid = req["op"], req.get("args", []), req.get("id")
            if not isinstance(args, list) or not all(isinstance(a, dict) for a in args):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return [self._error(sub, "60012", f"Invalid request: {text[:200]}")]
        if op not in ("subscribe", "unsubscribe"):
            return [self._error(sub, "60012", f"Invalid request: {text[:200]}", rid)]
        replies = []
        for arg in args:
            channel, inst = str(arg.get("channel", "")), str(arg.get("instId", ""))
            refusal = self._refusal(sub, channel, inst)
            if refusal is not None:
                replies.append(self._error(sub, *refusal, rid))
                continue
            if op == "subscribe":
                sub.streams.add(f"{channel}:{inst}")
            else:
                sub.streams.discard(f"{channel}:{inst}")
            ack: dict[str, object] = {"event": op, "arg": {"channel": channel, "instId": inst}}
            replies.append(self._event(sub, {"id": rid, **ack} if rid is not None else ack))
        return replies

    def _refusal(self, sub: Subscription, channel: str, inst: str) -> tuple[str, str] | None:
        business = isinstance(sub, OkxSubscription) and sub.business
        if business and channel in PUBLIC_CHANNELS:
            return "64002", f"channel:{channel} doesn't exist on /ws/v5/business"
        if not business and channel in BUSINESS_CHANNELS:
            return "64001", f"channel:{channel} doesn't exist on /ws/v5/public, use /business"
        symbols = sub.symbols if isinstance(sub, OkxSubscription) else None
        known = channel in PUBLIC_CHANNELS or channel in BUSINESS_CHANNELS
        if not known or (symbols is not None and inst not in symbols):
            return "60018", (
                f"Subscribe failed, wrong URL or channel:{channel},instId:{inst} doesn't "
                "exist. Please use the correct URL, channel and parameters referring to "
                "API document."
            )
        return None

    def wants(self, sub: Subscription, channel: str, symbol: str) -> bool:
        return any(
            ours == channel and f"{name}:{symbol}" in sub.streams
            for name, ours in PUBLIC_CHANNELS.items()
        )

    def trade_frame(self, sub: Subscription, trade: TapeTrade) -> bytes:
        return okx.trades_push(trade).encode()

    def book_ticker_frame(self, sub: Subscription, trade: TapeTrade) -> str:
        return okx.tickers_push(trade)

    def mark_price_frame(self, sub: Subscription, symbol: str, price: str, now: int) -> str:
        return okx.mark_price_push(symbol, price, now)

    # -- REST ------------------------------------------------------------------------------

    def failure(self, ws: ServerConnection, status: int) -> Response:
        if status in (418, 429):
            return _answer(ws, status, {"msg": "Too Many Requests", "code": "50011"})
        return _envelope(ws, status, "50001", "Service temporarily unavailable")

    def rest(
        self, host: SimHost, ws: ServerConnection, path: str, query: Mapping[str, str]
    ) -> Response:
        routes = {
            "/api/v5/market/history-trades": self._history_trades,
            "/api/v5/market/candles": self._candles,
            "/api/v5/market/history-candles": self._candles,
            "/api/v5/public/instruments": self._instruments,
            "/api/v5/public/time": self._time,
        }
        route = routes.get(path)
        if route is None:
            return _envelope(ws, 404, "50000", f"Request path {path} not found")
        if host.spend(1) is None:
            return _envelope(ws, 200, "50011", _RATE_LIMITED)
        try:
            return route(host, ws, path, query)
        except _BadParam as exc:
            return _envelope(ws, 400, "51000", f"Parameter {exc} error")

    def _time(
        self, host: SimHost, ws: ServerConnection, path: str, q: Mapping[str, str]
    ) -> Response:
        return _envelope(ws, 200, "0", "", [{"ts": str(host.clock())}])

    def _instruments(
        self, host: SimHost, ws: ServerConnection, path: str, q: Mapping[str, str]
    ) -> Response:
        if q.get("instType") != "SWAP":
            raise _BadParam("instType")
        rows = [
            {
                "instType": "SWAP",
                "instId": s,
                "uly": s.removesuffix("-SWAP"),
                "instFamily": s.removesuffix("-SWAP"),
                "ctVal": okx.CT_VAL,
                "ctValCcy": s.split("-")[0],
                "settleCcy": s.split("-")[1],
                "ctType": "linear",
                "lotSz": "0.001",
                "tickSz": "0.01",
                "state": "live",
            }
            for s in sorted(host.tapes)
        ]
        return _envelope(ws, 200, "0", "", rows)

    def _history_trades(
        self, host: SimHost, ws: ServerConnection, path: str, q: Mapping[str, str]
    ) -> Response:
        inst = q.get("instId", "")
        if inst not in host.tapes:
            return _envelope(ws, 200, "51001", "Instrument ID does not exist")
        limit = _int(q, "limit") or 100
        kind = q.get("type", "1")
        if not 1 <= limit <= 100:
            raise _BadParam("limit")
        if kind not in ("1", "2"):
            raise _BadParam("type")
        after, before = _int(q, "after"), _int(q, "before")
        if kind == "2" and before is not None:
            raise _BadParam("before")  # not supported with timestamps
        by_time = kind == "2"
        prints = host.history(host.happened(inst))
        rows: list[str] = []
        for t, trade_id, size in _newest_matches(prints, after, by_time):
            if before is not None and trade_id <= before:
                break
            rows.append(okx.history_item(t, trade_id, size))
            if len(rows) == limit:
                break
        body = '{"code":"0","msg":"","data":[' + ",".join(rows) + "]}"
        return respond(ws, 200, body, "application/json")

    def _candles(
        self, host: SimHost, ws: ServerConnection, path: str, q: Mapping[str, str]
    ) -> Response:
        inst = q.get("instId", "")
        if inst not in host.tapes:
            return _envelope(ws, 200, "51001", "Instrument ID does not exist")
        bar = q.get("bar", "1m")
        if bar not in BARS:
            raise _BadParam("bar")
        limit = _int(q, "limit") or 100
        if not 1 <= limit <= 300:
            raise _BadParam("limit")
        after, before = _int(q, "after"), _int(q, "before")
        tf, now = BARS[bar], host.clock()
        rows = okx.candle_rows(host.happened(inst), tf, now)
        if path.endswith("/candles"):
            horizon = now - now % tf - (CANDLES_HORIZON - 1) * tf
            rows = [r for r in rows if int(r[0]) >= horizon]
        picked = [
            r
            for r in reversed(rows)
            if (after is None or int(r[0]) < after) and (before is None or int(r[0]) > before)
        ]
        return _envelope(ws, 200, "0", "", picked[:limit])


class _BadParam(Exception):
    """A parameter the venue refuses (51000)."""


def _int(q: Mapping[str, str], name: str) -> int | None:
    value = q.get(name)
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise _BadParam(name)
    return int(value)


def _newest_matches(
    prints: list[TapeTrade], after: int | None, by_time: bool
) -> Iterator[tuple[TapeTrade, int, str]]:
    """The matches earlier than the ``after`` cursor (a trade id, or a time), newest first."""
    for t in reversed(prints):
        if after is not None and (t.ts_ms if by_time else t.first_id) >= after:
            continue  # the whole print is at or past the cursor
        for trade_id, size in okx.matches(t):
            if by_time or after is None or trade_id < after:
                yield t, trade_id, size


def _answer(ws: ServerConnection, status: int, body: object) -> Response:
    return respond(ws, status, json.dumps(body, separators=(",", ":")), "application/json")


def _envelope(
    ws: ServerConnection, status: int, code: str, msg: str, data: Sequence[object] = ()
) -> Response:
    return _answer(ws, status, {"code": code, "msg": msg, "data": list(data)})
