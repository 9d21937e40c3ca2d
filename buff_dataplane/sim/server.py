"""An exchange simulator on loopback: real WebSocket and HTTP on one port, in a venue's
dialect.

``SimConfig(venue=...)`` chooses the dialect (:mod:`buff_dataplane.sim.dialects`):
``binance-usdm`` (the default) or ``binance-spot``. The dialect speaks the venue: its
WebSocket paths, subscribe protocol and message renderings, and its REST endpoints
(for Binance: aggTrades, klines, exchangeInfo, time, with the request-weight header and
429 past the weight limit). This module owns what every dialect shares: the protocol
pings, pacing, and fault injection.

Everything comes from one seeded tape per symbol (:mod:`buff_dataplane.sim.tape`),
anchored at the simulator's start: a trade is sent when the clock reaches its time, and
REST serves only trades that have happened. So the true trades and bars are known, and
whatever a capture misses can be found and repaired. Faults (:mod:`.faults`) include
``drop:N@AT`` (N trades never sent over WebSocket but served by REST: a repairable hole)
and ``restconflict:K`` (REST serves the K-th tape trade with another quantity).

``sim.rest_requests`` counts HTTP requests; ``sim.sent_ids`` the trade ids sent over
WebSocket; ``sim.happened(symbol)`` is the tape up to now. A tape wholly in the past
(``SimConfig(start_ms=..., duration_s=...)`` ending before now) gives REST its whole
history at once; a ``clock`` may be injected to drive the REST weight window.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import heapq
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from buff_dataplane.sim.dialects import Dialect, Subscription, dialect_for
from buff_dataplane.sim.dialects.base import Unprompted
from buff_dataplane.sim.dialects.binance import klines
from buff_dataplane.sim.faults import FaultPlan, WsFault, parse_faults
from buff_dataplane.sim.http import respond
from buff_dataplane.sim.tape import TapeSpec, TapeTrade, generate

__all__ = ["ExchangeSim", "SimConfig", "klines", "wall_ms"]


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class SimConfig:
    """The simulator's settings; None takes the dialect's value (the venue's)."""

    symbols: tuple[str, ...] = ("BTCUSDT",)  # venue symbols
    seed: int = 1
    rate: float = 20.0  # mean trades per second per symbol
    duration_s: float = 3_600.0
    faults: str = ""
    ping_interval_s: float | None = None  # also the pong timeout when given
    mark_price_interval_s: float = 1.0
    weight_limit_1m: int | None = None
    start_ms: int | None = None  # tape start (default: the clock when the simulator starts)
    pace: str = "realtime"  # or "max": send the tape as fast as the socket takes it
    venue: str = "binance-usdm"  # the dialect

    def __post_init__(self) -> None:
        dialect_for(self.venue)  # refuse a venue the simulator cannot speak, now


@dataclass
class _Conn:
    number: int
    sub: Subscription
    trades_sent: int = 0
    last_sent: list[bytes] = field(default_factory=list)
    silent: bool = False  # a "silence" fault: nothing more is sent, unprompted frames neither


class ExchangeSim:
    """``async with ExchangeSim(config) as sim:`` serves on 127.0.0.1 (``sim.port``)."""

    def __init__(self, config: SimConfig | None = None, clock: Callable[[], int] = wall_ms) -> None:
        self.config = config or SimConfig()
        self.dialect: Dialect = dialect_for(self.config.venue)
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
        ping = cfg.ping_interval_s
        self._server = await serve(
            self._handle,
            host,
            port,
            process_request=self._process_request,
            ping_interval=ping if ping is not None else self.dialect.ping_interval_s,
            ping_timeout=ping if ping is not None else self.dialect.ping_timeout_s,
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
        path = urlsplit(ws.request.path if ws.request else "/")
        conn = _Conn(self._conns, self.dialect.open(path.path, path.query) or Subscription())
        bind = getattr(self.dialect, "bind", None)  # optional: a dialect that checks names
        if bind is not None:
            bind(conn.sub, self)
        sender = asyncio.create_task(self._play(ws, conn))
        self._players.add(sender)
        sender.add_done_callback(self._players.discard)
        try:
            async for message in ws:
                for reply in self.dialect.control(conn.sub, message):
                    await ws.send(reply)
                await self._unprompted(ws, conn, self.clock())
        except ConnectionClosed:
            pass
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await sender
            self._previous_tail = conn.last_sent[-1000:]

    def _merged(self, from_ms: int) -> Iterator[TapeTrade]:
        tapes = [(t for t in tape if t.ts_ms >= from_ms) for _, tape in sorted(self.tapes.items())]
        return heapq.merge(*tapes, key=lambda t: (t.ts_ms, t.symbol, t.agg_id))

    async def _play_max(self, ws: ServerConnection, conn: _Conn) -> None:
        """Benchmark pace: the tape in bursts of pre-built frames, no clock, no faults."""
        while not conn.sub.streams:
            await asyncio.sleep(0.01)
        batch: list[bytes] = []
        for trade in self._merged(0):
            if not self.dialect.wants(conn.sub, "trade", trade.symbol):
                continue
            batch.append(self.dialect.trade_frame(conn.sub, trade))
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
        from_ms = self.clock()
        for symbol, tape in self.tapes.items():  # what came before this connection
            i = bisect.bisect_left(tape, from_ms, key=lambda t: t.ts_ms)
            if i:
                conn.sub.played[symbol] = tape[i - 1].agg_id
        batch_frame = getattr(self.dialect, "trade_batch_frame", None)  # optional hook
        for group in self._batched(self._merged(from_ms), batch_frame is not None):
            trade = group[-1]
            while True:
                now = self.clock()
                if now >= next_mark:
                    next_mark = now + int(self.config.mark_price_interval_s * 1000)
                    await self._send_marks(ws, conn, now)
                if trade.ts_ms <= now:
                    break
                await asyncio.sleep(max(1, min(trade.ts_ms, next_mark) - now) / 1000)
            sub = conn.sub
            sub.played[trade.symbol] = trade.agg_id
            if not silent and self.dialect.wants(sub, "book_ticker", trade.symbol):
                await ws.send(self.dialect.book_ticker_frame(sub, trade))
            if silent or not self.dialect.wants(sub, "trade", trade.symbol):
                continue
            if drop_left > 0:  # a "drop" fault: never sent, still on the tape (REST has it)
                drop_left -= 1
                continue
            frame = (
                self.dialect.trade_frame(sub, trade)
                if batch_frame is None
                else batch_frame(sub, group)
            )
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
                silent = conn.silent = True
            elif fault.name == "late":
                hold_left, release_at = fault.arg or 1, n + 2 * (fault.arg or 1)
            elif fault.name == "drop":
                drop_left = fault.arg or 0
            elif fault.name == "malformed":
                await ws.send(frame[: len(frame) // 2].decode())
            elif fault.name == "conflict":
                changed = replace(trade, qty=str(Decimal(trade.qty) + Decimal("0.001")))
                await ws.send(self.dialect.trade_frame(sub, changed).decode())
        await self._idle(ws, conn, next_mark)  # the tape ran out: stay connected

    async def _idle(self, ws: ServerConnection, conn: _Conn, next_mark: int) -> None:
        """After the tape: nothing more, but what a venue sends unasked (heartbeats)."""
        if not isinstance(self.dialect, Unprompted):
            await asyncio.Future()
        interval = int(self.config.mark_price_interval_s * 1000)
        while True:
            now = self.clock()
            if now >= next_mark:
                next_mark = now + interval
                await self._unprompted(ws, conn, now)
            await asyncio.sleep(max(1, next_mark - now) / 1000)

    @staticmethod
    def _batched(trades: Iterator[TapeTrade], batching: bool) -> Iterator[list[TapeTrade]]:
        """The tape as messages: one trade each, or, for a dialect with the optional
        ``trade_batch_frame(sub, trades)`` hook (Bybit), the trades of one symbol and one
        millisecond together, as the venue pushes a match's fills in one message. Faults
        count messages; ``sent_ids`` gets a batch's last trade."""
        group: list[TapeTrade] = []
        for trade in trades:
            if group and not (
                batching and (trade.symbol, trade.ts_ms) == (group[0].symbol, group[0].ts_ms)
            ):
                yield group
                group = []
            group.append(trade)
        if group:
            yield group

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
            if self.dialect.wants(conn.sub, "mark_price", symbol):
                last = self._last_price(symbol, now)
                if last is not None:
                    await ws.send(self.dialect.mark_price_frame(conn.sub, symbol, last, now))
        await self._unprompted(ws, conn, now)

    async def _unprompted(self, ws: ServerConnection, conn: _Conn, now: int) -> None:
        """What the venue sends unasked (dialects with ``unprompted``: heartbeats, ...)."""
        if conn.silent or not isinstance(self.dialect, Unprompted):
            return
        for frame in self.dialect.unprompted(self, conn.sub, now):
            await ws.send(frame)

    def _last_price(self, symbol: str, now: int) -> str | None:
        price = None
        for t in self.tapes[symbol]:
            if t.ts_ms > now:
                break
            price = t.price
        return price

    # -- HTTP ------------------------------------------------------------------------------

    async def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if request.headers.get("Upgrade", "").lower() == "websocket":
            if self.dialect.open(url.path, url.query) is not None:
                return None
            return self.dialect.rest(self, ws, url.path, query)  # no such path: its 404
        self.rest_requests += 1
        if "restslow" in self.plan.rest:
            await asyncio.sleep(self.plan.rest["restslow"] / 1000)
        if self.plan.take_rest("resthtml"):
            return respond(ws, 200, "<html><body>maintenance</body></html>", "text/html")
        for name, status in (("rest418", 418), ("rest429", 429)):
            if self.plan.take_rest(name):
                return self.dialect.failure(ws, status)
        if self.plan.take_rest("rest5xx"):
            return self.dialect.failure(ws, 503)
        return self.dialect.rest(self, ws, url.path, query)

    def spend(self, weight: int) -> int | None:
        """The weight used this minute after spending ``weight``; None past the limit."""
        minute = self.clock() // 60_000
        used = self._weight.get(minute, 0) + weight
        self._weight = {minute: used}
        limit = self.config.weight_limit_1m or self.dialect.weight_limit_1m
        return used if used <= limit else None

    def history(self, rows: list[TapeTrade]) -> list[TapeTrade]:
        """A REST history page as served: faults resttruncate and restconflict applied."""
        if self.plan.take_rest("resttruncate"):
            rows = rows[: len(rows) // 2]
        if "restconflict" in self.plan.rest:
            rows = [self._rest_conflict(t) for t in rows]
        return rows

    def _rest_conflict(self, t: TapeTrade) -> TapeTrade:
        """The K-th trade of its symbol's tape with another quantity (fault restconflict:K)."""
        if t.agg_id != self.tapes[t.symbol][0].agg_id + self.plan.rest["restconflict"] - 1:
            return t
        return replace(t, qty=str(Decimal(t.qty) + Decimal("0.001")))


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
