"""The Coinbase Exchange dialect of the simulator (exchanges.md section 5).

WebSocket, on ``/`` only (the venue has one URL; another path is a 404)::

    -> {"type":"subscribe","product_ids":["BTC-USD"],"channels":["matches","heartbeat"]}
    <- {"type":"subscriptions","channels":[{"name":"heartbeat","product_ids":["BTC-USD"]},
        {"name":"matches","product_ids":["BTC-USD"]}]}
    <- {"type":"last_match",...}            the latest trade, once per product subscribed
    <- {"type":"match",...}                 every trade from then on
    <- {"type":"heartbeat",...,"last_trade_id":N}   every second per product

Channels ``matches``, ``heartbeat`` and ``ticker``, as strings or as
``{"name":..., "product_ids":[...]}`` objects; ``unsubscribe`` takes the same shapes. Every
(un)subscribe is answered with a ``subscriptions`` message listing all current
subscriptions. A product the simulator does not trade or another channel is answered
``{"type":"error","message":"Failed to subscribe","reason":"BTC-USDX is not a valid
product"}`` and changes nothing; a frame that is not a JSON object, ``{"type":"error",
"message":"Malformed JSON"}``. The server's protocol pings stand for the venue's (no
application ping exists). A heartbeat's ``last_trade_id`` is the last trade the
connection's player reached, including trades a ``drop`` fault never sent: exactly how
the venue tells a client it missed matches.

REST (every error ``{"message": ...}``)::

    GET /products/{id}/trades   after=<id> (older) | before=<id> (newer), limit <= 1000
                                (default 1000), newest first; headers CB-BEFORE / CB-AFTER
                                = the first / last trade id of the page
    GET /products/{id}/candles  granularity 60|300|900|3600|21600|86400, start, end (ISO
                                8601, both included), at most 300 buckets; newest first;
                                no row for a bucket without trades
    GET /products               the tape's products, online
    GET /time                   {"iso": ..., "epoch": ...}

A request costs 1 of ``weight_limit_1m`` per minute (the venue's 10/s, per minute here);
past it, and for the ``rest429`` fault, HTTP 429 ``{"message":"Rate limit exceeded"}``
with no ``Retry-After`` (the venue documents none). An unknown product is a 404
``{"message":"NotFound"}``.

Not simulated: the close after 5 s without a subscribe, ``ErrSlowConsume`` /
``ErrSlowRead`` disconnects, and authenticated channels (``level2``, ``full``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Response

from buff_dataplane.core.errors import PayloadRejected
from buff_dataplane.feeds.common import iso_ms
from buff_dataplane.sim import coinbase as wire
from buff_dataplane.sim.dialects.base import SimHost, Subscription
from buff_dataplane.sim.http import respond
from buff_dataplane.sim.tape import TapeTrade

CHANNEL_OF: Final[Mapping[str, str]] = {
    "trade": "matches",
    "book_ticker": "ticker",
    "heartbeat": "heartbeat",
}
VENUE_CHANNELS: Final = frozenset(CHANNEL_OF.values())
GRANULARITIES: Final = frozenset((60, 300, 900, 3_600, 21_600, 86_400))
MAX_CANDLES: Final = 300
MAX_TRADES: Final = 1000
HEARTBEAT_MS: Final = 1000


@dataclass
class CoinbaseSub(Subscription):
    """A connection's state: ``streams`` holds ``"<channel>:<product>"``; requests wait in
    ``pending`` for :meth:`CoinbaseDialect.unprompted`, which knows the products."""

    pending: list[dict[str, Any]] = field(default_factory=list)
    beats: dict[str, int] = field(default_factory=dict)  # product -> last heartbeat time


def _error(message: str, reason: str | None = None) -> str:
    body = {"type": "error", "message": message}
    if reason is not None:
        body["reason"] = reason
    return json.dumps(body, separators=(",", ":"))


def _wanted(request: dict[str, Any]) -> set[tuple[str, str]] | str:
    """(channel, product) pairs a (un)subscribe names; a str: why it is refused."""
    top = request.get("product_ids", [])
    channels = request.get("channels")
    if not isinstance(top, list) or not isinstance(channels, list) or not channels:
        return "a subscribe needs `channels` (and `product_ids`)"
    pairs: set[tuple[str, str]] = set()
    for ch in channels:
        if isinstance(ch, str):
            name, products = ch, top
        elif isinstance(ch, dict) and isinstance(ch.get("name"), str):
            name, products = ch["name"], ch.get("product_ids", top)
        else:
            return f"{json.dumps(ch)} is not a channel"
        if name not in VENUE_CHANNELS:
            return f"{name} is not a valid channel"
        if not isinstance(products, list) or not products:
            return f"channel {name} names no product"
        pairs |= {(name, p) for p in products if isinstance(p, str)}
        bad = [p for p in products if not isinstance(p, str)]
        if bad:
            return f"{json.dumps(bad[0])} is not a valid product"
    return pairs


class CoinbaseDialect:
    venue: Final = "coinbase"
    ping_interval_s: Final = 30.0
    ping_timeout_s: Final = 30.0
    weight_limit_1m: Final = 600  # 10 requests per second

    # -- WebSocket -----------------------------------------------------------------------

    def open(self, path: str, query: str) -> Subscription | None:
        return CoinbaseSub(combined=False) if path in ("", "/") else None

    def control(self, sub: Subscription, message: str | bytes) -> list[str]:
        try:
            request = json.loads(message)
        except ValueError:
            return [_error("Malformed JSON")]
        if not isinstance(request, dict):
            return [_error("Malformed JSON")]
        kind = request.get("type")
        if kind not in ("subscribe", "unsubscribe") or not isinstance(sub, CoinbaseSub):
            return [_error("Failed to subscribe", f"{kind!r} is not a valid type")]
        sub.pending.append(request)  # answered by unprompted(), which knows the products
        return []

    def unprompted(self, host: SimHost, sub: Subscription, now: int) -> list[str]:
        if not isinstance(sub, CoinbaseSub):
            return []
        out: list[str] = []
        while sub.pending:
            out += self._answer(host, sub, sub.pending.pop(0))
        for product in sorted(host.tapes):
            if f"heartbeat:{product}" not in sub.streams or product not in sub.played:
                continue
            if now - sub.beats.get(product, now - HEARTBEAT_MS) >= HEARTBEAT_MS:
                sub.beats[product] = now
                out.append(wire.heartbeat_message(product, sub.played[product], now))
        return out

    def _answer(self, host: SimHost, sub: CoinbaseSub, request: dict[str, Any]) -> list[str]:
        pairs = _wanted(request)
        if isinstance(pairs, str):
            return [_error("Failed to subscribe", pairs)]
        unknown = sorted({p for _, p in pairs if p not in host.tapes})
        if unknown:
            return [_error("Failed to subscribe", f"{unknown[0]} is not a valid product")]
        names = {f"{c}:{p}" for c, p in pairs}
        if request["type"] == "unsubscribe":
            sub.streams -= names
            return [self._subscriptions(sub)]
        fresh = sorted(p for c, p in pairs if c == "matches" and f"matches:{p}" not in sub.streams)
        sub.streams |= names
        out = [self._subscriptions(sub)]
        for product in fresh:  # the most recent trade, replayed
            last = self._last(host, sub, product)
            if last is not None:
                out.append(wire.match_message(last, "last_match").decode())
        return out

    def _last(self, host: SimHost, sub: CoinbaseSub, product: str) -> TapeTrade | None:
        tape = host.tapes[product]
        reached = sub.played.get(product)
        if reached is None or not tape:
            return None
        return tape[reached - tape[0].agg_id]  # tape ids are contiguous

    @staticmethod
    def _subscriptions(sub: Subscription) -> str:
        by_channel: dict[str, list[str]] = {}
        for stream in sorted(sub.streams):
            channel, _, product = stream.partition(":")
            by_channel.setdefault(channel, []).append(product)
        rows = [{"name": c, "product_ids": ps} for c, ps in sorted(by_channel.items())]
        return json.dumps({"type": "subscriptions", "channels": rows}, separators=(",", ":"))

    def wants(self, sub: Subscription, channel: str, symbol: str) -> bool:
        name = CHANNEL_OF.get(channel)
        return name is not None and f"{name}:{symbol}" in sub.streams

    def trade_frame(self, sub: Subscription, trade: TapeTrade) -> bytes:
        return wire.match_message(trade)

    def book_ticker_frame(self, sub: Subscription, trade: TapeTrade) -> str:
        return wire.ticker_message(trade)

    def mark_price_frame(self, sub: Subscription, symbol: str, price: str, now: int) -> str:
        raise NotImplementedError("coinbase has no mark price channel")

    # -- REST ----------------------------------------------------------------------------

    def failure(self, ws: ServerConnection, status: int) -> Response:
        if status == 429:
            return _json(ws, 429, {"message": "Rate limit exceeded"})
        if status == 418:
            return _json(ws, 418, {"message": "I'm a teapot"})
        return _json(ws, status, {"message": "Service Unavailable"})

    def rest(
        self, host: SimHost, ws: ServerConnection, path: str, query: Mapping[str, str]
    ) -> Response:
        if path == "/time":
            now = host.clock()
            epoch = f"{now // 1000}.{now % 1000:03d}"
            body = f'{{"iso":"{wire.iso_ms(now)}","epoch":{epoch}}}'
            return respond(ws, 200, body, "application/json")
        if path == "/products":
            return _json(ws, 200, [_product(p) for p in sorted(host.tapes)])
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[0] == "products" and parts[2] in ("trades", "candles"):
            if host.spend(1) is None:
                return self.failure(ws, 429)
            if parts[1] not in host.tapes:
                return _json(ws, 404, {"message": "NotFound"})
            if parts[2] == "trades":
                return _trades(host, ws, parts[1], query)
            return _candles(host, ws, parts[1], query)
        return _json(ws, 404, {"message": "NotFound"})


def _product(product: str) -> dict[str, object]:
    base, quote = product.split("-", 1)
    return {
        "id": product,
        "base_currency": base,
        "quote_currency": quote,
        "quote_increment": "0.01",
        "base_increment": "0.00000001",
        "display_name": f"{base}/{quote}",
        "status": "online",
        "trading_disabled": False,
    }


def _json(
    ws: ServerConnection, status: int, obj: object, headers: Mapping[str, str] | None = None
) -> Response:
    return respond(ws, status, json.dumps(obj, separators=(",", ":")), "application/json", headers)


def _trades(host: SimHost, ws: ServerConnection, product: str, q: Mapping[str, str]) -> Response:
    try:
        limit = int(q.get("limit", str(MAX_TRADES)))
        after = int(q["after"]) if "after" in q else None
        before = int(q["before"]) if "before" in q else None
    except ValueError:
        return _json(ws, 400, {"message": "invalid cursor or limit"})
    if not 1 <= limit <= MAX_TRADES:
        return _json(ws, 400, {"message": f"limit must be between 1 and {MAX_TRADES}"})
    rows = host.happened(product)
    if after is not None:
        rows = [t for t in rows if t.agg_id < after][-limit:]
    elif before is not None:
        rows = [t for t in rows if t.agg_id > before][:limit]
    else:
        rows = rows[-limit:]
    rows = host.history(rows[::-1])  # newest first: a page cut short keeps its newest
    body = "[" + ",".join(wire.rest_trade_item(t).decode() for t in rows) + "]"
    cursors = {"CB-BEFORE": str(rows[0].agg_id), "CB-AFTER": str(rows[-1].agg_id)} if rows else {}
    return respond(ws, 200, body, "application/json", cursors)


def _when(text: str | None, name: str) -> int | None:
    if text is None:
        return None
    try:
        return iso_ms(text, name)
    except PayloadRejected:
        return None


def _candles(host: SimHost, ws: ServerConnection, product: str, q: Mapping[str, str]) -> Response:
    try:
        g = int(q.get("granularity", "60"))
    except ValueError:
        g = 0
    if g not in GRANULARITIES:
        return _json(ws, 400, {"message": "Unsupported granularity"})
    step = g * 1000
    start, end = _when(q.get("start"), ".start"), _when(q.get("end"), ".end")
    if ("start" in q and start is None) or ("end" in q and end is None):
        return _json(ws, 400, {"message": "start and end must be ISO 8601 times"})
    if start is None or end is None:  # the latest MAX_CANDLES buckets
        end = host.clock()
        start = end - (MAX_CANDLES - 1) * step
    first, last = start - start % step, end - end % step
    if last < first:
        return _json(ws, 400, {"message": "start must be before end"})
    if (last - first) // step + 1 > MAX_CANDLES:
        return _json(
            ws,
            400,
            {
                "message": "granularity too small for the requested time range. "
                f"Count of aggregations requested exceeds {MAX_CANDLES}"
            },
        )
    body = wire.candles(host.happened(product), g, first, last)
    return respond(ws, 200, body, "application/json")
