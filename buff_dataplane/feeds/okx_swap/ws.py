"""OKX v5 WebSocket for perpetual swaps: the public URL, subscribe ops, text keep-alive.

Facts (exchanges.md section 4.1-4.3)::

    URL            wss://ws.okx.com:8443/ws/v5/public   (trades, tickers, mark-price)
    subscribe      {"id":"1","op":"subscribe",
                    "args":[{"channel":"trades","instId":"BTC-USDT-SWAP"}]}
    ack            {"id":"1","event":"subscribe",
                    "arg":{"channel":"trades","instId":"BTC-USDT-SWAP"},"connId":"a4d3ae55"}
                   one per channel and instrument
    error          {"event":"error","code":"60018","msg":"...","connId":"..."}
    keep-alive     the text ``ping`` (< 30 s idle), answered by the text ``pong``; after 30 s
                   without data the server closes with 4004
    limits         3 connection requests per second per IP; subscribe/unsubscribe/login
                   <= 480 per hour per connection; too many channels: close 4008/4009

Channels: ``trade`` <- ``trades`` (aggregated prints: ``count`` matches ending at
``tradeId``; the ``trades-all`` channel lives on ``/ws/v5/business``, so one public
connection is enough), ``book_ticker`` <- ``tickers`` (best bid/ask and the last trade),
``mark_price`` <- ``mark-price``. ``id`` is the connection's generation as text (OKX:
up to 32 alphanumerics), so an ack names the connection it answers.

The venue documents no connection lifetime, so no planned rotation (``rotate_after_s``
None; the capture's own ``rotate_after_s`` still applies). It documents no channel count
per connection either (only the 4008/4009 closes and a 64 KB request); this adapter puts
at most :data:`MAX_ARGS_PER_CONNECTION` channel-instrument pairs on one connection, our
choice, in one subscribe op per connection (well under 480 per hour). The keep-alive is a
``ping`` every 20 s whatever the traffic: simpler than a timer reset on every message, and
a busy connection loses nothing by it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from buff_dataplane.core.errors import ValidationError
from buff_dataplane.feeds.ws_base import Keepalive

VENUE: Final = "okx-swap"
DEFAULT_ENDPOINT: Final = "wss://ws.okx.com:8443"
PATH: Final = "/ws/v5/public"
CHANNELS: Final[Mapping[str, str]] = {  # our channel -> OKX channel
    "book_ticker": "tickers",
    "mark_price": "mark-price",
    "trade": "trades",
}
MAX_ARGS_PER_CONNECTION: Final = 100
IDLE_CLOSE_S: Final = 30  # the server closes a connection silent this long (4004)
KEEPALIVE: Final = Keepalive(20.0, "ping")


@dataclass(frozen=True)
class OkxPlan:
    """One public connection and the (channel, instId) pairs it subscribes to."""

    name: str
    args: tuple[tuple[str, str], ...]  # (OKX channel, instId)

    @property
    def venue_symbols(self) -> tuple[str, ...]:
        return tuple(sorted({inst for _, inst in self.args}))

    def url(self, endpoint: str) -> str:
        return f"{endpoint.rstrip('/')}{PATH}"

    def subscribe(self, request_id: int) -> list[str]:
        args = [{"channel": channel, "instId": inst} for channel, inst in self.args]
        message = {"id": str(request_id), "op": "subscribe", "args": args}
        return [json.dumps(message, separators=(",", ":"))]


@dataclass(frozen=True)
class OkxWsAdapter:
    """okx-swap's WebSocket facts; implements :class:`~buff_dataplane.feeds.ws_base.WsAdapter`."""

    venue: str = VENUE
    default_endpoint: str = DEFAULT_ENDPOINT
    rotate_after_s: int | None = None
    keepalive: Keepalive | None = KEEPALIVE
    max_args_per_connection: int = MAX_ARGS_PER_CONNECTION

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(sorted(CHANNELS))

    def plan_connections(
        self, venue_symbols: Sequence[str], channels: Sequence[str]
    ) -> list[OkxPlan]:
        """Pairs sorted by instrument then channel, at most ``max_args_per_connection``
        per connection (an instrument's channels stay together when they fit)."""
        unknown = [c for c in channels if c not in CHANNELS]
        if unknown:
            raise ValidationError(
                f"{self.venue} cannot capture channel {unknown[0]!r}: expected some of "
                f"{', '.join(self.channels)}"
            )
        pairs = [
            (CHANNELS[c], s) for s in sorted(set(venue_symbols)) for c in sorted(set(channels))
        ]
        step = self.max_args_per_connection
        return [
            OkxPlan(name=f"public#{n}", args=tuple(pairs[i : i + step]))
            for n, i in enumerate(range(0, len(pairs), step))
        ]


ADAPTER: Final = OkxWsAdapter()
