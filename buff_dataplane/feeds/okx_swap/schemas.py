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
    """First look: a push (``arg`` + ``data``) or an event (subscribe, error, notice)."""

    event: str | UnsetType = UNSET
    arg: Arg | UnsetType = UNSET
    data: Raw | UnsetType = UNSET


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
BOOKS = msgspec.json.Decoder(BooksMsg)
EVENT = msgspec.json.Decoder(EventMsg)
