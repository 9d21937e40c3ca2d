"""Coinbase Exchange WebSocket: one subscribe message per connection, heartbeats as liveness.

Endpoint ``wss://ws-feed.exchange.coinbase.com`` (one URL for everything; exchanges.md
5.1). Nothing is in the URL: the client must send a ``subscribe`` within 5 s of
connecting, or the venue disconnects it::

    {"type":"subscribe","product_ids":["BTC-USD","ETH-USD"],"channels":["heartbeat","matches","ticker"]}

and every (un)subscribe is answered by a ``subscriptions`` message listing all current
subscriptions (the parser's ``subscription_ack``: the capture writes ``subscribed``).
A bad product or channel is answered ``{"type":"error","message":"Failed to subscribe",
"reason":...}`` (the capture quarantines it as ``venue_error``).

Channels::

    ours          venue channel   message types         parser kinds
    trade         matches         last_match, match     last_match, match (taker side =
                                                        the opposite of ``side``)
    book_ticker   ticker          ticker                ticker
    (always)      heartbeat       heartbeat, 1/s/product   heartbeat: ``last_trade_id`` is
                                                        the venue's latest trade id, a gap
                                                        fact when no later match shows it

``heartbeat`` is subscribed on every connection: the venue documents that matches can be
dropped and that the heartbeat's ``last_trade_id`` is how a client finds out (5.2, 5.3),
and it keeps a quiet product's connection from looking silent. ``level2`` needs
authentication and is not captured; Coinbase has no mark price or funding (spot).

Limits (5.1): 8 connects/subscribes per second per IP (bursts 20), 100 client messages per
second per IP, at most 10 subscriptions per product per channel per account. No
connection lifetime and no application ping (protocol pings suffice). The venue states no
product limit per connection; a connection carries at most ``MAX_PRODUCTS_PER_CONNECTION``
products (our choice: one slow socket must not hold every product, and a venue
``ErrSlowConsume`` disconnect then loses only that connection's share).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from buff_dataplane.core.errors import ValidationError
from buff_dataplane.feeds.ws_base import Keepalive

VENUE: Final = "coinbase"
DEFAULT_ENDPOINT: Final = "wss://ws-feed.exchange.coinbase.com"
MAX_PRODUCTS_PER_CONNECTION: Final = 100
SUBSCRIBE_WITHIN_S: Final = 5
LIVENESS_CHANNEL: Final = "heartbeat"
CHANNELS: Final[Mapping[str, str]] = {"trade": "matches", "book_ticker": "ticker"}


@dataclass(frozen=True)
class CoinbasePlan:
    """One connection: its products and the venue channels it subscribes to."""

    name: str
    venue_symbols: tuple[str, ...]
    venue_channels: tuple[str, ...]  # sorted, ``heartbeat`` included

    def url(self, endpoint: str) -> str:
        return endpoint

    def subscribe(self, request_id: int) -> list[str]:
        """The one subscribe message; Coinbase's protocol carries no request id."""
        message = {
            "type": "subscribe",
            "product_ids": list(self.venue_symbols),
            "channels": list(self.venue_channels),
        }
        return [json.dumps(message, separators=(",", ":"))]


@dataclass(frozen=True)
class CoinbaseWsAdapter:
    """Coinbase Exchange's WebSocket facts (see the module docstring)."""

    venue: str = VENUE
    default_endpoint: str = DEFAULT_ENDPOINT
    rotate_after_s: int | None = None  # no documented connection lifetime
    keepalive: Keepalive | None = None  # protocol pings; heartbeats show liveness
    max_products_per_connection: int = MAX_PRODUCTS_PER_CONNECTION

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(sorted(CHANNELS))

    def plan_connections(
        self, venue_symbols: Sequence[str], channels: Sequence[str]
    ) -> list[CoinbasePlan]:
        """Products sorted, ``max_products_per_connection`` per connection, each
        connection subscribed to the channels asked for plus ``heartbeat``."""
        unknown = [c for c in channels if c not in CHANNELS]
        if unknown:
            raise ValidationError(
                f"{self.venue} cannot capture channel {unknown[0]!r}: expected some of "
                f"{', '.join(self.channels)}"
            )
        if not channels:
            raise ValidationError(f"{self.venue}: no channel to capture")
        wanted = tuple(sorted({CHANNELS[c] for c in channels} | {LIVENESS_CHANNEL}))
        products = sorted(set(venue_symbols))
        step = self.max_products_per_connection
        return [
            CoinbasePlan(
                name=f"feed#{n}",
                venue_symbols=tuple(products[i : i + step]),
                venue_channels=wanted,
            )
            for n, i in enumerate(range(0, len(products), step))
        ]


ADAPTER: Final = CoinbaseWsAdapter()
