"""A Binance USD-M exchange simulator on loopback: real WebSocket and HTTP on one port.

WebSocket, as the venue routes it: ``/market/stream?streams=btcusdt@aggTrade/...``
(combined-stream wrapper) and ``/market/ws/<stream>`` (raw), ``/public/...`` likewise;
``SUBSCRIBE`` / ``UNSUBSCRIBE`` / ``LIST_SUBSCRIPTIONS`` answered as the venue does;
protocol pings every ``ping_interval_s``. Streams: ``<sym>@aggTrade``, ``<sym>@bookTicker``
(one per trade), ``<sym>@markPrice`` (every second, with the funding rate).

HTTP: ``GET /fapi/v1/aggTrades`` (fromId, startTime/endTime with the < 1 h rule, limit
<= 1000, weight 20 and ``X-MBX-USED-WEIGHT-1M``, 429 with ``Retry-After`` past the weight
limit), ``/fapi/v1/klines`` (the venue's 12-column layout, built from the same tape),
``/fapi/v1/exchangeInfo``, ``/fapi/v1/time``.

Everything comes from one seeded tape per symbol (:mod:`buff_dataplane.sim.tape`),
anchored at the simulator's start: a trade is sent when the clock reaches its time, and
REST serves only trades that have happened. So the true trades and bars are known, and
whatever a capture misses can be found and repaired. Faults (:mod:`.faults`) include
``drop:N@AT`` (N trades never sent over WebSocket but served by REST: a repairable hole)
and ``restconflict:K`` (REST serves the K-th tape trade with another quantity).

``sim.rest_requests`` counts HTTP requests; ``sim.sent_ids`` the aggTrade ids sent over
WebSocket; ``sim.happened(symbol)`` is the tape up to now. A tape wholly in the past
(``SimConfig(start_ms=..., duration_s=...)`` ending before now) gives REST its whole
history at once; a ``clock`` may be injected to drive the REST weight window.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from decimal import Decimal
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from buff_dataplane.core.bars import TIMEFRAMES
from buff_dataplane.sim.binance_usdm import agg_trade_message, rest_agg_trade_item
from buff_dataplane.sim.faults import FaultPlan, WsFault, parse_faults
from buff_dataplane.sim.tape import TapeSpec, TapeTrade, generate

WEIGHT_LIMIT_1M = 2400
AGG_TRADES_WEIGHT = 20
INTERVALS_MS = {name: ms for name, ms in TIMEFRAMES.items() if name != "1s"}  # the venue's


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class SimConfig:
    symbols: tuple[str, ...] = ("BTCUSDT",)  # venue symbols
    seed: int = 1
    rate: float = 20.0  # mean trades per second per symbol
    duration_s: float = 3_600.0
    faults: str = ""
    ping_interval_s: float = 180.0
    mark_price_interval_s: float = 1.0
    weight_limit_1m: int = WEIGHT_LIMIT_1M
    start_ms: int | None = None  # tape start (default: the clock when the simulator starts)
    pace: str = "realtime"  # or "max": send the tape as fast as the socket takes it


@dataclass
class _Conn:
    number: int
    streams: set[str] = field(default_factory=set)
    trades_sent: int = 0
    last_sent: list[bytes] = field(default_factory=list)


class ExchangeSim:
    """``async with ExchangeSim(config) as sim:`` serves on 127.0.0.1 (``sim.port``)."""

    def __init__(self, config: SimConfig | None = None, clock: Callable[[], int] = wall_ms) -> None:
        self.config = config or SimConfig()
        self.clock = clock
        self.plan: FaultPlan = parse_faults(self.config.faults)
        self.tapes: dict[str, list[TapeTrade]] = {}
        self.start_ms = 0
        self.port = 0
        self.host = "127.0.0.1"
        self._server: Server | None = None
        self._conns = 0
        self._previous_tail: list[bytes] = []
        self._weight: dict[int, int] = {}
        self.sent_ids: dict[str, list[int]] = {}  # every aggTrade id sent, all connections
        self.rest_requests = 0
        self._players: set[asyncio.Task[None]] = set()

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> ExchangeSim:
        cfg = self.config
        self.start_ms = cfg.start_ms if cfg.start_ms is not None else self.clock()
        for i, sym in enumerate(cfg.symbols):
            self.tapes[sym] = generate(
                TapeSpec(
                    sym,
                    self.start_ms,
                    int(cfg.duration_s * 1000),
                    seed=cfg.seed * 1000 + i,
                    rate_per_s=cfg.rate,
                    start_price_ticks=6_180_030 if i == 0 else 265_012 + 1_000 * i,
                    first_agg_id=2_353_245_000 + 100_000_000 * i,
                    first_trade_id=5_266_583_935 + 100_000_000 * i,
                )
            )
            self.sent_ids[sym] = []
        self.host = host
        self._server = await serve(
            self._handle,
            host,
            port,
            process_request=self._process_request,
            ping_interval=cfg.ping_interval_s,
            ping_timeout=cfg.ping_interval_s,
            max_size=1 << 20,
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        return self

    async def stop(self) -> None:
        for task in list(self._players):  # a send blocked on a slow client must not hang us
            task.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> ExchangeSim:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def happened(self, symbol: str) -> list[TapeTrade]:
        """The tape's trades up to now (what REST may serve)."""
        now = self.clock()
        return [t for t in self.tapes[symbol] if t.ts_ms <= now]

    # -- WebSocket -----------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        self._conns += 1
        conn = _Conn(self._conns)
        path = urlsplit(ws.request.path if ws.request else "/")
        conn.streams |= _streams_of(path.path, path.query)
        sender = asyncio.create_task(self._play(ws, conn))
        self._players.add(sender)
        sender.add_done_callback(self._players.discard)
        try:
            async for message in ws:
                await self._control(ws, conn, message)
        except ConnectionClosed:
            pass
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await sender
            self._previous_tail = conn.last_sent[-1000:]

    async def _control(self, ws: ServerConnection, conn: _Conn, message: str | bytes) -> None:
        try:
            req = json.loads(message)
            method, rid = req["method"], req.get("id")
            params = req.get("params", [])
        except (ValueError, KeyError, TypeError):
            await ws.send(json.dumps({"code": 2, "msg": "Invalid request: malformed JSON"}))
            return
        if method == "SUBSCRIBE":
            conn.streams |= {p for p in params if isinstance(p, str)}
            await ws.send(json.dumps({"result": None, "id": rid}))
        elif method == "UNSUBSCRIBE":
            conn.streams -= set(params)
            await ws.send(json.dumps({"result": None, "id": rid}))
        elif method == "LIST_SUBSCRIPTIONS":
            await ws.send(json.dumps({"result": sorted(conn.streams), "id": rid}))
        else:
            await ws.send(json.dumps({"code": 2, "msg": f"Invalid request: {method}", "id": rid}))

    def _merged(self, from_ms: int) -> Iterator[TapeTrade]:
        tapes = [(t for t in tape if t.ts_ms >= from_ms) for _, tape in sorted(self.tapes.items())]
        return heapq.merge(*tapes, key=lambda t: (t.ts_ms, t.symbol, t.agg_id))

    async def _play_max(self, ws: ServerConnection, conn: _Conn) -> None:
        """Benchmark pace: the tape in bursts of pre-built frames, no clock, no faults."""
        while not conn.streams:
            await asyncio.sleep(0.01)
        batch: list[bytes] = []
        for trade in self._merged(0):
            if f"{trade.symbol.lower()}@aggTrade" not in conn.streams:
                continue
            batch.append(agg_trade_message(trade))
            self.sent_ids[trade.symbol].append(trade.agg_id)
            if len(batch) >= 500:
                await _send_burst(ws, batch)
                batch = []
        if batch:
            await _send_burst(ws, batch)
        await asyncio.Future()

    async def _play(self, ws: ServerConnection, conn: _Conn) -> None:
        if self.config.pace == "max":
            return await self._play_max(ws, conn)
        resend = next((f for f in self.plan.ws if f.name == "resend" and not f.fired), None)
        if resend is not None and conn.number > 1 and self._previous_tail:
            resend.fired = not resend.every
            for frame in self._previous_tail[-(resend.arg or 0) :]:
                await ws.send(frame.decode())
        held: list[tuple[TapeTrade, bytes]] = []
        hold_left, release_at, drop_left = 0, 0, 0
        next_mark = self.clock()
        silent = False
        for trade in self._merged(self.clock()):
            while True:
                now = self.clock()
                if now >= next_mark:
                    next_mark = now + int(self.config.mark_price_interval_s * 1000)
                    await self._send_marks(ws, conn, now)
                if trade.ts_ms <= now:
                    break
                await asyncio.sleep(max(1, min(trade.ts_ms, next_mark) - now) / 1000)
            sym = trade.symbol.lower()
            if not silent and f"{sym}@bookTicker" in conn.streams:
                await ws.send(_book_ticker(trade))
            if silent or f"{sym}@aggTrade" not in conn.streams:
                continue
            if drop_left > 0:  # a "drop" fault: never sent, still on the tape (REST has it)
                drop_left -= 1
                continue
            frame = agg_trade_message(trade)
            conn.trades_sent += 1
            n = conn.trades_sent
            if hold_left > 0:  # a "late" fault holds these back
                held.append((trade, frame))
                hold_left -= 1
            else:
                await self._send_trade(ws, conn, trade, frame)
            if held and n >= release_at:
                for held_trade, held_frame in held:
                    await self._send_trade(ws, conn, held_trade, held_frame)
                held = []
            fault = self._fault_at(n)
            if fault is None:
                continue
            if fault.name == "close":
                await _close(ws, fault.arg or 1000)
                return
            if fault.name == "silence":
                silent = True
            elif fault.name == "late":
                hold_left, release_at = fault.arg or 1, n + 2 * (fault.arg or 1)
            elif fault.name == "drop":
                drop_left = fault.arg or 0
            elif fault.name == "malformed":
                await ws.send(frame[: len(frame) // 2].decode())
            elif fault.name == "conflict":
                changed = replace(trade, qty=str(Decimal(trade.qty) + Decimal("0.001")))
                await ws.send(agg_trade_message(changed).decode())
        await asyncio.Future()  # the tape ran out: stay connected, send nothing more

    def _fault_at(self, n: int) -> WsFault | None:
        for f in self.plan.ws:
            if f.at == n and not f.fired and f.name != "resend":
                f.fired = not f.every
                return f
        return None

    async def _send_trade(
        self, ws: ServerConnection, conn: _Conn, trade: TapeTrade, frame: bytes
    ) -> None:
        await ws.send(frame.decode())
        conn.last_sent.append(frame)
        if len(conn.last_sent) > 2000:
            del conn.last_sent[:1000]
        self.sent_ids[trade.symbol].append(trade.agg_id)

    async def _send_marks(self, ws: ServerConnection, conn: _Conn, now: int) -> None:
        for symbol in sorted(self.tapes):
            if f"{symbol.lower()}@markPrice" in conn.streams:
                last = self._last_price(symbol, now)
                if last is not None:
                    await ws.send(_mark_price(symbol, last, now))

    def _last_price(self, symbol: str, now: int) -> str | None:
        price = None
        for t in self.tapes[symbol]:
            if t.ts_ms > now:
                break
            price = t.price
        return price

    # -- HTTP ------------------------------------------------------------------------------

    async def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        self.rest_requests += 1
        url = urlsplit(request.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if "restslow" in self.plan.rest:
            await asyncio.sleep(self.plan.rest["restslow"] / 1000)
        if self.plan.take_rest("resthtml"):
            return _respond(ws, 200, "<html><body>maintenance</body></html>", "text/html")
        for name, status in (("rest418", 418), ("rest429", 429)):
            if self.plan.take_rest(name):
                return _error(ws, status, -1003, "Too many requests.", retry_after=1)
        if self.plan.take_rest("rest5xx"):
            return _error(ws, 503, -1001, "Service unavailable.")
        if url.path == "/fapi/v1/time":
            return _json(ws, {"serverTime": self.clock()})
        if url.path == "/fapi/v1/exchangeInfo":
            return _json(
                ws,
                {
                    "symbols": [
                        {"symbol": s, "status": "TRADING", "contractType": "PERPETUAL"}
                        for s in sorted(self.tapes)
                    ]
                },
            )
        if url.path == "/fapi/v1/aggTrades":
            return self._agg_trades(ws, query)
        if url.path == "/fapi/v1/klines":
            return self._klines(ws, query)
        return _error(ws, 404, -1000, f"Unknown path {url.path}.")

    def _spend(self, weight: int) -> int | None:
        minute = self.clock() // 60_000
        used = self._weight.get(minute, 0) + weight
        self._weight = {minute: used}
        return used if used <= self.config.weight_limit_1m else None

    def _agg_trades(self, ws: ServerConnection, q: dict[str, str]) -> Response:
        used = self._spend(AGG_TRADES_WEIGHT)
        if used is None:
            return _error(ws, 429, -1003, "Too many requests.", retry_after=1)
        symbol = q.get("symbol", "")
        if symbol not in self.tapes:
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
        if start is not None and end is not None and end - start >= 3_600_000:
            return _error(
                ws, 400, -1127, "More than 1 hours between startTime and endTime.", used=used
            )
        rows = self.happened(symbol)
        if from_id is not None:
            rows = [t for t in rows if t.agg_id >= from_id][:limit]
        elif start is not None or end is not None:
            lo, hi = start or 0, end if end is not None else 1 << 62
            rows = [t for t in rows if lo <= t.ts_ms <= hi][:limit]
        else:
            rows = rows[-limit:]
        if self.plan.take_rest("resttruncate"):
            rows = rows[: len(rows) // 2]
        if "restconflict" in self.plan.rest:
            rows = [self._rest_conflict(t) for t in rows]
        body = "[" + ",".join(rest_agg_trade_item(t).decode() for t in rows) + "]"
        return _respond(ws, 200, body, "application/json", used=used)

    def _rest_conflict(self, t: TapeTrade) -> TapeTrade:
        """The K-th trade of its symbol's tape with another quantity (fault restconflict:K)."""
        if t.agg_id != self.tapes[t.symbol][0].agg_id + self.plan.rest["restconflict"] - 1:
            return t
        return replace(t, qty=str(Decimal(t.qty) + Decimal("0.001")))

    def _klines(self, ws: ServerConnection, q: dict[str, str]) -> Response:
        limit_n = int(q.get("limit", "500"))
        used = self._spend(1 if limit_n < 100 else 2 if limit_n < 500 else 5)
        if used is None:
            return _error(ws, 429, -1003, "Too many requests.", retry_after=1)
        symbol, interval = q.get("symbol", ""), q.get("interval", "")
        if symbol not in self.tapes:
            return _error(ws, 400, -1121, "Invalid symbol.", used=used)
        if interval not in INTERVALS_MS:
            return _error(ws, 400, -1120, "Invalid interval.", used=used)
        return _json(
            ws,
            klines(
                self.happened(symbol),
                INTERVALS_MS[interval],
                int(q.get("startTime", self.start_ms)),
                int(q.get("endTime", self.clock())),
                min(limit_n, 1500),
            ),
            used=used,
        )


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
            out.append(
                [
                    b,
                    prev_close,
                    prev_close,
                    prev_close,
                    prev_close,
                    "0",
                    b + tf - 1,
                    "0",
                    0,
                    "0",
                    "0",
                    "0",
                ]
            )
        b += tf
    return out


def _streams_of(path: str, query: str) -> set[str]:
    parts = path.strip("/").split("/")
    if len(parts) >= 2 and parts[-2] == "ws":
        return {parts[-1]}
    if parts and parts[-1] == "stream":
        streams = parse_qs(query).get("streams", [""])[-1]
        return {s for s in streams.split("/") if s}
    return set()


async def _send_burst(ws: ServerConnection, frames: list[bytes]) -> None:
    """Many text frames with one write: websockets' per-message send() tops out near 40k/s."""
    async with ws.send_context():
        for frame in frames:
            ws.protocol.send_text(frame)


async def _close(ws: ServerConnection, code: int) -> None:
    if code == 1006:  # abnormal closure: no close frame at all, the TCP connection drops
        ws.transport.abort()
    else:
        await ws.close(code, "simulated")


def _book_ticker(t: TapeTrade) -> str:
    price = Decimal(t.price)
    bid, ask = price - Decimal("0.1"), price + Decimal("0.1")
    return json.dumps(
        {
            "stream": f"{t.symbol.lower()}@bookTicker",
            "data": {
                "e": "bookTicker",
                "u": t.agg_id,
                "s": t.symbol,
                "b": str(bid),
                "B": "1.000",
                "a": str(ask),
                "A": "1.000",
                "T": t.ts_ms,
                "E": t.ts_ms + 1,
            },
        },
        separators=(",", ":"),
    )


def _mark_price(symbol: str, price: str, now: int) -> str:
    next_funding = now - now % 28_800_000 + 28_800_000
    return json.dumps(
        {
            "stream": f"{symbol.lower()}@markPrice",
            "data": {
                "e": "markPriceUpdate",
                "E": now,
                "s": symbol,
                "p": price,
                "i": price,
                "P": price,
                "r": "0.00010000",
                "T": next_funding,
            },
        },
        separators=(",", ":"),
    )


def _respond(
    ws: ServerConnection,
    status: int,
    body: str,
    ctype: str,
    used: int | None = None,
    retry_after: int | None = None,
) -> Response:
    response = ws.respond(HTTPStatus(status), body)
    headers = Headers(response.headers)
    del headers["Content-Type"]  # Headers is a multi-dict: assignment would add a value
    headers["Content-Type"] = ctype
    if used is not None:
        headers["X-MBX-USED-WEIGHT-1M"] = str(used)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    response.headers = headers
    return response


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
