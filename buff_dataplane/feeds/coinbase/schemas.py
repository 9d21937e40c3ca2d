"""Coinbase wire shapes: msgspec Structs and their decoders (declarations only).

Two public APIs serve the same Coinbase order books:

- Coinbase Exchange ``ws-feed`` (``wss://ws-feed.exchange.coinbase.com``, formerly
  ``ws-feed.pro.coinbase.com``): every message has a ``type``;
- Coinbase Advanced Trade (``wss://advanced-trade-ws.coinbase.com``): every message has a
  ``channel`` and a list of ``events``.

Times are ISO 8601 strings, money is decimal text; unknown fields are ignored.
"""

from __future__ import annotations

from typing import Literal

import msgspec
from msgspec import UNSET, Raw, Struct, UnsetType

from buff_dataplane.feeds.common import Id, IntText

# --- Coinbase Exchange ----------------------------------------------------------------------


class Head(Struct, frozen=True):
    type: str | UnsetType = UNSET
    channel: str | UnsetType = UNSET
    trade_id: object = UNSET  # with neither of the above: a REST trades item


class MatchMsg(Struct, frozen=True):
    """``match`` and ``last_match`` (the most recent trade, sent first on subscribing)."""

    type: Literal["match", "last_match"]
    trade_id: Id
    sequence: Id
    maker_order_id: str
    taker_order_id: str
    time: str
    product_id: str
    size: str
    price: str
    side: Literal["buy", "sell"]  # the MAKER's side: the taker took the other one


class RestTrade(Struct, frozen=True):
    """One item of REST ``GET /products/{id}/trades`` (newest first); names no product."""

    time: str
    trade_id: Id
    price: str
    size: str
    side: Literal["buy", "sell"]  # the MAKER's side, as on the ``matches`` channel


class TickerMsg(Struct, frozen=True):
    type: Literal["ticker"]
    product_id: str
    sequence: Id | UnsetType = UNSET
    price: str | UnsetType = UNSET
    best_bid: str | UnsetType | None = UNSET
    best_ask: str | UnsetType | None = UNSET
    time: str | UnsetType = UNSET  # absent on the first ticker of some old feeds
    trade_id: Id | UnsetType = UNSET
    last_size: str | UnsetType = UNSET


class BookSnapshotMsg(Struct, frozen=True):
    type: Literal["snapshot"]
    product_id: str
    bids: Raw  # [["price", "size"], ...]
    asks: Raw


class L2UpdateMsg(Struct, frozen=True):
    type: Literal["l2update"]
    product_id: str
    changes: list[tuple[Literal["buy", "sell"], str, str]]
    time: str


class HeartbeatMsg(Struct, frozen=True):
    type: Literal["heartbeat"]
    product_id: str
    sequence: Id
    last_trade_id: Id
    time: str


class Subscription(Struct, frozen=True):
    name: str
    product_ids: list[str] = []


class SubscriptionsMsg(Struct, frozen=True):
    type: Literal["subscriptions"]
    channels: list[Subscription]


class ErrorMsg(Struct, frozen=True):
    type: Literal["error"]
    message: str
    reason: str | UnsetType = UNSET


# --- Coinbase Advanced Trade ----------------------------------------------------------------


class AtTrade(Struct, frozen=True):
    trade_id: IntText
    product_id: str
    price: str
    size: str
    side: Literal["BUY", "SELL"]  # the MAKER's side, as on the Exchange feed
    time: str


class AtTradesEvent(Struct, frozen=True):
    type: Literal["snapshot", "update"]
    trades: list[AtTrade]


class AtTicker(Struct, frozen=True):
    product_id: str
    price: str
    best_bid: str = ""
    best_ask: str = ""
    best_bid_quantity: str = ""
    best_ask_quantity: str = ""


class AtTickerEvent(Struct, frozen=True):
    type: Literal["snapshot", "update"]
    tickers: list[AtTicker]


class AtLevel(Struct, frozen=True):
    side: Literal["bid", "offer", "ask"]
    event_time: str
    price_level: str
    new_quantity: str


class AtBookEvent(Struct, frozen=True):
    type: Literal["snapshot", "update"]
    product_id: str
    updates: list[AtLevel]


class AtCandle(Struct, frozen=True):
    start: IntText  # epoch seconds
    high: str
    low: str
    open: str
    close: str
    volume: str
    product_id: str


class AtCandlesEvent(Struct, frozen=True):
    type: Literal["snapshot", "update"]
    candles: list[AtCandle]


class AtMsg(Struct, frozen=True):
    """The envelope; ``events`` stays Raw until the channel says what they are."""

    channel: str
    timestamp: str
    sequence_num: Id
    events: Raw
    client_id: str | UnsetType = UNSET


HEAD = msgspec.json.Decoder(Head | list[object] | str | int | float | bool | None)
MATCH = msgspec.json.Decoder(MatchMsg)
REST_TRADE = msgspec.json.Decoder(RestTrade)
TICKER = msgspec.json.Decoder(TickerMsg)
BOOK_SNAPSHOT = msgspec.json.Decoder(BookSnapshotMsg)
L2UPDATE = msgspec.json.Decoder(L2UpdateMsg)
HEARTBEAT = msgspec.json.Decoder(HeartbeatMsg)
SUBSCRIPTIONS = msgspec.json.Decoder(SubscriptionsMsg)
ERROR = msgspec.json.Decoder(ErrorMsg)
AT = msgspec.json.Decoder(AtMsg)
AT_TRADES = msgspec.json.Decoder(list[AtTradesEvent])
AT_TICKERS = msgspec.json.Decoder(list[AtTickerEvent])
AT_BOOK = msgspec.json.Decoder(list[AtBookEvent])
AT_CANDLES = msgspec.json.Decoder(list[AtCandlesEvent])
AT_ANY = msgspec.json.Decoder(list[dict[str, object]])
