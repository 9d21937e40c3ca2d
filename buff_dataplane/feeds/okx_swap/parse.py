"""OKX v5 public message parser for perpetual swaps (pure; shapes in :mod:`.schemas`).

A recorded ``trades`` push (cryptofeed sample, ``/ws/v5/public``, 2022-05-13)::

    {"arg":{"channel":"trades","instId":"UNI-USD-SWAP"},"data":[{"instId":"UNI-USD-SWAP",
     "tradeId":"12883020","px":"5.123","sz":"100","side":"sell","ts":"1652459215150"}]}

parses to ``Parsed(kind="trades", channel="trade", venue_symbol="UNI-USD-SWAP",
symbol="UNI-USD-PERP", event_ts_exchange_ms=1652459215150, trade=<the one trade>,
trades=(Trade(trade_id=12883020, price=Decimal("5.123"), size=Decimal("100"),
taker_side="sell", ts_ms=1652459215150, first_trade_id=None, last_trade_id=None),))``.

Kinds::

    kind              channel      told by                          exchange time
    trades            trade        arg.channel trades               earliest data[].ts
    trades_all        trade        arg.channel trades-all           earliest data[].ts
    history_trade     trade        a bare object with tradeId       ts
    tickers           book_ticker  arg.channel tickers              data[0].ts
    mark_price        mark_price   arg.channel mark-price           data[0].ts
    books             depth        arg.channel books                data[0].ts
    subscription_ack  control      event subscribe / unsubscribe    None
    error             control      event error                      None
    notice            control      event notice (service upgrade)   None
    pong              control      the text ``pong``                None

Trades: ``side`` is the taker's side; ``sz`` is in contracts for a swap (the instrument's
``ctVal`` converts it to base units; that table is not in the message, so the size is kept
as sent). A ``trades`` print aggregates ``count`` matches whose ids are consecutive and
end at ``tradeId``: ``first_trade_id = tradeId - count + 1``, ``last_trade_id = tradeId``.
Without ``count`` (``trades-all``, and ``trades`` before 2023) a print is one match and
both are None. Every item must name the push's ``arg.instId`` (else
``stream_symbol_mismatch``).

``history_trade`` is one item of REST ``GET /api/v5/market/history-trades`` (the
back-fill stores each item as one raw event, re-serialized compactly)::

    {"instId":"BTC-USDT-SWAP","side":"sell","sz":"3","source":"0","px":"29963.2",
     "tradeId":"242720720","ts":"1654161646974"}

It is one match (REST items are not aggregated; a ``count`` other than ``"1"`` is
refused), reported as covering exactly its own id (``first_trade_id = last_trade_id =
tradeId``), which is what a ``trades`` print of ``count`` 1 reports: the two reports of
one single-match print compare equal. A REST item for a match inside a print of several
is another report (its own size) of a match the print covers.

Instruments: ``BTC-USDT-SWAP`` -> ``BTC-USDT-PERP``, ``UNI-USD-SWAP`` (coin-margined)
-> ``UNI-USD-PERP``. Spot pairs (``BTC-USDT``), dated futures (``BTC-USD-220527``) and
options (``BTC-USD-220527-30000-C``) are other OKX products, served on the same connection:
``other_product``. Anything else is ``unsupported_instrument``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from msgspec import UNSET

from buff_dataplane.core.errors import PayloadRejected
from buff_dataplane.feeds.base import Parsed, Trade
from buff_dataplane.feeds.common import (
    TableParser,
    bad,
    book_levels,
    check_plain,
    decode,
    int_text,
    plain_money,
    show,
    trade_message,
    ts_text,
)
from buff_dataplane.feeds.okx_swap import schemas as wire
from buff_dataplane.feeds.symbols import DelimitedSymbolTable

VENUE: Final = "okx-swap"
QUOTES: Final[tuple[str, ...]] = ("USDT", "USDC", "USD")
# Instrument ids of OKX's other products, valid on the same connection.
OTHER_PRODUCTS: Final[tuple[tuple[str, str], ...]] = (
    (r"[A-Z0-9]{1,16}-[A-Z0-9]{1,16}", "an OKX spot pair"),
    (r"[A-Z0-9]{1,16}-[A-Z0-9]{1,16}-[0-9]{6}", "an OKX dated future"),
    (r"[A-Z0-9]{1,16}-[A-Z0-9]{1,16}-[0-9]{6}-[0-9.]{1,20}-[CP]", "an OKX option"),
)

CHANNEL_OF_KIND: Final[Mapping[str, str]] = {
    "trades": "trade",
    "trades_all": "trade",
    "history_trade": "trade",
    "tickers": "book_ticker",
    "mark_price": "mark_price",
    "books": "depth",
    "subscription_ack": "control",
    "error": "control",
    "notice": "control",
    "pong": "control",
}
KINDS: Final[tuple[str, ...]] = tuple(CHANNEL_OF_KIND)
_PUSH_KINDS: Final[Mapping[str, str]] = {
    "trades": "trades",
    "trades-all": "trades_all",
    "tickers": "tickers",
    "mark-price": "mark_price",
    "books": "books",
}
_EVENT_KINDS: Final[Mapping[str, str]] = {
    "subscribe": "subscription_ack",
    "unsubscribe": "subscription_ack",
    "error": "error",
    "notice": "notice",
}
_TICKER_MONEY: Final = ("last", "lastSz", "askPx", "askSz", "bidPx", "bidSz")


def _mismatch(inst_id: str, named: str) -> PayloadRejected:
    return PayloadRejected(
        "stream_symbol_mismatch", f"arg.instId {show(inst_id)} carries instId={show(named)}"
    )


def _history_trade(payload: bytes, parser: TableParser) -> Parsed:
    """A REST history-trades item: one match, covering its own id."""
    t = decode(wire.HISTORY_TRADE, payload)
    if t.count is not UNSET and t.count != "1":
        raise bad(".count", f"a history-trades item is one match, not {show(t.count)}")
    trade_id = int_text(t.tradeId, ".tradeId")
    trade = Trade(
        trade_id=trade_id,
        price=plain_money(t.px, ".px"),
        size=plain_money(t.sz, ".sz"),
        taker_side=t.side,
        ts_ms=ts_text(t.ts, ".ts"),
        first_trade_id=trade_id,
        last_trade_id=trade_id,
    )
    return trade_message("history_trade", t.instId, parser.to_canonical(t.instId), [trade], "")


def _trade(t: wire.TradeItem, where: str) -> Trade:
    last = int_text(t.tradeId, f"{where}.tradeId")
    first: int | None = None
    if t.count is not UNSET:
        count = int_text(t.count, f"{where}.count")
        if not 1 <= count <= last + 1:
            raise bad(f"{where}.count", f"{count} matches cannot end at trade id {last}")
        first = last - count + 1
    return Trade(
        trade_id=last,
        price=plain_money(t.px, f"{where}.px"),
        size=plain_money(t.sz, f"{where}.sz"),
        taker_side=t.side,
        ts_ms=ts_text(t.ts, f"{where}.ts"),
        first_trade_id=first,
        last_trade_id=None if first is None else last,
    )


class OkxSwapParser(TableParser):
    """The okx-swap parser; implements :class:`buff_dataplane.feeds.base.Parser`."""

    __slots__ = ()

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(KINDS)

    def parse(self, payload: bytes) -> Parsed:
        if payload == b"pong":  # the answer to the text `ping` keep-alive: not JSON
            return self._control("pong", None)
        head = decode(wire.HEAD, payload)
        if not isinstance(head, wire.Head):
            raise PayloadRejected("unknown_message", "expected a JSON object")
        if head.event is not UNSET:
            return self._event(payload, head.event)
        if head.arg is UNSET and head.data is UNSET and head.tradeId is not UNSET:
            return _history_trade(payload, self)
        if head.arg is UNSET or head.data is UNSET:
            raise PayloadRejected("unknown_message", "neither an event nor an arg/data push")
        kind = _PUSH_KINDS.get(head.arg.channel)
        if kind is None:
            raise PayloadRejected("unknown_message", f"channel {show(head.arg.channel)}")
        if head.arg.instId is UNSET:
            raise bad(".arg.instId", f"a {head.arg.channel} push names no instrument")
        inst_id = head.arg.instId
        symbol = self.to_canonical(inst_id)
        if kind in ("trades", "trades_all"):
            return self._trades(payload, kind, inst_id, symbol)
        ts = self._quote(payload, kind, inst_id)
        return Parsed(
            kind=kind,
            channel=CHANNEL_OF_KIND[kind],
            venue_symbol=inst_id,
            symbol=symbol,
            event_ts_exchange_ms=ts,
        )

    def _trades(self, payload: bytes, kind: str, inst_id: str, symbol: str) -> Parsed:
        m = decode(wire.TRADES, payload)
        trades = []
        for n, t in enumerate(m.data):
            if t.instId != inst_id:
                raise _mismatch(inst_id, t.instId)
            if kind == "trades_all" and t.count is not UNSET:
                raise bad(f".data[{n}].count", "trades-all prints are single matches")
            trades.append(_trade(t, f".data[{n}]"))
        return trade_message(kind, inst_id, symbol, trades, ".data")

    def _quote(self, payload: bytes, kind: str, inst_id: str) -> int:
        """Check a tickers, mark-price or books push; return its exchange time."""
        if kind == "mark_price":
            marks = decode(wire.MARK_PRICE, payload).data
            if not marks:
                raise bad(".data", "a mark-price push without data")
            for n, mark in enumerate(marks):
                if mark.instId != inst_id:
                    raise _mismatch(inst_id, mark.instId)
                plain_money(mark.markPx, f".data[{n}].markPx")
            return ts_text(marks[0].ts, ".data[0].ts")
        if kind == "tickers":
            tickers = decode(wire.TICKERS, payload).data
            if not tickers:
                raise bad(".data", "a tickers push without data")
            for n, item in enumerate(tickers):
                if item.instId != inst_id:
                    raise _mismatch(inst_id, item.instId)
                for name in _TICKER_MONEY:
                    value = getattr(item, name)
                    if value != "":  # "" when that side of the book is empty
                        check_plain(value, f".data[{n}].{name}")
            return ts_text(tickers[0].ts, ".data[0].ts")
        books = decode(wire.BOOKS, payload).data
        if not books:
            raise bad(".data", "a books push without data")
        for n, book in enumerate(books):
            book_levels(book.asks, f".data[{n}].asks", (2, 4))
            book_levels(book.bids, f".data[{n}].bids", (2, 4))
        return ts_text(books[0].ts, ".data[0].ts")

    def _event(self, payload: bytes, event: str) -> Parsed:
        kind = _EVENT_KINDS.get(event)
        if kind is None:
            raise PayloadRejected("unknown_message", f"event {show(event)}")
        m = decode(wire.EVENT, payload)
        inst_id = None
        if kind == "subscription_ack" and m.arg is not UNSET and m.arg.instId is not UNSET:
            inst_id = m.arg.instId
        return self._control(kind, inst_id)

    def _control(self, kind: str, inst_id: str | None) -> Parsed:
        return Parsed(
            kind=kind,
            channel="control",
            venue_symbol=inst_id,
            symbol=None if inst_id is None else self.to_canonical(inst_id),
            event_ts_exchange_ms=None,
        )


PARSER: Final = OkxSwapParser(
    DelimitedSymbolTable(
        venue=VENUE,
        separator="-",
        quotes=QUOTES,
        suffix="SWAP",
        refusal="okx-swap maps perpetual swaps (BASE-QUOTE-SWAP)",
        other_products=OTHER_PRODUCTS,
    )
)


def parse(payload: bytes) -> Parsed:
    """Parse one okx-swap message; raise PayloadRejected if it is out of contract."""
    return PARSER.parse(payload)


def to_canonical(venue_symbol: str) -> str:
    """``BTC-USDT-SWAP`` -> ``BTC-USDT-PERP``."""
    return PARSER.to_canonical(venue_symbol)


def to_venue(symbol: str) -> str:
    """``BTC-USDT-PERP`` -> ``BTC-USDT-SWAP``."""
    return PARSER.to_venue(symbol)
