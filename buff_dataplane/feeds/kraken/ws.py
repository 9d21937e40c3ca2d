"""Kraken spot WebSocket v2: one connection, subscriptions sent after connect.

Endpoint ``wss://ws.kraken.com/v2`` (exchanges.md 6.1); nothing goes in the URL. Per
channel, one message names every symbol of the connection::

    {"method":"subscribe","params":{"channel":"trade","symbol":["BTC/USD"],"snapshot":true},"req_id":1}
    {"method":"subscribe","params":{"channel":"ticker","symbol":["BTC/USD"]},"req_id":1}

and the venue acknowledges each symbol apart (``{"method":"subscribe","result":{"channel":
"trade","snapshot":true,"symbol":"BTC/USD"},"success":true,...}``), so a connection
carrying N symbols on C channels writes N x C ``subscribed`` control events.
Channels: ``trade`` (ids ``trade_id``, a sequence per book: contiguous), and ``ticker``
(level 1, on every trade by default) as ``book_ticker``. Symbols are v2 names
(``BTC/USD``); v1/REST names (``XBT/USD``) are refused by the venue.

``snapshot: true`` on ``trade`` asks for the latest 50 trades after (re)subscribing
(exchanges.md 6.2): after a reconnect they close a short downtime hole without a REST
request (Kraken's Trades is limited to about one request per second per pair), and on
the first connection they are trades already recorded (de-duplicated by id) or just
before this capture began. ``ticker`` keeps the venue's default (a snapshot too).

Keep-alive: the server pushes ``status`` on connect and a ``{"channel":"heartbeat"}``
about once a second while no other channel has data, so a live connection is never
silent; the application ping (``{"method":"ping"}``) is optional and not sent. The
``websockets`` client's protocol pings still run. Connection lifetime, idle timeout and
a per-connection subscription limit are not documented (exchanges.md 6.1
[unconfirmed]): no planned rotation, and one connection per
``MAX_SYMBOLS_PER_CONNECTION`` symbols as a conservative bound.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from buff_dataplane.core.errors import ValidationError
from buff_dataplane.feeds.ws_base import Keepalive

VENUE: Final = "kraken"
DEFAULT_ENDPOINT: Final = "wss://ws.kraken.com"
PATH: Final = "/v2"
# Our channel -> (Kraken v2 channel, extra subscribe params).
CHANNELS: Final[dict[str, tuple[str, dict[str, object]]]] = {
    "trade": ("trade", {"snapshot": True}),
    "book_ticker": ("ticker", {}),
}
MAX_SYMBOLS_PER_CONNECTION: Final = 100
TRADE_SNAPSHOT_SIZE: Final = 50


@dataclass(frozen=True)
class KrakenPlan:
    """One v2 connection: its symbols and the channels subscribed on it."""

    name: str
    venue_symbols: tuple[str, ...]
    channels: tuple[str, ...]  # our names, sorted

    def url(self, endpoint: str) -> str:
        return f"{endpoint.rstrip('/')}{PATH}"

    def subscribe(self, request_id: int) -> list[str]:
        out = []
        for channel in self.channels:
            name, extra = CHANNELS[channel]
            params = {"channel": name, "symbol": list(self.venue_symbols), **extra}
            message = {"method": "subscribe", "params": params, "req_id": request_id}
            out.append(json.dumps(message, separators=(",", ":")))
        return out


@dataclass(frozen=True)
class KrakenWsAdapter:
    """Kraken v2's WebSocket facts (see the module docstring)."""

    venue: str = VENUE
    default_endpoint: str = DEFAULT_ENDPOINT
    rotate_after_s: int | None = None  # no documented connection lifetime
    keepalive: Keepalive | None = None  # heartbeats from the venue; ping is optional
    max_symbols_per_connection: int = MAX_SYMBOLS_PER_CONNECTION

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(sorted(CHANNELS))

    def plan_connections(
        self, venue_symbols: Sequence[str], channels: Sequence[str]
    ) -> list[KrakenPlan]:
        """Every channel on each connection, symbols in sorted chunks."""
        unknown = [c for c in channels if c not in CHANNELS]
        if unknown:
            raise ValidationError(
                f"{self.venue} cannot capture channel {unknown[0]!r}: expected some of "
                f"{', '.join(self.channels)}"
            )
        if not channels:
            raise ValidationError(f"{self.venue}: no channels to capture")
        symbols = sorted(set(venue_symbols))
        wanted = tuple(sorted(set(channels)))
        step = self.max_symbols_per_connection
        return [
            KrakenPlan(name=f"v2#{n}", venue_symbols=tuple(symbols[i : i + step]), channels=wanted)
            for n, i in enumerate(range(0, len(symbols), step))
        ]


ADAPTER: Final = KrakenWsAdapter()
