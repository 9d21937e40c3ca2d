"""OKX v5 public wire shapes: msgspec Structs and their decoders (declarations only).

OKX sends ids, times and money as strings (``"tradeId": "130639474"``, ``"ts":
"1630048897897"``); they are typed :data:`~buff_dataplane.feeds.common.IntText` or ``str``
and checked after decoding. Unknown fields are ignored (OKX added ``seqId``, ``source``).
"""

from __future__ import annotations

from typing import Literal

import msgspec
from msgspec import UNSET, Raw, Struct, UnsetType

from buff_dataplane.feeds.common import IntText


class Arg(Struct, frozen=True):
    channel: str
    instId: str | UnsetType = UNSET
    instType: str | UnsetType = UNSET


class Head(Struct, frozen=True):
    """First look: a push (``arg`` + ``data``), an event (subscribe, error, notice), or a
    REST ``history-trades`` item (a bare object with ``tradeId``)."""

    event: str | UnsetType = UNSET
    arg: Arg | UnsetType = UNSET
    data: Raw | UnsetType = UNSET
    tradeId: Raw | UnsetType = UNSET


class TradeItem(Struct, frozen=True):
    instId: str
    tradeId: IntText  # for `trades`, the LAST id of the aggregated print
    px: str
    sz: str  # contracts for SWAP (multiply by the instrument's ctVal for base units)
    side: Literal["buy", "sell"]  # the taker's side
    ts: IntText
    count: IntText | UnsetType = UNSET  # matches aggregated (`trades` since 2023)
    source: str | UnsetType = UNSET
    seqId: int | UnsetType = UNSET


class HistoryTradeItem(Struct, frozen=True):
    """One item of REST ``GET /api/v5/market/history-trades``: one match, no ``count``.

    ``{"instId":"BTC-USDT-SWAP","side":"sell","sz":"3","source":"0","px":"29963.2",
    "tradeId":"242720720","ts":"1654161646974"}``
    """

    instId: str
    tradeId: IntText
    px: str
    sz: str
    side: Literal["buy", "sell"]
    ts: IntText
    source: str | UnsetType = UNSET
    count: IntText | UnsetType = UNSET  # not sent; "1" is the only value that would fit


class MarkPriceItem(Struct, frozen=True):
    instId: str
    markPx: str
    ts: IntText
    instType: str | UnsetType = UNSET


class TickerItem(Struct, frozen=True):
    instId: str
    ts: IntText
    last: str = ""
    lastSz: str = ""
    askPx: str = ""
    askSz: str = ""
    bidPx: str = ""
    bidSz: str = ""


class BookItem(Struct, frozen=True):
    asks: Raw  # [["price", "size", "0", "orders"], ...]
    bids: Raw
    ts: IntText
    checksum: int | UnsetType = UNSET
    seqId: int | UnsetType = UNSET
    prevSeqId: int | UnsetType = UNSET


class TradesMsg(Struct, frozen=True):
    arg: Arg
    data: list[TradeItem]


class MarkPriceMsg(Struct, frozen=True):
    arg: Arg
    data: list[MarkPriceItem]


class TickersMsg(Struct, frozen=True):
    arg: Arg
    data: list[TickerItem]


class BooksMsg(Struct, frozen=True):
    arg: Arg
    data: list[BookItem]
    action: Literal["snapshot", "update"] | UnsetType = UNSET


class EventMsg(Struct, frozen=True):
    """``subscribe`` / ``unsubscribe`` acks, ``error`` and ``notice`` events."""

    event: Literal["subscribe", "unsubscribe", "error", "notice"]
    arg: Arg | UnsetType = UNSET
    code: str | UnsetType = UNSET
    msg: str | UnsetType = UNSET
    connId: str | UnsetType = UNSET
    id: str | UnsetType = UNSET


HEAD = msgspec.json.Decoder(Head | list[object] | str | int | float | bool | None)
TRADES = msgspec.json.Decoder(TradesMsg)
TICKERS = msgspec.json.Decoder(TickersMsg)
MARK_PRICE = msgspec.json.Decoder(MarkPriceMsg)
HISTORY_TRADE = msgspec.json.Decoder(HistoryTradeItem)
BOOKS = msgspec.json.Decoder(BooksMsg)
EVENT = msgspec.json.Decoder(EventMsg)
