"""Bybit v5 public wire shapes: msgspec Structs and their decoders (declarations only).

Field names are Bybit's (``T`` trade time, ``S`` taker side, ``v`` size, ``p`` price,
``i`` trade id); unknown fields are ignored (Bybit added ``seq`` and ``RPI`` lately). Money
is ``str`` and checked after decoding by :mod:`buff_dataplane.feeds.common`.
"""

from __future__ import annotations

from typing import Literal

import msgspec
from msgspec import UNSET, Raw, Struct, UnsetType

from buff_dataplane.feeds.common import Id, IntText, TsMs


class Head(Struct, frozen=True):
    """First look: a topic push, an answer to an ``op`` (subscribe, ping), or one item
    of REST ``recent-trade`` (``execId``)."""

    topic: str | UnsetType = UNSET
    op: str | UnsetType = UNSET
    execId: str | UnsetType = UNSET


class PublicTrade(Struct, frozen=True):
    T: TsMs
    s: str
    S: Literal["Buy", "Sell"]  # the taker's side
    v: str
    p: str
    i: str
    BT: bool = False  # block trade
    L: str | UnsetType = UNSET  # tick direction (perpetuals and futures only)
    seq: Id | UnsetType = UNSET  # cross sequence, shared with the book
    RPI: bool | UnsetType = UNSET


class RecentTrade(Struct, frozen=True):
    """One item of REST ``GET /v5/market/recent-trade`` (``result.list[]``).

    Other names and types than the push's: ``execId`` is ``i``, ``time`` (ms, as text) is
    ``T``, ``side`` is ``S``, ``size`` is ``v``; ``seq`` is text here.
    """

    execId: str
    symbol: str
    price: str
    size: str
    side: Literal["Buy", "Sell"]  # the taker's side
    time: IntText
    isBlockTrade: bool = False
    isRPITrade: bool | UnsetType = UNSET
    seq: IntText | UnsetType = UNSET


class PublicTradeMsg(Struct, frozen=True):
    topic: str
    type: Literal["snapshot"]
    ts: TsMs
    data: list[PublicTrade]


class TickerData(Struct, frozen=True):
    """A snapshot carries every field; a delta only those that changed."""

    symbol: str
    bid1Price: str | UnsetType = UNSET
    bid1Size: str | UnsetType = UNSET
    ask1Price: str | UnsetType = UNSET
    ask1Size: str | UnsetType = UNSET
    lastPrice: str | UnsetType = UNSET
    markPrice: str | UnsetType = UNSET
    indexPrice: str | UnsetType = UNSET


class TickersMsg(Struct, frozen=True):
    topic: str
    type: Literal["snapshot", "delta"]
    ts: TsMs
    data: TickerData
    cs: Id | UnsetType = UNSET


class BookData(Struct, frozen=True):
    s: str
    b: Raw  # [["price", "size"], ...]
    a: Raw
    u: Id
    seq: Id | UnsetType = UNSET


class OrderbookMsg(Struct, frozen=True):
    topic: str
    type: Literal["snapshot", "delta"]
    ts: TsMs
    data: BookData
    cts: TsMs | UnsetType = UNSET  # matching-engine time


class KlineBar(Struct, frozen=True):
    start: TsMs
    end: TsMs
    interval: str
    open: str
    close: str
    high: str
    low: str
    volume: str
    turnover: str
    confirm: bool
    timestamp: TsMs


class KlineMsg(Struct, frozen=True):
    topic: str
    type: Literal["snapshot"]
    ts: TsMs
    data: list[KlineBar]


class OpMsg(Struct, frozen=True):
    """An answer to ``subscribe`` / ``unsubscribe`` / ``ping``; option/spread pong is
    ``{"op": "pong", "args": ["<ms>"]}``."""

    op: str
    success: bool | UnsetType = UNSET
    ret_msg: str | UnsetType = UNSET
    conn_id: str | UnsetType = UNSET
    req_id: str | UnsetType = UNSET
    args: list[str] | UnsetType = UNSET


HEAD = msgspec.json.Decoder(Head | list[object] | str | int | float | bool | None)
PUBLIC_TRADE = msgspec.json.Decoder(PublicTradeMsg)
RECENT_TRADE = msgspec.json.Decoder(RecentTrade)
TICKERS = msgspec.json.Decoder(TickersMsg)
ORDERBOOK = msgspec.json.Decoder(OrderbookMsg)
KLINE = msgspec.json.Decoder(KlineMsg)
OP = msgspec.json.Decoder(OpMsg)
