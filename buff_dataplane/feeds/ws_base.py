"""The WebSocket adapter contract: what a venue gives the live capture.

The capture and the connection manager are venue-neutral; everything that differs between
venues on the socket is behind these two shapes (one implementation per venue, in
``feeds/<venue>/ws.py``, registered in :mod:`buff_dataplane.feeds.ws_registry`):

:class:`WsAdapter`, one per venue::

    venue             binance-spot
    default_endpoint  wss://stream.binance.com:9443       (tests pass the simulator's)
    channels          ("book_ticker", "trade")             what it can capture
    rotate_after_s    82800                                 planned reconnection before the
                                                            venue's connection lifetime; None
                                                            when the venue has no limit
    keepalive         None | Keepalive(20.0, '{"op":"ping"}')   an application-level ping
                                                            the client must send (Bybit, OKX);
                                                            None when protocol pings suffice
    plan_connections(venue_symbols, channels) -> [WsPlan, ...]

:class:`WsPlan`, one per connection the capture opens::

    name              market#0            display name: status, control events, quarantine
    venue_symbols     ("BTCUSDT",)         the instruments this connection carries; its
                                           control events are written on each of them
    url(endpoint)     wss://.../stream?streams=btcusdt@aggTrade
    subscribe(id)     ['{"method":"SUBSCRIBE","params":[...],"id":1}']   sent after connect,
                                           in order; [] when the URL itself subscribes

``plan_connections`` refuses a channel the venue cannot capture with a ValidationError
naming it, respects the venue's per-connection stream limit, and is deterministic (the
same input gives the same plans in the same order). ``request_id`` is the connection's
generation, so an acknowledgement names the connection it belongs to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from buff_dataplane.core.errors import ConfigError


@dataclass(frozen=True)
class Keepalive:
    """An application-level ping: send ``message`` every ``interval_s`` while connected."""

    interval_s: float
    message: str

    def __post_init__(self) -> None:
        if not self.interval_s > 0:
            raise ConfigError(f"keepalive interval {self.interval_s!r} must be positive")
        if not self.message:
            raise ConfigError("keepalive message is empty")


class WsPlan(Protocol):
    """One planned connection: where to connect and what to send once connected."""

    @property
    def name(self) -> str: ...

    @property
    def venue_symbols(self) -> tuple[str, ...]: ...

    def url(self, endpoint: str) -> str: ...

    def subscribe(self, request_id: int) -> list[str]: ...


class WsAdapter(Protocol):
    """A venue's WebSocket facts and its connection planner."""

    @property
    def venue(self) -> str: ...

    @property
    def default_endpoint(self) -> str: ...

    @property
    def channels(self) -> tuple[str, ...]: ...

    @property
    def rotate_after_s(self) -> int | None: ...

    @property
    def keepalive(self) -> Keepalive | None: ...

    def plan_connections(
        self, venue_symbols: Sequence[str], channels: Sequence[str]
    ) -> Sequence[WsPlan]: ...
