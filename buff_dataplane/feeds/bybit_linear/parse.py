"""Bybit v5 public linear message parser (pure; shapes in :mod:`.schemas`).

A recorded ``publicTrade`` push (cryptofeed v3 sample, ``/v5/public/linear``, 2026-08-09)::

    {"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1786310819681,"data":[{"T":1786310819680,
     "s":"BTCUSDT","S":"Sell","v":"0.004","p":"65114.20","L":"MinusTick",
     "i":"a9188a0a-82bc-50de-be60-03eedbe3cdd7","BT":false,"RPI":false,"seq":753843954913}]}

parses to ``Parsed(kind="publicTrade", channel="trade", venue_symbol="BTCUSDT",
symbol="BTC-USDT-PERP", event_ts_exchange_ms=1786310819680, trade=<the one trade>,
trades=(Trade(trade_id=0xa9188a0a82bc50debe6003eedbe3cdd7, price=Decimal("65114.20"),
size=Decimal("0.004"), taker_side="sell", ts_ms=1786310819680, first_trade_id=None,
last_trade_id=None),))``.

Kinds::

    kind              channel      told by                        exchange time
    publicTrade       trade        topic publicTrade.<SYM>        earliest data[].T
    recentTrade       trade        execId (a REST item)           time
    tickers           book_ticker  topic tickers.<SYM>            ts
    orderbook         depth        topic orderbook.<N>.<SYM>      cts, else ts
    kline             kline        topic kline.<I>.<SYM>          ts
    subscription_ack  control      op subscribe/unsubscribe, ok   None
    error             control      op subscribe/unsubscribe, not  None
    pong              control      op ping (ret_msg pong) / pong  None

A ``publicTrade`` push batches up to 1024 trades, all of the topic's symbol (else
``stream_symbol_mismatch``). ``S`` is the taker's side. The trade id ``i`` of a linear
trade is a UUID; Trade ids are integers, so it is kept as the UUID's 128-bit value
(``int(uuid.replace("-", ""), 16)``: exact, one-to-one, ``uuid.UUID(int=...)`` gives the
text back). Spot's numeric ids are refused: a spot message on a linear stream is out of
contract. Ids are not contiguous and carry no order.

A ``recentTrade`` is one item of REST ``GET /v5/market/recent-trade`` (exchanges.md 3.4),
as a back-fill stores it (one raw event per item, re-serialized compactly)::

    {"execId":"a9188a0a-82bc-50de-be60-03eedbe3cdd7","symbol":"BTCUSDT","price":"65114.20",
     "size":"0.004","side":"Sell","time":"1786310819680","isBlockTrade":false,
     "isRPITrade":false,"seq":"753843954913"}

is the same trade as the push above: ``execId`` is ``i``, ``time`` (text) is ``T``. It names
its symbol, so it parses to the same Parsed as a one-trade push, kind ``recentTrade``.

Only USDT and USDC perpetuals map: ``BTCUSDT`` -> ``BTC-USDT-PERP``; dated futures
(``BTCUSDT-26SEP25``, ``BTC-26DEC25``) are ``unsupported_instrument``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Final

from msgspec import UNSET

from buff_dataplane.core.errors import PayloadRejected
from buff_dataplane.feeds.base import Parsed, Trade
from buff_dataplane.feeds.bybit_linear import schemas as wire
from buff_dataplane.feeds.common import (
    TableParser,
    bad,
    book_levels,
    check_plain,
    decode,
    plain_money,
    show,
    trade_message,
    ts_text,
)
from buff_dataplane.feeds.symbols import SymbolTable

VENUE: Final = "bybit-linear"
QUOTES: Final[tuple[str, ...]] = ("USDT", "USDC")

CHANNEL_OF_KIND: Final[Mapping[str, str]] = {
    "publicTrade": "trade",
    "recentTrade": "trade",
    "tickers": "book_ticker",
    "orderbook": "depth",
    "kline": "kline",
    "subscription_ack": "control",
    "error": "control",
    "pong": "control",
}
KINDS: Final[tuple[str, ...]] = tuple(CHANNEL_OF_KIND)
# Topic prefix -> (kind, number of dot-separated parts of the topic).
_TOPICS: Final[Mapping[str, tuple[str, int]]] = {
    "publicTrade": ("publicTrade", 2),
    "tickers": ("tickers", 2),
    "orderbook": ("orderbook", 3),
    "kline": ("kline", 3),
}
_UUID_RE: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_SIDES: Final = {"Buy": "buy", "Sell": "sell"}
_KLINE_MONEY: Final = ("open", "close", "high", "low", "volume", "turnover")
# One reader per pushed kind: (payload, topic symbol) -> (trades, exchange time).
_Read = tuple[tuple[Trade, ...], int | None]


def trade_id(text: str, where: str) -> int:
    """The integer of a linear trade id: the UUID's 128 bits."""
    if _UUID_RE.fullmatch(text) is None:
        raise bad(where, f"expected a lower-case UUID (linear trade id), got {show(text)}")
    return int(text.replace("-", ""), 16)


def _public_trade(body: bytes, symbol: str) -> _Read:
    m = decode(wire.PUBLIC_TRADE, body)
    trades = []
    for n, t in enumerate(m.data):
        where = f".data[{n}]"
        if t.s != symbol:
            raise PayloadRejected(
                "stream_symbol_mismatch", f"topic {show(m.topic)} carries s={show(t.s)}"
            )
        trades.append(
            Trade(
                trade_id=trade_id(t.i, f"{where}.i"),
                price=plain_money(t.p, f"{where}.p"),
                size=plain_money(t.v, f"{where}.v"),
                taker_side=_SIDES[t.S],
                ts_ms=t.T,
                first_trade_id=None,
                last_trade_id=None,
            )
        )
    return tuple(trades), None


