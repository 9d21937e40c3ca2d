"""Bybit v5 public linear WebSocket: one URL, topics subscribed after connect, a client ping.

Facts (exchanges.md section 3.1 and 3.3)::

    URL           wss://stream.bybit.com/v5/public/linear
    subscribe     {"op":"subscribe","args":["publicTrade.BTCUSDT","tickers.BTCUSDT"],"req_id":"1"}
    its ack       {"success":true,"ret_msg":"","conn_id":"...","req_id":"1","op":"subscribe"}
    a bad topic   {"success":false,"ret_msg":"error:handler not found,topic:...","op":"subscribe"}
    keep-alive    the client sends {"op":"ping"} every 20 s; the answer is
                  {"success":true,"ret_msg":"pong","conn_id":"...","req_id":"","op":"ping"}
    limits        public args at most 21,000 characters per connection; no documented
                  connection lifetime (without pings and data the server cuts after 10 min)

Channels: ``trade`` from ``publicTrade.<SYM>`` (batches of up to 1024 trades sharing one
``seq``), ``book_ticker`` from ``tickers.<SYM>`` (best bid/ask with sizes, last and mark
price: a snapshot, then deltas of the changed fields). The ack names no topic, so one
subscribe request per connection: its ``req_id`` is the connection's generation and the
capture's ``subscribed`` event stands for every topic of it. A symbol the venue does not
know gets ``success:false`` (quarantined as ``venue_error``), and a community report says
it may stall the other topics of that connection: the capture checks the symbols against
``instruments-info`` before it connects.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from buff_dataplane.core.errors import ValidationError
from buff_dataplane.feeds.ws_base import Keepalive

VENUE: Final = "bybit-linear"
DEFAULT_ENDPOINT: Final = "wss://stream.bybit.com"
PATH: Final = "/v5/public/linear"
# The venue counts the characters of the args; ours: the JSON array of topics as sent.
MAX_ARGS_CHARS_PER_CONNECTION: Final = 21_000
PING_INTERVAL_S: Final = 20.0
KEEPALIVE: Final = Keepalive(PING_INTERVAL_S, '{"op":"ping"}')
IDLE_CUT_S: Final = 600  # the server's cut without pings and data (the keep-alive prevents it)
TOPICS: Final[Mapping[str, str]] = {"trade": "publicTrade", "book_ticker": "tickers"}


def args_chars(topics: Sequence[str]) -> int:
    """The characters ``topics`` take as the ``args`` array of a subscribe request."""
    return len(json.dumps(list(topics), separators=(",", ":")))


@dataclass(frozen=True)
class BybitPlan:
    """One connection to ``/v5/public/linear`` and the topics it subscribes."""

    name: str
    topics: tuple[str, ...]
    venue_symbols: tuple[str, ...]

    def url(self, endpoint: str) -> str:
        return f"{endpoint.rstrip('/')}{PATH}"

    def subscribe(self, request_id: int) -> list[str]:
        message = {"op": "subscribe", "args": list(self.topics), "req_id": str(request_id)}
        return [json.dumps(message, separators=(",", ":"))]


@dataclass(frozen=True)
class BybitLinearWsAdapter:
    """Bybit linear's WebSocket facts (module docstring) and its connection planner."""

    venue: str = VENUE
    default_endpoint: str = DEFAULT_ENDPOINT
    max_args_chars: int = MAX_ARGS_CHARS_PER_CONNECTION
    rotate_after_s: int | None = None  # the venue states no connection lifetime
    keepalive: Keepalive | None = KEEPALIVE

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(sorted(TOPICS))

    def plan_connections(
        self, venue_symbols: Sequence[str], channels: Sequence[str]
    ) -> list[BybitPlan]:
        """Topics by symbol, then channel, packed in that order into connections whose
        ``args`` stay within ``max_args_chars``; a symbol's topics share a connection."""
        unknown = [c for c in channels if c not in TOPICS]
        if unknown:
            raise ValidationError(
                f"{self.venue} cannot capture channel {unknown[0]!r}: expected some of "
                f"{', '.join(self.channels)}"
            )
        plans: list[BybitPlan] = []
        topics: list[str] = []
        symbols: list[str] = []
        for sym in sorted(set(venue_symbols)):
            mine = [f"{TOPICS[c]}.{sym}" for c in sorted(set(channels))]
            if args_chars(mine) > self.max_args_chars:
                raise ValidationError(f"{self.venue}: the topics of {sym!r} alone are too long")
            if topics and args_chars(topics + mine) > self.max_args_chars:
                plans.append(BybitPlan(f"linear#{len(plans)}", tuple(topics), tuple(symbols)))
                topics, symbols = [], []
            topics += mine
            symbols.append(sym)
        if topics:
            plans.append(BybitPlan(f"linear#{len(plans)}", tuple(topics), tuple(symbols)))
        return plans


ADAPTER: Final = BybitLinearWsAdapter()
