"""Binance USD-M WebSocket: routed endpoints, stream names, subscribe messages, limits.

Since 2026 the venue routes streams by path: ``/market`` carries aggTrade and markPrice,
``/public`` carries bookTicker and depth. A connection carries at most 200 streams and
lives at most 24 h; the server pings every 3 minutes. Symbols in stream names are lower
case (an upper-case name is accepted and then silently delivers nothing).

Example subscribe and its ack::

    {"method":"SUBSCRIBE","params":["btcusdt@aggTrade"],"id":1}
    {"result":null,"id":1}
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from buff_dataplane.core.errors import ValidationError

VENUE = "binance-usdm"
DEFAULT_ENDPOINT = "wss://fstream.binance.com"
DEFAULT_REST = "https://fapi.binance.com"
MAX_STREAMS_PER_CONNECTION = 200
CONNECTION_LIFETIME_S = 24 * 3600
ROTATE_AFTER_S = 23 * 3600
CHANNELS: dict[str, tuple[str, str]] = {  # channel -> (route, stream suffix)
    "trade": ("market", "aggTrade"),
    "mark_price": ("market", "markPrice"),
    "book_ticker": ("public", "bookTicker"),
}


@dataclass(frozen=True)
class ConnectionPlan:
    route: str
    streams: tuple[str, ...]

    def url(self, endpoint: str) -> str:
        return f"{endpoint.rstrip('/')}/{self.route}/stream"

    def subscribe(self, request_id: int) -> str:
        return json.dumps(
            {"method": "SUBSCRIBE", "params": list(self.streams), "id": request_id},
            separators=(",", ":"),
        )


def plan_connections(venue_symbols: list[str], channels: list[str]) -> list[ConnectionPlan]:
    """Streams grouped by route, at most 200 per connection, in a stable order."""
    unknown = [c for c in channels if c not in CHANNELS]
    if unknown:
        raise ValidationError(
            f"{VENUE} cannot capture channel {unknown[0]!r}: expected some of "
            f"{', '.join(sorted(CHANNELS))}"
        )
    by_route: dict[str, list[str]] = {}
    for channel in sorted(set(channels)):
        route, suffix = CHANNELS[channel]
        for sym in sorted(set(venue_symbols)):
            by_route.setdefault(route, []).append(f"{sym.lower()}@{suffix}")
    plans = []
    for route in sorted(by_route):
        streams = by_route[route]
        for i in range(0, len(streams), MAX_STREAMS_PER_CONNECTION):
            plans.append(ConnectionPlan(route, tuple(streams[i : i + MAX_STREAMS_PER_CONNECTION])))
    return plans
