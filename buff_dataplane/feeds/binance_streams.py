"""Binance WebSocket planning shared by USD-M futures and spot: a :class:`~buff_dataplane.
feeds.ws_base.WsAdapter` over the venue's combined streams.

Both markets name a stream ``<lower-case symbol>@<suffix>`` (an upper-case name is
accepted at connect time and then silently delivers nothing), wrap every message as
``{"stream": ..., "data": ...}`` on ``/stream``, and take the same control messages::

    {"method":"SUBSCRIBE","params":["btcusdt@aggTrade"],"id":1}
    {"result":null,"id":1}

What differs is data, not code: the channels each serves and on which route (USD-M
routes ``/market`` and ``/public`` since 2026; spot has one ``/stream``), the streams a
connection may carry, the connection lifetime, and whether the streams go in the URL
(``/stream?streams=a/b``) or in a SUBSCRIBE sent after connect.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from buff_dataplane.core.errors import ValidationError
from buff_dataplane.feeds.ws_base import Keepalive


@dataclass(frozen=True)
class BinanceStreamPlan:
    """One connection: its route, the streams it carries and their venue symbols."""

    name: str
    path: str  # appended to the endpoint: "/market/stream", "/stream"
    streams: tuple[str, ...]
    venue_symbols: tuple[str, ...]
    streams_in_url: bool

    def url(self, endpoint: str) -> str:
        base = f"{endpoint.rstrip('/')}{self.path}"
        return f"{base}?streams={'/'.join(self.streams)}" if self.streams_in_url else base

    def subscribe(self, request_id: int) -> list[str]:
        if self.streams_in_url:
            return []
        message = {"method": "SUBSCRIBE", "params": list(self.streams), "id": request_id}
        return [json.dumps(message, separators=(",", ":"))]


@dataclass(frozen=True)
class BinanceWsAdapter:
    """A Binance market's WebSocket facts.

    ``routes`` maps a channel to (route, stream suffix); with ``routed`` a route is a path
    of its own (``/market/stream``), else every route is ``/stream``.
    """

    venue: str
    default_endpoint: str
    routes: Mapping[str, tuple[str, str]]
    max_streams_per_connection: int
    rotate_after_s: int | None
    routed: bool
    streams_in_url: bool
    keepalive: Keepalive | None = None  # the server pings; websockets answers by itself

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(sorted(self.routes))

    def plan_connections(
        self, venue_symbols: Sequence[str], channels: Sequence[str]
    ) -> list[BinanceStreamPlan]:
        """Streams grouped by route, at most ``max_streams_per_connection`` per connection,
        in a stable order (route, then channel, then symbol)."""
        unknown = [c for c in channels if c not in self.routes]
        if unknown:
            raise ValidationError(
                f"{self.venue} cannot capture channel {unknown[0]!r}: expected some of "
                f"{', '.join(self.channels)}"
            )
        by_route: dict[str, list[tuple[str, str]]] = {}
        for channel in sorted(set(channels)):
            route, suffix = self.routes[channel]
            for sym in sorted(set(venue_symbols)):
                by_route.setdefault(route, []).append((f"{sym.lower()}@{suffix}", sym))
        plans: list[BinanceStreamPlan] = []
        step = self.max_streams_per_connection
        for route in sorted(by_route):
            pairs = by_route[route]
            for i in range(0, len(pairs), step):
                chunk = pairs[i : i + step]
                plans.append(
                    BinanceStreamPlan(
                        name=f"{route}#{len(plans)}",
                        path=f"/{route}/stream" if self.routed else "/stream",
                        streams=tuple(s for s, _ in chunk),
                        venue_symbols=tuple(sorted({v for _, v in chunk})),
                        streams_in_url=self.streams_in_url,
                    )
                )
        return plans
