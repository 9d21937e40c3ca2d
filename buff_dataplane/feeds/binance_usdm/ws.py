"""Binance USD-M WebSocket: routed endpoints, stream names, subscribe messages, limits.

Since 2026 the venue routes streams by path: ``/market`` carries aggTrade and markPrice,
``/public`` carries bookTicker and depth. A connection carries at most 200 streams and
lives at most 24 h; the server pings every 3 minutes. Symbols in stream names are lower
case (an upper-case name is accepted and then silently delivers nothing). The capture
connects to ``/<route>/stream`` and subscribes after connect.

Example subscribe and its ack::

    {"method":"SUBSCRIBE","params":["btcusdt@aggTrade"],"id":1}
    {"result":null,"id":1}
"""

from __future__ import annotations

from typing import Final

from buff_dataplane.feeds.binance_streams import BinanceWsAdapter

VENUE: Final = "binance-usdm"
DEFAULT_ENDPOINT: Final = "wss://fstream.binance.com"
MAX_STREAMS_PER_CONNECTION: Final = 200
CONNECTION_LIFETIME_S: Final = 24 * 3600
ROTATE_AFTER_S: Final = 23 * 3600
CHANNELS: Final[dict[str, tuple[str, str]]] = {  # channel -> (route, stream suffix)
    "trade": ("market", "aggTrade"),
    "mark_price": ("market", "markPrice"),
    "book_ticker": ("public", "bookTicker"),
}

ADAPTER: Final = BinanceWsAdapter(
    venue=VENUE,
    default_endpoint=DEFAULT_ENDPOINT,
    routes=CHANNELS,
    max_streams_per_connection=MAX_STREAMS_PER_CONNECTION,
    rotate_after_s=ROTATE_AFTER_S,
    routed=True,
    streams_in_url=False,
)
