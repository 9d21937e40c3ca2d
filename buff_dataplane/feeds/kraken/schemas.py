"""Kraken spot WebSocket wire shapes, v2 and v1: msgspec Structs and their decoders.

v2 (``wss://ws.kraken.com/v2``) sends objects with ``channel`` (pushes) or ``method``
(answers); prices and sizes are JSON numbers, kept here as :class:`msgspec.Raw` (the
number's exact text) and read as decimals by :func:`~buff_dataplane.feeds.common.number_money`,
so no float is made. v1 (``wss://ws.kraken.com``) sends objects with ``event`` (status,
acks, heartbeats) and arrays for channel data, money as decimal text.
"""

from __future__ import annotations

from typing import Literal

import msgspec
from msgspec import UNSET, Raw, Struct, UnsetType

from buff_dataplane.feeds.common import Id

# --- v2 ---------------------------------------------------------------------------------


class Head(Struct, frozen=True):
    channel: str | UnsetType = UNSET
    method: str | UnsetType = UNSET
    event: str | UnsetType = UNSET


class TradeItem(Struct, frozen=True):
    symbol: str
    side: Literal["buy", "sell"]  # the taker's side
    price: Raw  # a JSON number: exact text, never a float
    qty: Raw
    ord_type: str  # the taker order type, "limit" or "market"
    trade_id: Id  # a sequence number per book
    timestamp: str  # RFC 3339, microseconds


class TradeMsg(Struct, frozen=True):
    channel: Literal["trade"]
    type: Literal["snapshot", "update"]
    data: list[TradeItem]


class TickerItem(Struct, frozen=True):
    """One ``ticker`` item: level 1 (best bid/offer) and the 24 h statistics."""

    symbol: str
    bid: Raw  # JSON numbers, exact text
    bid_qty: Raw
    ask: Raw
    ask_qty: Raw
    last: Raw | UnsetType = UNSET
    volume: Raw | UnsetType = UNSET
    vwap: Raw | UnsetType = UNSET
    low: Raw | UnsetType = UNSET
    high: Raw | UnsetType = UNSET
    change: Raw | UnsetType = UNSET
    change_pct: Raw | UnsetType = UNSET
    timestamp: str | UnsetType = UNSET  # RFC 3339; in the current docs, not in older ones


class TickerMsg(Struct, frozen=True):
    channel: Literal["ticker"]
    type: Literal["snapshot", "update"]
    data: list[TickerItem]


class StatusItem(Struct, frozen=True):
    system: str
    api_version: str | UnsetType = UNSET
    connection_id: int | UnsetType = UNSET
    version: str | UnsetType = UNSET


class StatusMsg(Struct, frozen=True):
    channel: Literal["status"]
    type: Literal["snapshot", "update"]
    data: list[StatusItem]


class HeartbeatMsg(Struct, frozen=True):
    channel: Literal["heartbeat"]


class SubscribeResult(Struct, frozen=True):
    channel: str
    symbol: str | UnsetType = UNSET
    snapshot: bool | UnsetType = UNSET


class MethodMsg(Struct, frozen=True):
    """Answers to ``subscribe`` / ``unsubscribe`` / ``ping``."""

    method: Literal["subscribe", "unsubscribe", "pong"]
    success: bool | UnsetType = UNSET
    result: SubscribeResult | UnsetType = UNSET
    error: str | UnsetType = UNSET
    symbol: str | UnsetType = UNSET  # on a rejection
    req_id: int | UnsetType = UNSET
    time_in: str | UnsetType = UNSET
    time_out: str | UnsetType = UNSET


# --- REST -------------------------------------------------------------------------------

# One row of REST ``GET /0/public/Trades`` (exchanges.md 6.3), stored as one back-filled
# event: [price, volume, time (a JSON number, epoch seconds), "b"/"s" (taker), "m"/"l",
# misc, trade_id]. It names no pair: the response is keyed by the pair.
TradeRowRest = tuple[str, str, Raw, Literal["b", "s"], Literal["m", "l"], str, Id]


# --- v1 ---------------------------------------------------------------------------------


class EventMsg(Struct, frozen=True):
    """``heartbeat``, ``systemStatus``, ``subscriptionStatus``, ``pong``."""

    event: Literal["heartbeat", "systemStatus", "subscriptionStatus", "pong"]
    status: str | UnsetType = UNSET
    pair: str | UnsetType = UNSET
    channelName: str | UnsetType = UNSET
    channelID: int | UnsetType = UNSET
    errorMessage: str | UnsetType = UNSET
    connectionID: int | UnsetType = UNSET
    version: str | UnsetType = UNSET
    reqid: int | UnsetType = UNSET


class BookV1(Struct, frozen=True, forbid_unknown_fields=True):
    """A v1 book object: a snapshot ``{"as": [...], "bs": [...]}``, or an update with ``a``
    and/or ``b`` (levels ``[price, volume, time(, "r")]``) and the checksum ``c``."""

    asks: Raw | UnsetType = msgspec.field(default=UNSET, name="as")
    bs: Raw | UnsetType = UNSET
    a: Raw | UnsetType = UNSET
    b: Raw | UnsetType = UNSET
    c: str | UnsetType = UNSET


# [price, volume, time, side "b"/"s" (taker), order type "m"/"l", misc]
TradeRowV1 = tuple[str, str, str, Literal["b", "s"], Literal["m", "l"], str]

HEAD = msgspec.json.Decoder(Head | list[Raw] | str | int | float | bool | None)
TRADE = msgspec.json.Decoder(TradeMsg)
TICKER = msgspec.json.Decoder(TickerMsg)
TRADE_ROW_REST = msgspec.json.Decoder(TradeRowRest)
STATUS = msgspec.json.Decoder(StatusMsg)
HEARTBEAT = msgspec.json.Decoder(HeartbeatMsg)
METHOD = msgspec.json.Decoder(MethodMsg)
EVENT_V1 = msgspec.json.Decoder(EventMsg)
BOOK_V1 = msgspec.json.Decoder(BookV1)
TRADES_V1 = msgspec.json.Decoder(list[TradeRowV1])
INT = msgspec.json.Decoder(int)
TEXT = msgspec.json.Decoder(str)
