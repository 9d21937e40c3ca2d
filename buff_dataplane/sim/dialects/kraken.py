"""The Kraken spot dialect of the simulator: WebSocket v2 and the public REST API.

Tape symbols are v2 names (``SimConfig(venue="kraken", symbols=("BTC/USD",))``); REST
knows each pair by its REST name and its result key too (:data:`PAIRS`).

WebSocket (``/v2`` only; exchanges.md 6.1, 6.2, 8)::

    on connect          {"channel":"status","type":"update","data":[{...,"system":"online"}]}
    subscribe           one ack per symbol: {"method":"subscribe","req_id":1,"result":
                        {"channel":"trade","snapshot":true,"symbol":"BTC/USD"},"success":true,
                        "time_in":...,"time_out":...}; then, when asked, the snapshot: the
                        latest 50 trades in one message (ticker: the latest state)
    unknown pair        {"error":"Currency pair not supported XBT/USD","method":"subscribe",
                        "success":false,"symbol":"XBT/USD",...}
    unsubscribe         the same acks with "method":"unsubscribe"
    ping                {"method":"pong","req_id":N,"time_in":...,"time_out":...}
    idle                {"channel":"heartbeat"} about once a second without trades, once
                        anything is subscribed
    trades              one ``trade`` update per trade, prices and sizes JSON numbers

The status, the (un)subscribe answers and the heartbeats go out through the server's
optional ``unprompted`` hook (:class:`~buff_dataplane.sim.dialects.base.Unprompted`):
answers need the tapes (an unknown pair, a snapshot), which ``control`` does not see.

REST (errors in an HTTP 200 ``{"error":[...]}``; a request past ``weight_limit_1m`` per
minute is ``EGeneral:Too many requests``; fault rest429 answers that too, rest418
``EAPI:Rate limit exceeded``, rest5xx an HTTP 503 ``EService:Unavailable``)::

    /0/public/Time        {"unixtime": s, "rfc1123": ...}
    /0/public/AssetPairs  {key: {"altname","wsname" (v1 name),"base","quote","status"}}
    /0/public/Trades      pair (REST name or key), since (ns, or s below 1e10; exclusive),
                          count 1..1000 (default 1000): {key: rows, "last": ns of the last}
    /0/public/OHLC        pair, interval (minutes), since (s; exclusive): the latest 720
                          intervals, no row where nothing traded, the last one still open
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Response

from buff_dataplane.sim import kraken as render
from buff_dataplane.sim.dialects.base import SimHost, Subscription
from buff_dataplane.sim.http import respond
from buff_dataplane.sim.tape import TapeTrade

# v2 name -> (REST name, result key, v1 wsname); other tape symbols: "ABC/USD" -> ABCUSD.
PAIRS: Final[Mapping[str, tuple[str, str, str]]] = {
    "BTC/USD": ("XBTUSD", "XXBTZUSD", "XBT/USD"),
    "BTC/EUR": ("XBTEUR", "XXBTZEUR", "XBT/EUR"),
    "ETH/USD": ("ETHUSD", "XETHZUSD", "ETH/USD"),
    "ETH/BTC": ("ETHXBT", "XETHXXBT", "ETH/XBT"),
    "SOL/USD": ("SOLUSD", "SOLUSD", "SOL/USD"),
}
_CHANNELS: Final = {"trade": "trade", "ticker": "book_ticker"}  # v2 channel -> ours
OHLC_MINUTES: Final = (1, 5, 15, 30, 60, 240, 1440, 10080, 21600)
SNAPSHOT_TRADES: Final = 50
TRADES_MAX: Final = 1000
OHLC_ROWS: Final = 720
_SECONDS_BELOW: Final = 10**10  # a `since` below this is seconds, else nanoseconds
HEARTBEAT_MS: Final = 1000
CONNECTION_ID: Final = 12393906104898154338


@dataclass
class KrakenSubscription(Subscription):
    """A v2 connection's state: (un)subscribe requests waiting for the tapes, whether the
    status went out, and the heartbeat clock (what the player had reached a beat ago)."""

    requests: list[Any] = field(default_factory=list)
    greeted: bool = False
    beat_at: int = 0
    beat_mark: dict[str, int] = field(default_factory=dict)


def names(symbol: str) -> tuple[str, str, str]:
    """(REST name, result key, v1 wsname) of a tape symbol (a v2 name)."""
    known = PAIRS.get(symbol)
    if known is not None:
        return known
    plain = symbol.replace("/", "")
    return plain, plain, symbol


def _now_text() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _answer(body: dict[str, object]) -> str:
    now = _now_text()
    return json.dumps({**body, "time_in": now, "time_out": now}, separators=(",", ":"))


class KrakenDialect:
    venue: ClassVar[str] = "kraken"
    ping_interval_s: ClassVar[float] = 30.0  # protocol pings (not documented by Kraken)
    ping_timeout_s: ClassVar[float] = 30.0
    weight_limit_1m: ClassVar[int] = 60  # about one public request a second

    # -- WebSocket -----------------------------------------------------------------------

    def open(self, path: str, query: str) -> Subscription | None:
        return KrakenSubscription(set(), combined=False) if path.rstrip("/") == "/v2" else None

    def control(self, sub: Subscription, message: str | bytes) -> list[str]:
        """A ping is answered at once; a (un)subscribe waits for :meth:`unprompted`, which
        sees the tapes (an unknown pair is refused, a snapshot is the latest trades)."""
        try:
            req = json.loads(message)
            method = req["method"]
        except (ValueError, KeyError, TypeError):
            return [_answer({"error": "Malformed request", "success": False})]
        if method == "ping":
            rid = req.get("req_id")
            return [_answer({"method": "pong", **({"req_id": rid} if rid is not None else {})})]
        if isinstance(sub, KrakenSubscription):
            sub.requests.append(req)
        return []

    def unprompted(self, host: SimHost, sub: Subscription, now: int) -> list[str]:
        """The status on connect, the answers to (un)subscribe requests with their
        snapshots, and a heartbeat once a second while no trade came."""
        if not isinstance(sub, KrakenSubscription):
            return []
        out: list[str] = []
        if not sub.greeted:
            sub.greeted = True
            out.append(render.status_message(CONNECTION_ID))
        while sub.requests:
            out += self._subscribe(host, sub, sub.requests.pop(0))
        if now >= sub.beat_at:
            if sub.streams and sub.played == sub.beat_mark:
                out.append('{"channel":"heartbeat"}')
            sub.beat_at, sub.beat_mark = now + HEARTBEAT_MS, dict(sub.played)
        return out

    def _subscribe(self, host: SimHost, sub: Subscription, req: Mapping[str, Any]) -> list[str]:
        method, rid = req["method"], req.get("req_id")
        head: dict[str, object] = {"method": method}
        if rid is not None:
            head["req_id"] = rid
        if method not in ("subscribe", "unsubscribe"):
            return [_answer({**head, "error": f"Method not found {method}", "success": False})]
        params = req.get("params")
        if not isinstance(params, dict) or not isinstance(params.get("symbol"), list):
            return [_answer({**head, "error": "Missing field symbol", "success": False})]
        channel = params.get("channel")
        if channel not in _CHANNELS:
            return [_answer({**head, "error": f"Channel {channel} not found", "success": False})]
        snapshot = params.get("snapshot", channel == "ticker") is True
        out: list[str] = []
        for symbol in params["symbol"]:
            if symbol not in host.tapes:
                error = f"Currency pair not supported {symbol}"
                out.append(_answer({**head, "error": error, "success": False, "symbol": symbol}))
                continue
            stream = f"{channel}:{symbol}"
            result = {"channel": channel, "snapshot": snapshot, "symbol": symbol}
            out.append(_answer({**head, "result": result, "success": True}))
            if method == "unsubscribe":
                sub.streams.discard(stream)
                continue
            sub.streams.add(stream)
            # What the player has reached: later trades come as updates.
            reached = [t for t in host.happened(symbol) if t.agg_id <= sub.played.get(symbol, -1)]
            if snapshot and reached and channel == "trade":
                out.append(render.trade_message(reached[-SNAPSHOT_TRADES:], "snapshot"))
            elif snapshot and reached:
                out.append(render.ticker_message(reached[-1], "snapshot"))
        return out

    def wants(self, sub: Subscription, channel: str, symbol: str) -> bool:
        name = "trade" if channel == "trade" else "ticker" if channel == "book_ticker" else None
        return name is not None and f"{name}:{symbol}" in sub.streams

    def trade_frame(self, sub: Subscription, trade: TapeTrade) -> bytes:
        return render.trade_message([trade]).encode()

    def book_ticker_frame(self, sub: Subscription, trade: TapeTrade) -> str:
        return render.ticker_message(trade)

    def mark_price_frame(self, sub: Subscription, symbol: str, price: str, now: int) -> str:
        raise NotImplementedError("kraken spot has no mark price")

    # -- REST ----------------------------------------------------------------------------

    def failure(self, ws: ServerConnection, status: int) -> Response:
        if status == 429:
            return _error(ws, "EGeneral:Too many requests")
        if status == 418:
            return _error(ws, "EAPI:Rate limit exceeded")
        return _error(ws, "EService:Unavailable", status=503)

    def rest(
        self, host: SimHost, ws: ServerConnection, path: str, query: Mapping[str, str]
    ) -> Response:
        if path == "/0/public/Time":
            now = host.clock()
            rfc = dt.datetime.fromtimestamp(now // 1000, dt.UTC)
            return _ok(
                ws, {"unixtime": now // 1000, "rfc1123": rfc.strftime("%a, %d %b %y %T +0000")}
            )
        if path == "/0/public/AssetPairs":
            return _ok(ws, self._asset_pairs(host))
        if path in ("/0/public/Trades", "/0/public/OHLC"):
            if host.spend(1) is None:
                return _error(ws, "EGeneral:Too many requests")
            symbol = self._symbol(host, query.get("pair", ""))
            if symbol is None:
                return _error(ws, "EQuery:Unknown asset pair")
            if path == "/0/public/Trades":
                return self._trades(host, ws, symbol, query)
            return self._ohlc(host, ws, symbol, query)
        return _error(ws, "EGeneral:Unknown method", status=404)

    def _symbol(self, host: SimHost, pair: str) -> str | None:
        for symbol in sorted(host.tapes):
            rest_name, key, _ = names(symbol)
            if pair in (rest_name, key):
                return symbol
        return None

    def _asset_pairs(self, host: SimHost) -> dict[str, object]:
        out: dict[str, object] = {}
        for symbol in sorted(host.tapes):
            rest_name, key, wsname = names(symbol)
            base, _, quote = wsname.partition("/")
            out[key] = {
                "altname": rest_name,
                "wsname": wsname,
                "base": base,
                "quote": quote,
                "pair_decimals": 1,
                "lot_decimals": 8,
                "status": "online",
            }
        return out

    def _trades(
        self, host: SimHost, ws: ServerConnection, symbol: str, q: Mapping[str, str]
    ) -> Response:
        try:
            count = int(q.get("count", str(TRADES_MAX)))
            since = int(q.get("since", "0"))
        except ValueError:
            return _error(ws, "EGeneral:Invalid arguments")
        if not 1 <= count <= TRADES_MAX or since < 0:
            return _error(ws, "EGeneral:Invalid arguments")
        since_ns = since * 10**9 if since < _SECONDS_BELOW else since
        happened = host.happened(symbol)
        if "since" in q:
            rows = [t for t in happened if render.time_ns(t) > since_ns][:count]
        else:
            rows = happened[-count:]
        served = host.history(rows)
        last = render.time_ns(served[-1]) if served else since_ns
        body = "[" + ",".join(render.rest_row(t) for t in served) + "]"
        key = names(symbol)[1]
        text = f'{{"error":[],"result":{{"{key}":{body},"last":"{last}"}}}}'
        return respond(ws, 200, text, "application/json")

    def _ohlc(
        self, host: SimHost, ws: ServerConnection, symbol: str, q: Mapping[str, str]
    ) -> Response:
        try:
            minutes = int(q.get("interval", "1"))
            since = int(q.get("since", "0"))
        except ValueError:
            return _error(ws, "EGeneral:Invalid arguments")
        if minutes not in OHLC_MINUTES:
            return _error(ws, "EGeneral:Invalid arguments")
        tf_ms = minutes * 60_000
        now = host.clock()
        rows = render.ohlc_rows(host.happened(symbol), tf_ms, now, OHLC_ROWS)
        rows = [r for r in rows if int(str(r[0])) > since]
        open_start = (now - now % tf_ms) // 1000
        committed = [int(str(r[0])) for r in rows if int(str(r[0])) < open_start]
        last = committed[-1] if committed else since
        return _ok(ws, {names(symbol)[1]: rows, "last": last})


def _ok(ws: ServerConnection, result: object) -> Response:
    body = json.dumps({"error": [], "result": result}, separators=(",", ":"))
    return respond(ws, 200, body, "application/json")


def _error(ws: ServerConnection, error: str, *, status: int = 200) -> Response:
    return respond(ws, status, json.dumps({"error": [error]}), "application/json")
