"""Coinbase message parser: Exchange ws-feed and Advanced Trade (pure; :mod:`.schemas`).

A recorded ``match`` (cryptofeed sample, ``ws-feed.pro.coinbase.com``, 2021-04-17)::

    {"type":"match","trade_id":280232,"maker_order_id":"2a0da34e-61f7-4c36-88e5-c9dd15927b16",
     "taker_order_id":"3c82abaa-c01e-4608-be59-6a1e69742891","side":"sell","size":"985",
     "price":"0.00001305","product_id":"SKL-BTC","sequence":177100030,
     "time":"2021-04-17T16:43:37.089723Z"}

parses to ``Parsed(kind="match", channel="trade", venue_symbol="SKL-BTC", symbol="SKL-BTC",
event_ts_exchange_ms=1618677817089, trade=<the one trade>, trades=(Trade(trade_id=280232,
price=Decimal("0.00001305"), size=Decimal("985"), taker_side="buy", ts_ms=1618677817089,
first_trade_id=None, last_trade_id=None),))``: ``side`` is the MAKER's side (a resting sell
was hit), so the taker bought.

Kinds (Exchange: told by ``type``; Advanced Trade: told by ``channel``)::

    kind              channel      message                          exchange time
    match             trade        type match                       time
    last_match        trade        type last_match (replayed)       time
    rest_trade        trade        REST trades item (no type)       time
    ticker            book_ticker  type ticker                      time, if present
    snapshot          depth        type snapshot (level2)           None
    l2update          depth        type l2update                    time
    heartbeat         control      type heartbeat (last_trade_id)   time
    subscription_ack  control      type subscriptions; AT channel subscriptions
    error             control      type error                       None
    at_market_trades  trade        AT channel market_trades         earliest trades[].time
    at_ticker         book_ticker  AT channel ticker, ticker_batch  timestamp
    at_l2_data        depth        AT channel l2_data               timestamp
    at_candles        kline        AT channel candles               timestamp
    at_heartbeats     control      AT channel heartbeats            timestamp

A ``rest_trade`` is one item of REST ``GET /products/{id}/trades``, as a back-fill stores
it: ``{"time":"2020-03-20T00:36:59.860Z","trade_id":86327327,"price":"6225.32000000",
"size":"0.06469797","side":"sell"}``. It has no ``type`` and names no product (symbol
None: the request named it); its ``side`` is the maker's too, so it parses to the same
Trade as the ``match`` of that trade id.

Advanced Trade serves the same books and trade ids as the Exchange feed (its ``trade_id``
is the same per-product sequence, sent as text) and its ``side`` is the maker's side too
(checked on the v3 recording: trades at the best ask say ``SELL``), so its trades map onto
the coinbase venue unchanged. A message whose items name several products is refused as
``mixed_symbols``: one message belongs to one stream. Times are ISO 8601, parsed exactly
and floored to the millisecond.

Instruments: ``BTC-USD`` -> ``BTC-USD`` (the product id is already ``BASE-QUOTE``; the table
checks the quote is one Coinbase lists).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from msgspec import UNSET, Raw

from buff_dataplane.core.errors import PayloadRejected
from buff_dataplane.feeds.base import Parsed, Trade
from buff_dataplane.feeds.coinbase import schemas as wire
from buff_dataplane.feeds.common import (
    TableParser,
    book_levels,
    check_plain,
    decode,
    int_text,
    iso_ms,
    one_symbol,
    plain_money,
    show,
    trade_message,
)
from buff_dataplane.feeds.symbols import DelimitedSymbolTable

VENUE: Final = "coinbase"
QUOTES: Final[tuple[str, ...]] = (
    "USD", "USDC", "USDT", "EUR", "GBP", "BTC", "ETH", "DAI", "SOL",
)  # fmt: skip

CHANNEL_OF_KIND: Final[Mapping[str, str]] = {
    "match": "trade",
    "last_match": "trade",
    "rest_trade": "trade",
    "ticker": "book_ticker",
    "snapshot": "depth",
    "l2update": "depth",
    "heartbeat": "control",
    "subscription_ack": "control",
    "error": "control",
    "at_market_trades": "trade",
    "at_ticker": "book_ticker",
    "at_l2_data": "depth",
    "at_candles": "kline",
    "at_heartbeats": "control",
}
KINDS: Final[tuple[str, ...]] = tuple(CHANNEL_OF_KIND)
_AT_KINDS: Final[Mapping[str, str]] = {
    "market_trades": "at_market_trades",
    "ticker": "at_ticker",
    "ticker_batch": "at_ticker",
    "l2_data": "at_l2_data",
    "candles": "at_candles",
    "heartbeats": "at_heartbeats",
    "subscriptions": "subscription_ack",
}
# The maker's side -> the taker's side.
_TAKER: Final[Mapping[str, str]] = {"buy": "sell", "sell": "buy", "BUY": "sell", "SELL": "buy"}

_Read = tuple[str | None, int | None]  # (product id, exchange time)


def _match_trade(
    m: wire.MatchMsg | wire.AtTrade | wire.RestTrade, trade_id: int, where: str
) -> Trade:
    return Trade(
        trade_id=trade_id,
        price=plain_money(m.price, f"{where}.price"),
        size=plain_money(m.size, f"{where}.size"),
        taker_side=_TAKER[m.side],
        ts_ms=iso_ms(m.time, f"{where}.time"),
        first_trade_id=None,
        last_trade_id=None,
    )


def _money(where: str, **fields: object) -> None:
    """Each present, non-empty field is plain decimal text."""
    for name, value in fields.items():
        if isinstance(value, str) and value != "":
            check_plain(value, f"{where}.{name}")


def _ticker(body: bytes) -> _Read:
    m = decode(wire.TICKER, body)
    _money("", price=m.price, best_bid=m.best_bid, best_ask=m.best_ask, last_size=m.last_size)
    return m.product_id, (None if m.time is UNSET else iso_ms(m.time, ".time"))


def _snapshot(body: bytes) -> _Read:
    m = decode(wire.BOOK_SNAPSHOT, body)
    book_levels(m.bids, ".bids", (2, 3))
    book_levels(m.asks, ".asks", (2, 3))
    return m.product_id, None


def _l2update(body: bytes) -> _Read:
    m = decode(wire.L2UPDATE, body)
    for n, (_, price, size) in enumerate(m.changes):
        check_plain(price, f".changes[{n}][1]")
        check_plain(size, f".changes[{n}][2]")
    return m.product_id, iso_ms(m.time, ".time")


def _subscriptions(body: bytes) -> _Read:
    decode(wire.SUBSCRIPTIONS, body)
    return None, None


def _error(body: bytes) -> _Read:
    decode(wire.ERROR, body)
    return None, None


_READERS: Final[Mapping[str, Callable[[bytes], _Read]]] = {
    "ticker": _ticker,
    "snapshot": _snapshot,
    "l2update": _l2update,
    "subscriptions": _subscriptions,
    "error": _error,
}


def _at_tickers(events: Raw) -> list[str]:
    names: list[str] = []
    batch: list[wire.AtTickerEvent] = decode(wire.AT_TICKERS, events, ".events")
    for n, ev in enumerate(batch):
        for i, t in enumerate(ev.tickers):
            where = f".events[{n}].tickers[{i}]"
            _money(where, price=t.price, best_bid=t.best_bid, best_ask=t.best_ask)
            _money(where, best_bid_quantity=t.best_bid_quantity)
            _money(where, best_ask_quantity=t.best_ask_quantity)
            names.append(t.product_id)
    return names


def _at_books(events: Raw) -> list[str]:
    names: list[str] = []
    batch: list[wire.AtBookEvent] = decode(wire.AT_BOOK, events, ".events")
    for n, book in enumerate(batch):
        for i, level in enumerate(book.updates):
            where = f".events[{n}].updates[{i}]"
            check_plain(level.price_level, f"{where}.price_level")
            check_plain(level.new_quantity, f"{where}.new_quantity")
            iso_ms(level.event_time, f"{where}.event_time")
        names.append(book.product_id)
    return names


def _at_candles(events: Raw) -> list[str]:
    names: list[str] = []
    batch: list[wire.AtCandlesEvent] = decode(wire.AT_CANDLES, events, ".events")
    for n, ev in enumerate(batch):
        for i, c in enumerate(ev.candles):
            where = f".events[{n}].candles[{i}]"
            _money(where, high=c.high, low=c.low, open=c.open, close=c.close)
            _money(where, volume=c.volume)
            names.append(c.product_id)
    return names


def _at_plain(events: Raw) -> list[str]:
    """Heartbeats and subscriptions: a list of objects naming no instrument."""
    decode(wire.AT_ANY, events, ".events")
    return []


# Advanced Trade kind -> reader of its events: the products they name.
_AT_READERS: Final[Mapping[str, Callable[[Raw], list[str]]]] = {
    "at_ticker": _at_tickers,
    "at_l2_data": _at_books,
    "at_candles": _at_candles,
    "at_heartbeats": _at_plain,
    "subscription_ack": _at_plain,
}


def _rest_trade(payload: bytes) -> Parsed:
    m = decode(wire.REST_TRADE, payload)
    trade = _match_trade(m, m.trade_id, "")
    return Parsed(
        kind="rest_trade",
        channel="trade",
        venue_symbol=None,
        symbol=None,
        event_ts_exchange_ms=trade.ts_ms,
        trades=(trade,),
    )


class CoinbaseParser(TableParser):
    """The coinbase parser; implements :class:`buff_dataplane.feeds.base.Parser`."""

    __slots__ = ()

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(KINDS)

    def parse(self, payload: bytes) -> Parsed:
        head = decode(wire.HEAD, payload)
        if not isinstance(head, wire.Head):
            raise PayloadRejected("unknown_message", "expected a JSON object")
        if head.type is not UNSET:
            return self._exchange(payload, head.type)
        if head.channel is not UNSET:
            return self._advanced(payload, head.channel)
        if head.trade_id is not UNSET:
            return _rest_trade(payload)
        raise PayloadRejected(
            "unknown_message", "no `type` (Exchange), no `channel` (AT), no `trade_id` (REST)"
        )

    def _parsed(self, kind: str, product: str | None, ts: int | None) -> Parsed:
        return Parsed(
            kind=kind,
            channel=CHANNEL_OF_KIND[kind],
            venue_symbol=product,
            symbol=None if product is None else self.to_canonical(product),
            event_ts_exchange_ms=ts,
        )

    def _exchange(self, payload: bytes, type_: str) -> Parsed:
        if type_ in ("match", "last_match"):
            m = decode(wire.MATCH, payload)
            symbol = self.to_canonical(m.product_id)
            trade = _match_trade(m, m.trade_id, "")
            return trade_message(type_, m.product_id, symbol, (trade,), "")
        if type_ == "heartbeat":  # its last_trade_id is a gap fact (core.gaps.detect)
            hb = decode(wire.HEARTBEAT, payload)
            return Parsed(
                kind="heartbeat",
                channel="control",
                venue_symbol=hb.product_id,
                symbol=self.to_canonical(hb.product_id),
                event_ts_exchange_ms=iso_ms(hb.time, ".time"),
                stated_last_trade_id=hb.last_trade_id,
            )
        reader = _READERS.get(type_)
        if reader is None:
            raise PayloadRejected("unknown_message", f"type {show(type_)}")
        kind = "subscription_ack" if type_ == "subscriptions" else type_
        product, ts = reader(payload)
        return self._parsed(kind, product, ts)

    def _advanced(self, payload: bytes, channel: str) -> Parsed:
        kind = _AT_KINDS.get(channel)
        if kind is None:
            raise PayloadRejected("unknown_message", f"Advanced Trade channel {show(channel)}")
        m = decode(wire.AT, payload)
        ts = iso_ms(m.timestamp, ".timestamp")
        if kind == "at_market_trades":
            trades: list[Trade] = []
            names: list[str] = []
            batch: list[wire.AtTradesEvent] = decode(wire.AT_TRADES, m.events, ".events")
            for n, ev in enumerate(batch):
                for i, t in enumerate(ev.trades):
                    where = f".events[{n}].trades[{i}]"
                    tid = int_text(t.trade_id, f"{where}.trade_id")
                    trades.append(_match_trade(t, tid, where))
                    names.append(t.product_id)
            if not names:
                raise PayloadRejected("bad_field", "`$.events`: market_trades without trades")
            product = one_symbol(names, ".events")
            return trade_message(kind, product, self.to_canonical(product), trades, ".events")
        names = _AT_READERS[kind](m.events)
        return self._parsed(kind, one_symbol(names, ".events") if names else None, ts)


PARSER: Final = CoinbaseParser(
    DelimitedSymbolTable(
        venue=VENUE,
        separator="-",
        quotes=QUOTES,
        refusal="coinbase maps spot products BASE-QUOTE",
    )
)


def parse(payload: bytes) -> Parsed:
    """Parse one Coinbase message; raise PayloadRejected if it is out of contract."""
    return PARSER.parse(payload)


def to_canonical(venue_symbol: str) -> str:
    """``BTC-USD`` -> ``BTC-USD``."""
    return PARSER.to_canonical(venue_symbol)


def to_venue(symbol: str) -> str:
    """``BTC-USD`` -> ``BTC-USD``."""
    return PARSER.to_venue(symbol)
