"""What a simulator dialect is: one venue's protocol over the shared tape and faults.

The server (:mod:`buff_dataplane.sim.server`) owns everything venue-neutral: the seeded
tapes, the clock, pacing, fault injection (close codes, silence, resend, late, drop,
malformed, conflict; 429/418/5xx, slow, truncated, HTML and conflicting REST answers), the
per-minute weight window and the counters tests read. A :class:`Dialect` speaks the
venue: which WebSocket paths exist and what a connection starts subscribed to, how a
control message is answered, how a trade, a book ticker or a mark price is rendered, and
every REST endpoint. It reads the simulator through :class:`SimHost`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Response

from buff_dataplane.sim.tape import TapeTrade


@dataclass
class Subscription:
    """What one WebSocket connection receives: the venue's stream names, and whether
    messages are wrapped as combined-stream messages (``/stream``) or sent bare (``/ws``)."""

    streams: set[str] = field(default_factory=set)
    combined: bool = True
    # Kept by the server: per symbol, the tape id of the last trade this connection's
    # player reached (sent, held back or dropped by a fault; before it connected: the
    # last earlier one). What a venue's heartbeat may state as its latest trade.
    played: dict[str, int] = field(default_factory=dict)


class SimHost(Protocol):
    """The simulator as a dialect sees it."""

    @property
    def tapes(self) -> Mapping[str, list[TapeTrade]]: ...

    @property
    def start_ms(self) -> int: ...

    def clock(self) -> int: ...

    def happened(self, symbol: str) -> list[TapeTrade]: ...

    def spend(self, weight: int) -> int | None:
        """The weight used this minute after spending ``weight``; None past the limit."""
        ...

    def history(self, rows: list[TapeTrade]) -> list[TapeTrade]:
        """A history page as served: the REST faults (truncate, conflict) applied."""
        ...


class Dialect(Protocol):
    @property
    def venue(self) -> str: ...

    @property
    def ping_interval_s(self) -> float:
        """Protocol pings from the server, this often."""
        ...

    @property
    def ping_timeout_s(self) -> float:
        """No pong for this long: the server closes the connection."""
        ...

    @property
    def weight_limit_1m(self) -> int:
        """REST request weight per minute; past it, 429."""
        ...

    def open(self, path: str, query: str) -> Subscription | None:
        """A new connection's subscription from its URL; None: no such WebSocket path.

        Optional hook, looked up by name (a dialect without it is not called):
        ``bind(sub, host)`` right after a connection opens, for a dialect whose control
        answers need the simulator (OKX refuses an unknown instId with 60018).
        """
        ...

    def control(self, sub: Subscription, message: str | bytes) -> list[str]:
        """The replies to a message the client sent (and the subscription it changes)."""
        ...

    def wants(self, sub: Subscription, channel: str, symbol: str) -> bool: ...

    def trade_frame(self, sub: Subscription, trade: TapeTrade) -> bytes:
        """One trade's message. Optional hook, looked up by name: a dialect with
        ``trade_batch_frame(sub, trades) -> bytes`` gets the trades of one symbol and one
        millisecond together, as one message (Bybit's ``publicTrade`` data array)."""
        ...

    def book_ticker_frame(self, sub: Subscription, trade: TapeTrade) -> str: ...

    def mark_price_frame(self, sub: Subscription, symbol: str, price: str, now: int) -> str: ...

    def failure(self, ws: ServerConnection, status: int) -> Response:
        """A REST fault's answer in the venue's words: 418/429 (Retry-After: 1), 503."""
        ...

    def rest(
        self, host: SimHost, ws: ServerConnection, path: str, query: Mapping[str, str]
    ) -> Response:
        """Any other HTTP request (and a WebSocket upgrade to a path :meth:`open` refused)."""
        ...


@runtime_checkable
class Unprompted(Protocol):
    """Optional, for a venue that sends frames unasked (Coinbase: its ``subscriptions``
    ack and ``last_match`` once it has looked at the products, a ``heartbeat`` per product
    every second).

    The server asks right after each client message (with its replies sent) and at every
    mark-price tick of the player (``SimConfig.mark_price_interval_s``), and sends what
    comes back in order. A dialect without this method is never asked.
    """

    def unprompted(self, host: SimHost, sub: Subscription, now: int) -> list[str]: ...