def _recent_trade(body: bytes) -> tuple[str, Trade]:
    """The venue symbol and the trade of a REST ``recent-trade`` item."""
    t = decode(wire.RECENT_TRADE, body)
    trade = Trade(
        trade_id=trade_id(t.execId, ".execId"),
        price=plain_money(t.price, ".price"),
        size=plain_money(t.size, ".size"),
        taker_side=_SIDES[t.side],
        ts_ms=ts_text(t.time, ".time"),
        first_trade_id=None,
        last_trade_id=None,
    )
    return t.symbol, trade


def _tickers(body: bytes, symbol: str) -> _Read:
    m = decode(wire.TICKERS, body)
    d = m.data
    if d.symbol != symbol:
        raise PayloadRejected(
            "stream_symbol_mismatch", f"topic {show(m.topic)} carries symbol={show(d.symbol)}"
        )
    for name in ("bid1Price", "bid1Size", "ask1Price", "ask1Size", "lastPrice", "markPrice"):
        value = getattr(d, name)
        if value is not UNSET and value != "":  # "" when a side of the book is empty
            check_plain(value, f".data.{name}")
    return (), m.ts


def _orderbook(body: bytes, symbol: str) -> _Read:
    m = decode(wire.ORDERBOOK, body)
    if m.data.s != symbol:
        raise PayloadRejected(
            "stream_symbol_mismatch", f"topic {show(m.topic)} carries s={show(m.data.s)}"
        )
    book_levels(m.data.b, ".data.b")
    book_levels(m.data.a, ".data.a")
    return (), (m.ts if m.cts is UNSET else m.cts)


def _kline(body: bytes, symbol: str) -> _Read:
    m = decode(wire.KLINE, body)
    for n, k in enumerate(m.data):
        if k.start > k.end:
            raise bad(f".data[{n}]", f"start {k.start} > end {k.end}")
        for name in _KLINE_MONEY:
            check_plain(getattr(k, name), f".data[{n}].{name}")
    return (), m.ts


_READERS: Final[Mapping[str, Callable[[bytes, str], _Read]]] = {
    "publicTrade": _public_trade,
    "tickers": _tickers,
    "orderbook": _orderbook,
    "kline": _kline,
}


def _control(kind: str) -> Parsed:
    return Parsed(
        kind=kind, channel="control", venue_symbol=None, symbol=None, event_ts_exchange_ms=None
    )


class BybitLinearParser(TableParser):
    """The bybit-linear parser; implements :class:`buff_dataplane.feeds.base.Parser`."""

    __slots__ = ()

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(KINDS)

    def parse(self, payload: bytes) -> Parsed:
        head = decode(wire.HEAD, payload)
        if not isinstance(head, wire.Head):
            raise PayloadRejected("unknown_message", "expected a JSON object")
        if head.topic is not UNSET:
            return self._push(payload, head.topic)
        if head.op is not UNSET:
            return self._op(payload)
        if head.execId is not UNSET:
            venue_symbol, trade = _recent_trade(payload)
            symbol = self.to_canonical(venue_symbol)
            return trade_message("recentTrade", venue_symbol, symbol, (trade,), "")
        raise PayloadRejected(
            "unknown_message", "neither a topic push, an op answer nor a recent-trade item"
        )

    def _push(self, payload: bytes, topic: str) -> Parsed:
        parts = topic.split(".")
        known = _TOPICS.get(parts[0])
        if known is None:
            raise PayloadRejected("unknown_message", f"topic {show(topic)}")
        kind, size = known
        if len(parts) != size:
            raise bad(".topic", f"expected {size} dot-separated parts, got {show(topic)}")
        venue_symbol = parts[-1]
        symbol = self.to_canonical(venue_symbol)
        trades, ts = _READERS[kind](payload, venue_symbol)
        if kind == "publicTrade":
            return trade_message(kind, venue_symbol, symbol, trades, ".data")
        return Parsed(
            kind=kind,
            channel=CHANNEL_OF_KIND[kind],
            venue_symbol=venue_symbol,
            symbol=symbol,
            event_ts_exchange_ms=ts,
        )

    def _op(self, payload: bytes) -> Parsed:
        m = decode(wire.OP, payload)
        if m.op == "pong" or (m.op == "ping" and m.ret_msg == "pong"):
            return _control("pong")
        if m.op in ("subscribe", "unsubscribe"):
            if m.success is UNSET:
                raise bad(".success", f"an answer to {m.op} without `success`")
            return _control("subscription_ack" if m.success else "error")
        raise PayloadRejected("unknown_message", f"op {show(m.op)}")


PARSER: Final = BybitLinearParser(
    SymbolTable(venue=VENUE, quotes=QUOTES, overrides={}, perpetual=True)
)


def parse(payload: bytes) -> Parsed:
    """Parse one bybit-linear message; raise PayloadRejected if it is out of contract."""
    return PARSER.parse(payload)


def to_canonical(venue_symbol: str) -> str:
    """``BTCUSDT`` -> ``BTC-USDT-PERP``."""
    return PARSER.to_canonical(venue_symbol)


def to_venue(symbol: str) -> str:
    """``BTC-USDT-PERP`` -> ``BTCUSDT``."""
    return PARSER.to_venue(symbol)
