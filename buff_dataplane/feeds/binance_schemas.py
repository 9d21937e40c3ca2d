"""Binance wire shapes (USD-M futures and spot): msgspec Structs and their decoders.

Declarations only; :mod:`buff_dataplane.feeds.binance_common` decides which shape a
message is and checks what the types cannot say. Field names are Binance's (``E`` event
time, ``T`` trade/transaction time, ``s`` symbol, ...); unknown fields are ignored, since
Binance adds some (``nq`` and ``st`` on aggTrade). Money is decoded as ``str`` and checked
after decoding (see ``PLAIN_DECIMAL``); ``msgspec.field(name="l")`` spares the ambiguous name ``l``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Raw, Struct, UnsetType

from buff_dataplane.core.events import MAX_TS_MS, MIN_TS_MS

# --- field types, checked by msgspec while decoding ---------------------------------------

_MAX_INT64 = 2**63 - 1
TsMs = Annotated[int, Meta(ge=MIN_TS_MS, le=MAX_TS_MS)]
Id = Annotated[int, Meta(ge=0, le=_MAX_INT64)]
IdOrNone = Annotated[int, Meta(ge=-1, le=_MAX_INT64)]  # -1: none (kline without trades)
RequestId = Annotated[int, Meta(ge=0, le=_MAX_INT64)] | str
# Binance sends money as plain decimal text, never a JSON number. Money fields are typed
# ``str`` and checked against PLAIN_DECIMAL after decoding (binance_common): one regex per
# message is several times faster than msgspec's per-field pattern. Book levels stay Raw
# until checked; PlainDec is the exact rule for them.
PLAIN_DECIMAL = r"[0-9]{1,32}(?:\.[0-9]{1,31})?"  # at most 64 characters
PlainDec = Annotated[str, Meta(pattern=f"^{PLAIN_DECIMAL}\\Z")]
Level = tuple[PlainDec, PlainDec]
Interval = Annotated[str, Meta(pattern=r"^[0-9]{1,3}[smhdwM]\Z")]

# --- message shapes -----------------------------------------------------------------------


class Head(Struct, frozen=True):
    """First look at a message: is it wrapped, which shape is it, which symbol does it name."""

    stream: str | UnsetType = UNSET
    data: Raw | UnsetType = UNSET
    e: str | UnsetType = UNSET
    s: str | UnsetType = UNSET
    u: Raw | UnsetType = UNSET
    lastUpdateId: Raw | UnsetType = UNSET
    result: Raw | UnsetType = UNSET
    error: Raw | UnsetType = UNSET
    code: Raw | UnsetType = UNSET
    a: Raw | UnsetType = UNSET


class AggTradeMsg(Struct, frozen=True):
    e: Literal["aggTrade"]
    E: TsMs
    s: str
    a: Id
    p: str
    q: str
    f: Id
    last: Id = msgspec.field(name="l")
    T: TsMs
    m: bool  # the buyer is the maker: the taker sold


class RestAggTrade(Struct, frozen=True):
    """One item of REST ``GET /fapi/v1/aggTrades`` (``/api/v3/aggTrades`` on spot)::

    {"a":26129,"p":"0.01633102","q":"4.70443515","f":27781,"l":27781,"T":1498793709153,"m":true}

    Newer responses add ``"nq"`` (normal quantity); like every unknown field it is kept in
    the stored bytes and ignored here.
    """

    a: Id
    p: str
    q: str
    f: Id
    last: Id = msgspec.field(name="l")
    T: TsMs
    m: bool
    M: bool | UnsetType = UNSET  # spot only: was the trade the best price match


class TradeMsg(Struct, frozen=True):
    e: Literal["trade"]
    E: TsMs
    s: str
    t: Id
    p: str
    q: str
    T: TsMs
    m: bool
    X: str | UnsetType = UNSET  # USD-M: trade type, "MARKET"


class BookTickerMsg(Struct, frozen=True):
    """USD-M sends e, u, s, b, B, a, A, T, E; spot only u, s, b, B, a, A."""

    u: Id
    s: str
    b: str
    B: str
    a: str
    A: str
    e: Literal["bookTicker"] | UnsetType = UNSET
    T: TsMs | UnsetType = UNSET
    E: TsMs | UnsetType = UNSET


class MarkPriceMsg(Struct, frozen=True):
    e: Literal["markPriceUpdate"]
    E: TsMs
    s: str
    p: str
    i: str
    P: str
    r: str  # funding rate, may be negative
    T: TsMs  # next funding time


class DepthUpdateMsg(Struct, frozen=True):
    """USD-M adds T and pu (the previous message's u)."""

    e: Literal["depthUpdate"]
    E: TsMs
    s: str
    U: Id
    u: Id
    b: Raw  # list[Level], see _check_levels
    a: Raw
    T: TsMs | UnsetType = UNSET
    pu: IdOrNone | UnsetType = UNSET


class KlineBar(Struct, frozen=True):
    t: TsMs
    T: TsMs
    s: str
    i: Interval
    f: IdOrNone
    L: IdOrNone
    o: str
    c: str
    h: str
    low: str = msgspec.field(name="l")
    v: str
    n: Id
    x: bool
    q: str
    V: str
    Q: str


class KlineMsg(Struct, frozen=True):
    e: Literal["kline"]
    E: TsMs
    s: str
    k: KlineBar


class DepthSnapshotMsg(Struct, frozen=True):
    """REST ``/depth`` (USD-M adds E and T), or the data of a spot partial-depth stream."""

    lastUpdateId: Id
    bids: Raw  # list[Level], see _check_levels
    asks: Raw
    E: TsMs | UnsetType = UNSET
    T: TsMs | UnsetType = UNSET


class SubscriptionAckMsg(Struct, frozen=True):
    """``{"result": null, "id": 1}``; LIST_SUBSCRIPTIONS answers a list, GET_PROPERTY a bool."""

    result: bool | list[str] | None
    id: RequestId


class ErrorBody(Struct, frozen=True):
    code: int
    msg: str


class ErrorMsg(Struct, frozen=True):
    """``{"error": {"code": 2, "msg": "Invalid request: ..."}, "id": 1}``."""

    error: ErrorBody
    id: RequestId | None = None


class FlatErrorMsg(Struct, frozen=True):
    """``{"code": 2, "msg": "Invalid request: ...", "id": 1}``, also a REST error body."""

    code: int
    msg: str
    id: RequestId | None = None


HEAD = msgspec.json.Decoder(Head | list[Any] | str | int | float | bool | None)
AGG_TRADE = msgspec.json.Decoder(AggTradeMsg)
TRADE = msgspec.json.Decoder(TradeMsg)
REST_AGG_TRADE = msgspec.json.Decoder(RestAggTrade)
BOOK_TICKER = msgspec.json.Decoder(BookTickerMsg)
MARK_PRICE = msgspec.json.Decoder(MarkPriceMsg)
DEPTH_UPDATE = msgspec.json.Decoder(DepthUpdateMsg)
KLINE = msgspec.json.Decoder(KlineMsg)
DEPTH_SNAPSHOT = msgspec.json.Decoder(DepthSnapshotMsg)
ACK = msgspec.json.Decoder(SubscriptionAckMsg)
ERROR = msgspec.json.Decoder(ErrorMsg)
FLAT_ERROR = msgspec.json.Decoder(FlatErrorMsg)
