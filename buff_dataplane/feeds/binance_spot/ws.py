"""Binance spot WebSocket: combined streams, limits, keep-alive.

Base ``wss://stream.binance.com:9443``; the capture opens combined streams with the
stream names in the URL, so nothing is sent after connect::

    wss://stream.binance.com:9443/stream?streams=btcusdt@aggTrade/btcusdt@bookTicker

Every message is wrapped ``{"stream":"btcusdt@aggTrade","data":{...}}``. Stream names are
lower case. ``trade`` is captured from ``<sym>@aggTrade`` (ids ``a`` contiguous per
symbol, pageable over REST by ``fromId``), ``book_ticker`` from ``<sym>@bookTicker``.
Limits (venue docs): 1024 streams per connection, 24 h connection lifetime, 5 incoming
messages per second, 300 connection attempts per 5 minutes per IP. The server pings every
20 s and drops a connection that has not answered within a minute; the ``websockets``
client answers pings by itself, so no application-level keep-alive is needed.
"""

from __future__ import annotations

from typing import Final

from buff_dataplane.feeds.binance_streams import BinanceWsAdapter

VENUE: Final = "binance-spot"
DEFAULT_ENDPOINT: Final = "wss://stream.binance.com:9443"
MAX_STREAMS_PER_CONNECTION: Final = 1024
CONNECTION_LIFETIME_S: Final = 24 * 3600
ROTATE_AFTER_S: Final = 23 * 3600
SERVER_PING_INTERVAL_S: Final = 20
CHANNELS: Final[dict[str, tuple[str, str]]] = {  # channel -> (route, stream suffix)
    "trade": ("stream", "aggTrade"),
    "book_ticker": ("stream", "bookTicker"),
}

ADAPTER: Final = BinanceWsAdapter(
    venue=VENUE,
    default_endpoint=DEFAULT_ENDPOINT,
    routes=CHANNELS,
    max_streams_per_connection=MAX_STREAMS_PER_CONNECTION,
    rotate_after_s=ROTATE_AFTER_S,
    routed=False,
    streams_in_url=True,
)
