"""Kraken spot WebSocket parser, v2 and v1 (pure; shapes in :mod:`.schemas`).

A v2 ``trade`` push (exchanges.md section 6.2, Kraken's documented example)::

    {"channel":"trade","type":"snapshot","data":[{"symbol":"MATIC/USD","side":"buy",
     "price":0.5147,"qty":6423.46326,"ord_type":"limit","trade_id":4665846,
     "timestamp":"2023-09-25T07:48:36.925533Z"}, ...]}

parses to ``Parsed(kind="trade", channel="trade", venue_symbol="MATIC/USD",
symbol="MATIC-USD", event_ts_exchange_ms=1695628116925, trades=(Trade(trade_id=4665846,
price=Decimal("0.5147"), size=Decimal("6423.46326"), taker_side="buy",
ts_ms=1695628116925, ...), ...))``. ``price`` and ``qty`` are JSON numbers: they are read
from the number's text in the message (msgspec.Raw), so ``0.5147`` is exactly
``Decimal("0.5147")`` and no float is ever made.

Kinds::

    kind              channel      protocol  told by                     exchange time
    trade             trade        v2        channel trade               earliest timestamp
    ticker            book_ticker  v2        channel ticker              timestamp, else None
    rest_trade        trade        REST      a 7-item array (a Trades    time (epoch seconds)
                                             row: names no pair)
    status            control   v2        channel status                 None
    heartbeat         control   v2        channel heartbeat              None
    pong              control   v2        method pong                    None
    subscription_ack  control   v1, v2    subscriptionStatus subscribed/unsubscribed;
                                          method subscribe/unsubscribe, success true
    error             control   v1, v2    subscriptionStatus error; success false
    book_snapshot_v1  depth     v1        [id, {"as","bs"}, "book-N", pair]  latest level time
    book_update_v1    depth     v1        [id, {"a"|"b"}(, {"b"}), "book-N", pair]  same
    heartbeat_v1      control   v1        event heartbeat                None
    system_status_v1  control   v1        event systemStatus             None
    pong_v1           control   v1        event pong                     None

A REST ``Trades`` row (exchanges.md 6.3), stored as one back-filled event::

    ["105433.60000","0.00027625",1762795433.9717445,"b","l","",10218208]

parses to ``Parsed(kind="rest_trade", channel="trade", venue_symbol=None, symbol=None,
event_ts_exchange_ms=1762795433971, trades=(Trade(trade_id=10218208,
price=Decimal("105433.60000"), size=Decimal("0.00027625"), taker_side="buy", ...),))``:
the time is a JSON number read from its text (floored to the ms, no float), ``b`` is a
taker buy. The same trade over v2 and REST has the same content (decimals compare by
value; the v2 timestamp's microseconds and the REST float's digits floor to the same ms).
A 6-item row (the older REST layout, without ``trade_id``) is refused as ``no_trade_id``.

v1 ``trade`` arrays (``[id, [[price, volume, time, side, type, misc], ...], "trade",
pair]``) are recognised and checked, then refused as ``no_trade_id``: v1 gives trades no id,
and a trade without an id can be neither de-duplicated nor checked for gaps. Capture v2.

A v2 trade batch names one symbol (else ``mixed_symbols``); ``side`` is the taker's side;
``trade_id`` is a sequence per book. Instruments: ``BTC/USD`` -> ``BTC-USD``; v1's ``XBT``
and ``XDG`` read as ``BTC`` and ``DOGE`` (``XBT/USD`` -> ``BTC-USD``); ``to_venue`` writes
the v2 name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from msgspec import UNSET, Raw

from buff_dataplane.core.errors import PayloadRejected
from buff_dataplane.feeds.base import Parsed, Trade
from buff_dataplane.feeds.common import (
    TableParser,
    bad,
    book_levels,
    decode,
    iso_ms,
    number_money,
    one_symbol,
    plain_money,
    seconds_ms,
    show,
    trade_message,
)
from buff_dataplane.feeds.kraken import schemas as wire
from buff_dataplane.feeds.symbols import DelimitedSymbolTable

VENUE: Final = "kraken"
# Quote assets in either spelling (XBT is v1's BTC).
QUOTES: Final[tuple[str, ...]] = (
    "USD", "EUR", "GBP", "CHF", "CAD", "JPY", "AUD", "AED",
    "USDT", "USDC", "DAI", "PYUSD", "XBT", "BTC", "ETH", "DOT",
)  # fmt: skip
ALIASES: Final[Mapping[str, str]] = {"XBT": "BTC", "XDG": "DOGE"}

CHANNEL_OF_KIND: Final[Mapping[str, str]] = {
    "trade": "trade",
    "ticker": "book_ticker",
    "rest_trade": "trade",
    "status": "control",
    "heartbeat": "control",
    "pong": "control",
    "subscription_ack": "control",
    "error": "control",
    "book_snapshot_v1": "depth",
    "book_update_v1": "depth",
    "heartbeat_v1": "control",
    "system_status_v1": "control",
    "pong_v1": "control",
}
KINDS: Final[tuple[str, ...]] = tuple(CHANNEL_OF_KIND)
_V1_EVENTS: Final[Mapping[str, str]] = {
    "heartbeat": "heartbeat_v1",
    "systemStatus": "system_status_v1",
    "pong": "pong_v1",
}
_LEVEL_WIDTHS: Final = (3, 4)  # [price, volume, time] and a republished ["...", "r"]


def _latest_level_ms(raws: list[Raw], where: str) -> int:
    latest: int | None = None
    for n, raw in enumerate(raws):
        for i, row in enumerate(book_levels(raw, f"{where}[{n}]", _LEVEL_WIDTHS)):
            if len(row) == 4 and row[3] != "r":
                raise bad(f"{where}[{n}][{i}][3]", f"expected 'r', got {show(row[3])}")
            ms = seconds_ms(row[2], f"{where}[{n}][{i}][2]")
            latest = ms if latest is None else max(latest, ms)
    if latest is None:
        raise bad(where, "a book message without levels")
    return latest


def _book_v1(bodies: list[Raw]) -> tuple[str, int]:
    """Check v1 book data (one or two objects); return (kind, latest level time)."""
    books = [decode(wire.BOOK_V1, body, f"[{n}]") for n, body in enumerate(bodies, 1)]
    first = books[0]
    if first.asks is not UNSET or first.bs is not UNSET:
        if len(books) != 1 or first.asks is UNSET or first.bs is UNSET:
            raise bad("[1]", "a book snapshot has `as` and `bs`, in one object")
        if first.a is not UNSET or first.b is not UNSET or first.c is not UNSET:
            raise bad("[1]", "a book snapshot with update fields")
        return "book_snapshot_v1", _latest_level_ms([first.asks, first.bs], "[1]")
    levels: list[Raw] = []
    for n, book in enumerate(books, 1):
        if book.asks is not UNSET or book.bs is not UNSET:
            raise bad(f"[{n}]", "snapshot fields in a book update")
        if book.a is UNSET and book.b is UNSET:
            raise bad(f"[{n}]", "a book update without `a` or `b`")
        levels.extend(side for side in (book.a, book.b) if side is not UNSET)
    return "book_update_v1", _latest_level_ms(levels, "[1]")


def _trades_v1(body: Raw) -> None:
    """Check a v1 trade array, then refuse it: v1 trades carry no trade id."""
    rows = decode(wire.TRADES_V1, body, "[1]")
    for n, row in enumerate(rows):
        plain_money(row[0], f"[1][{n}][0]")
        plain_money(row[1], f"[1][{n}][1]")
        seconds_ms(row[2], f"[1][{n}][2]")
    raise PayloadRejected(
        "no_trade_id",
        f"a Kraken v1 trade message ({len(rows)} trades) gives trades no id; capture v2",
    )


def _rest_trade(payload: bytes, width: int) -> Parsed:
    """A REST ``Trades`` row: one trade, no pair (the response is keyed by it)."""
    if width == 6:
        raise PayloadRejected(
            "no_trade_id", "a 6-item Trades row (the layout before trade_id) gives no trade id"
        )
    row = decode(wire.TRADE_ROW_REST, payload)
    price, volume, time, side, _ord_type, _misc, trade_id = row
    ts = seconds_ms(bytes(time).decode("ascii", "replace"), "[2]")
    trade = Trade(
        trade_id=trade_id,
        price=plain_money(price, "[0]"),
        size=plain_money(volume, "[1]"),
        taker_side="buy" if side == "b" else "sell",
        ts_ms=ts,
        first_trade_id=None,
        last_trade_id=None,
    )
    return Parsed(
        kind="rest_trade",
        channel="trade",
        venue_symbol=None,
        symbol=None,
        event_ts_exchange_ms=ts,
        trades=(trade,),
    )


class KrakenParser(TableParser):
    """The kraken parser (v2 and v1); implements :class:`buff_dataplane.feeds.base.Parser`."""

    __slots__ = ()

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(KINDS)

    def parse(self, payload: bytes) -> Parsed:
        head = decode(wire.HEAD, payload)
        if isinstance(head, list):
            if len(head) in (6, 7):
                return _rest_trade(payload, len(head))
            return self._array_v1(head)
        if not isinstance(head, wire.Head):
            raise PayloadRejected("unknown_message", "expected a JSON object or array")
        if head.channel is not UNSET:
            return self._push(payload, head.channel)
        if head.method is not UNSET:
            return self._answer(payload)
        if head.event is not UNSET:
            return self._event_v1(payload, head.event)
        raise PayloadRejected("unknown_message", "no `channel`, `method` or `event`")

    def _control(self, kind: str, pair: str | None = None, *, lenient: bool = False) -> Parsed:
        """A control message; ``pair`` is its instrument if it names one.

        ``lenient``: an error may name a pair that does not exist; it then names none.
        """
        symbol = None
        if pair is not None:
            try:
                symbol = self.to_canonical(pair)
            except PayloadRejected:
                if not lenient:
                    raise
                pair = None
        return Parsed(
            kind=kind,
            channel="control",
            venue_symbol=pair,
            symbol=symbol,
            event_ts_exchange_ms=None,
        )

    # -- v2 -----------------------------------------------------------------------------

    def _push(self, payload: bytes, channel: str) -> Parsed:
        if channel == "trade":
            m = decode(wire.TRADE, payload)
            if not m.data:
                raise bad(".data", "a trade push without trades")
            pair = one_symbol([t.symbol for t in m.data], ".data")
            symbol = self.to_canonical(pair)
            trades = [
                Trade(
                    trade_id=t.trade_id,
                    price=number_money(t.price, f".data[{n}].price"),
                    size=number_money(t.qty, f".data[{n}].qty"),
                    taker_side=t.side,
                    ts_ms=iso_ms(t.timestamp, f".data[{n}].timestamp"),
                    first_trade_id=None,
                    last_trade_id=None,
                )
                for n, t in enumerate(m.data)
            ]
            return trade_message("trade", pair, symbol, trades, ".data")
        if channel == "ticker":
            return self._ticker(payload)
        if channel == "status":
            decode(wire.STATUS, payload)
            return self._control("status")
        if channel == "heartbeat":
            decode(wire.HEARTBEAT, payload)
            return self._control("heartbeat")
        raise PayloadRejected("unknown_message", f"v2 channel {show(channel)}")

    def _ticker(self, payload: bytes) -> Parsed:
        m = decode(wire.TICKER, payload)
        if not m.data:
            raise bad(".data", "a ticker push without data")
        pair = one_symbol([t.symbol for t in m.data], ".data")
        symbol = self.to_canonical(pair)
        times: list[int] = []
        for n, t in enumerate(m.data):
            for name in ("bid", "bid_qty", "ask", "ask_qty"):
                number_money(getattr(t, name), f".data[{n}].{name}")
            if t.timestamp is not UNSET:
                times.append(iso_ms(t.timestamp, f".data[{n}].timestamp"))
        return Parsed(
            kind="ticker",
            channel="book_ticker",
            venue_symbol=pair,
            symbol=symbol,
            event_ts_exchange_ms=min(times) if times else None,
        )

    def _answer(self, payload: bytes) -> Parsed:
        m = decode(wire.METHOD, payload)
        if m.method == "pong":
            return self._control("pong")
        if m.success is UNSET:
            raise bad(".success", f"an answer to {m.method} without `success`")
        if not m.success:
            return self._control("error", None if m.symbol is UNSET else m.symbol, lenient=True)
        pair = None if m.result is UNSET or m.result.symbol is UNSET else m.result.symbol
        return self._control("subscription_ack", pair)

    # -- v1 -----------------------------------------------------------------------------

    def _event_v1(self, payload: bytes, event: str) -> Parsed:
        if event not in (*_V1_EVENTS, "subscriptionStatus"):
            raise PayloadRejected("unknown_message", f"v1 event {show(event)}")
        m = decode(wire.EVENT_V1, payload)
        if m.event != "subscriptionStatus":
            return self._control(_V1_EVENTS[m.event])
        pair = None if m.pair is UNSET else m.pair
        if m.status in ("subscribed", "unsubscribed"):
            return self._control("subscription_ack", pair)
        if m.status == "error":
            return self._control("error", pair, lenient=True)
        raise bad(".status", f"subscriptionStatus status {show(m.status)}")

    def _array_v1(self, items: list[Raw]) -> Parsed:
        if len(items) not in (4, 5):
            raise PayloadRejected("unknown_message", f"a JSON array of {len(items)} items")
        decode(wire.INT, items[0], "[0]")  # the channel id
        name = decode(wire.TEXT, items[-2], f"[{len(items) - 2}]")
        pair = decode(wire.TEXT, items[-1], f"[{len(items) - 1}]")
        bodies = items[1:-2]
        if name == "trade":
            if len(bodies) != 1:
                raise bad("", "a v1 trade array has one trade list")
            self.to_canonical(pair)
            _trades_v1(bodies[0])
        if not name.startswith("book-"):
            raise PayloadRejected("unknown_message", f"v1 channel {show(name)}")
        symbol = self.to_canonical(pair)  # before reading: an unknown pair is refused as such
        kind, ts = _book_v1(bodies)
        return Parsed(
            kind=kind,
            channel="depth",
            venue_symbol=pair,
            symbol=symbol,
            event_ts_exchange_ms=ts,
        )


PARSER: Final = KrakenParser(
    DelimitedSymbolTable(
        venue=VENUE,
        separator="/",
        quotes=QUOTES,
        aliases=ALIASES,
        refusal="kraken maps spot pairs BASE/QUOTE",
    )
)


def parse(payload: bytes) -> Parsed:
    """Parse one Kraken message (v2 or v1); raise PayloadRejected if it is out of contract."""
    return PARSER.parse(payload)


def to_canonical(venue_symbol: str) -> str:
    """``BTC/USD`` (v2) or ``XBT/USD`` (v1) -> ``BTC-USD``."""
    return PARSER.to_canonical(venue_symbol)


def to_venue(symbol: str) -> str:
    """``BTC-USD`` -> ``BTC/USD`` (the v2 name)."""
    return PARSER.to_venue(symbol)
