"""Binance message decoding shared by USD-M futures and spot (pure, no I/O).

Each message shape is a frozen msgspec Struct with a pre-built decoder, declared in
:mod:`buff_dataplane.feeds.binance_schemas`. A message arrives bare or in the
combined-stream wrapper ``{"stream": "<symbol>@<name>", "data": {...}}``, whose ``data``
stays :class:`msgspec.Raw` until its shape is known. The shape is read from the event type
``e``; shapes without one are told apart by their keys::

    kind              channel      told by                     exchange time
    aggTrade          trade        e                           T (trade time)
    trade             trade        e                           T (trade time)
    bookTicker        book_ticker  e, or u + s (spot: no e)    T if present (USD-M), else None
    markPriceUpdate   mark_price   e (USD-M only)              E
    depthUpdate       depth        e                           T if present (USD-M), else E
    kline             kline        e                           E
    depthSnapshot     depth        lastUpdateId                T, else E, else None (spot)
    subscription_ack  control      result                      None
    error             control      error, or code              None

Checks beyond the types: money is plain decimal text ``digits[.digits]`` (ASCII digits;
no JSON number, sign, exponent or NaN), and a trade's price and size, parsed exactly by
:func:`~buff_dataplane.core.decimals.parse_decimal`, are positive; ids are int64 >= 0;
times are epoch ms within ``MIN_TS_MS..MAX_TS_MS`` (a stream opened with
``timeUnit=MICROSECOND`` is refused, not misread); ``U <= u`` and ``f <= l``; in a
wrapper, the stream's prefix upper-cased equals ``s`` and the stream's name fits the
shape. Unknown fields are ignored (Binance adds some: ``nq``, ``st`` on aggTrade).
Anything else raises PayloadRejected with a reason listed in
:mod:`buff_dataplane.feeds.base`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Final, TypeVar

import msgspec
from msgspec import UNSET, Raw

from buff_dataplane.core.decimals import parse_decimal
from buff_dataplane.core.errors import PayloadRejected, ValidationError
from buff_dataplane.feeds import binance_schemas as wire
from buff_dataplane.feeds.base import Parsed, Trade
from buff_dataplane.feeds.symbols import SymbolTable

_T = TypeVar("_T")


CHANNEL_OF_KIND: Final[Mapping[str, str]] = {
    "aggTrade": "trade",
    "restAggTrade": "trade",
    "trade": "trade",
    "bookTicker": "book_ticker",
    "markPriceUpdate": "mark_price",
    "depthUpdate": "depth",
    "kline": "kline",
    "depthSnapshot": "depth",
    "subscription_ack": "control",
    "error": "control",
}
KINDS: Final[tuple[str, ...]] = tuple(CHANNEL_OF_KIND)
_E_KINDS: Final = frozenset(
    ("aggTrade", "trade", "bookTicker", "markPriceUpdate", "depthUpdate", "kline")
)
_DEPTH_KINDS: Final = frozenset(("depthUpdate", "depthSnapshot"))
# What a combined stream may carry, by its name's first part after the symbol.
_STREAM_KINDS: Final[Mapping[str, frozenset[str]]] = {
    "aggTrade": frozenset(("aggTrade",)),
    "trade": frozenset(("trade",)),
    "bookTicker": frozenset(("bookTicker",)),
    "markPrice": frozenset(("markPriceUpdate",)),
    "depth": _DEPTH_KINDS,
    "depth5": _DEPTH_KINDS,
    "depth10": _DEPTH_KINDS,
    "depth20": _DEPTH_KINDS,
}
_KLINE_KINDS: Final = frozenset(("kline",))


def _show(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, list):
        return "array"
    return "string" if isinstance(value, str) else "number"


def _decode(decoder: msgspec.json.Decoder[_T], body: bytes | Raw, where: str) -> _T:
    """Decode ``body``; any failure becomes PayloadRejected (``where`` prefixes JSON paths)."""
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        text = str(exc)
        if "`$" in text:
            text = text.replace("`$", f"`${where}", 1)
        elif where:
            text = f"{text} - at `${where}`"
        raise PayloadRejected("bad_field", text) from exc
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # msgspec lets bad UTF-8 through
        raise PayloadRejected("not_json", str(exc)) from exc
    except RecursionError as exc:
        raise PayloadRejected("not_json", "nested too deeply") from exc


def _head(body: bytes | Raw, where: str) -> wire.Head:
    head = _decode(wire.HEAD, body, where)
    if not isinstance(head, wire.Head):
        raise PayloadRejected(
            "unknown_message", f"`${where}`: expected a JSON object, got {_json_type(head)}"
        )
    return head


def _positive(text: str, field: str) -> Decimal:
    try:
        value = parse_decimal(text, field=field)
    except ValidationError as exc:  # pragma: no cover - _check_plain ran first
        raise PayloadRejected("bad_field", str(exc)) from exc
    if value <= 0:
        raise PayloadRejected("bad_field", f"{field}: expected a positive decimal, got {text!r}")
    return value


_P: Final = wire.PLAIN_DECIMAL
_PLAIN_RE: Final = re.compile(_P)
_SIGNED_RE: Final = re.compile(f"-?{_P}")
_PLAIN_RUN_RE: Final = re.compile(f"{_P}(?:\x00{_P})*")


def _check_plain(where: str, names: tuple[str, ...], *texts: str) -> None:
    """Each of ``texts`` (fields ``names``) is plain decimal text like ``"61800.30"``.

    One regex over the NUL-joined texts checks all; it must see exactly ``len(texts)``
    numbers, and a NUL inside a field would add one, so a match proves every field.
    """
    joined = "\x00".join(texts)
    if _PLAIN_RUN_RE.fullmatch(joined) is not None and joined.count("\x00") == len(texts) - 1:
        return
    for name, text in zip(names, texts, strict=True):
        if _PLAIN_RE.fullmatch(text) is None:
            raise PayloadRejected(
                "bad_field", f"`${where}.{name}`: expected plain decimal text, got {_show(text)}"
            )


_LEVELS_RE: Final = re.compile(f'\\[(?:\\["{_P}","{_P}"\\](?:,\\["{_P}","{_P}"\\])*)?\\]'.encode())
_LEVELS: Final = msgspec.json.Decoder(list[wire.Level])


def _check_levels(raw: Raw, where: str) -> None:
    """``raw`` is a list of ``["price", "qty"]`` in plain decimal text.

    Fast path: one regex over the compact JSON Binance sends. Anything else (whitespace, or
    an error to name) goes through the typed decoder, which is the rule.
    """
    if _LEVELS_RE.fullmatch(raw) is None:
        _decode(_LEVELS, raw, where)


def _check_stream(kind: str, stream: str, venue_symbol: str | None) -> str:
    """Check a wrapper's stream name against its data; return the symbol the stream names."""
    prefix, sep, name = stream.partition("@")
    if not sep or not prefix:
        raise PayloadRejected("bad_field", f"stream {_show(stream)}: expected <symbol>@<name>")
    first = name.partition("@")[0]
    allowed = _KLINE_KINDS if first.startswith("kline_") else _STREAM_KINDS.get(first, frozenset())
    if kind not in allowed:
        raise PayloadRejected("stream_kind_mismatch", f"stream {_show(stream)} carries {kind}")
    named = prefix.upper()
    if venue_symbol is None:
        return named  # a spot partial-depth snapshot names its symbol only in the stream
    if named != venue_symbol:
        raise PayloadRejected(
            "stream_symbol_mismatch", f"stream {_show(stream)} carries s={_show(venue_symbol)}"
        )
    return venue_symbol


# --- one reader per kind: (body, where) -> (exchange time, trade) -------------------------

_Read = tuple[int | None, Trade | None]
_KLINE_MONEY: Final = ("o", "c", "h", "l", "v", "q", "V", "Q")


def _aggregated(m: wire.AggTradeMsg | wire.RestAggTrade, what: str, where: str) -> _Read:
    """An aggregated print, from the WS message or the REST item (the same fields)."""
    if m.f > m.last:
        raise PayloadRejected("bad_field", f"{what} a={m.a}: first id f={m.f} > last id l={m.last}")
    _check_plain(where, ("p", "q"), m.p, m.q)
    return m.T, Trade(
        trade_id=m.a,
        price=_positive(m.p, "p"),
        size=_positive(m.q, "q"),
        taker_side="sell" if m.m else "buy",  # m: the buyer is the maker, the taker sold
        ts_ms=m.T,
        first_trade_id=m.f,
        last_trade_id=m.last,
    )


def _agg_trade(body: bytes | Raw, where: str) -> _Read:
    return _aggregated(_decode(wire.AGG_TRADE, body, where), "aggTrade", where)


def _rest_agg_trade(body: bytes | Raw, where: str) -> _Read:
    return _aggregated(_decode(wire.REST_AGG_TRADE, body, where), "aggTrades item", where)


def _trade(body: bytes | Raw, where: str) -> _Read:
    m = _decode(wire.TRADE, body, where)
    _check_plain(where, ("p", "q"), m.p, m.q)
    price, size = _positive(m.p, "p"), _positive(m.q, "q")
    side = "sell" if m.m else "buy"
    return m.T, Trade(
        trade_id=m.t,
        price=price,
        size=size,
        taker_side=side,
        ts_ms=m.T,
        first_trade_id=None,
        last_trade_id=None,
    )


def _book_ticker(body: bytes | Raw, where: str) -> _Read:
    m = _decode(wire.BOOK_TICKER, body, where)
    _check_plain(where, ("b", "B", "a", "A"), m.b, m.B, m.a, m.A)
    return (None if m.T is UNSET else m.T), None


def _mark_price(body: bytes | Raw, where: str) -> _Read:
    m = _decode(wire.MARK_PRICE, body, where)
    _check_plain(where, ("p", "i", "P"), m.p, m.i, m.P)
    if _SIGNED_RE.fullmatch(m.r) is None:
        raise PayloadRejected("bad_field", f"`${where}.r`: expected decimal text, got {_show(m.r)}")
    return m.E, None


def _depth_update(body: bytes | Raw, where: str) -> _Read:
    m = _decode(wire.DEPTH_UPDATE, body, where)
    if m.U > m.u:  # noqa: SIM300 - reads as the invariant U <= u
        raise PayloadRejected("bad_field", f"depthUpdate: first update id U={m.U} > final u={m.u}")
    _check_levels(m.b, f"{where}.b")
    _check_levels(m.a, f"{where}.a")
    return (m.E if m.T is UNSET else m.T), None


def _kline(body: bytes | Raw, where: str) -> _Read:
    m = _decode(wire.KLINE, body, where)
    if m.k.s != m.s:
        raise PayloadRejected("bad_field", f"kline: k.s={_show(m.k.s)} but s={_show(m.s)}")
    if m.k.t > m.k.T:
        raise PayloadRejected("bad_field", f"kline: open time t={m.k.t} > close time T={m.k.T}")
    k = m.k
    _check_plain(f"{where}.k", _KLINE_MONEY, k.o, k.c, k.h, k.low, k.v, k.q, k.V, k.Q)
    return m.E, None


def _depth_snapshot(body: bytes | Raw, where: str) -> _Read:
    m = _decode(wire.DEPTH_SNAPSHOT, body, where)
    _check_levels(m.bids, f"{where}.bids")
    _check_levels(m.asks, f"{where}.asks")
    if m.T is not UNSET:
        return m.T, None
    return (None if m.E is UNSET else m.E), None


def _ack(body: bytes | Raw, where: str) -> _Read:
    _decode(wire.ACK, body, where)
    return None, None


def _error(body: bytes | Raw, where: str) -> _Read:
    _decode(wire.ERROR, body, where)
    return None, None


def _flat_error(body: bytes | Raw, where: str) -> _Read:
    _decode(wire.FLAT_ERROR, body, where)
    return None, None


_READERS: Final[Mapping[str, Callable[[bytes | Raw, str], _Read]]] = {
    "aggTrade": _agg_trade,
    "restAggTrade": _rest_agg_trade,
    "trade": _trade,
    "bookTicker": _book_ticker,
    "markPriceUpdate": _mark_price,
    "depthUpdate": _depth_update,
    "kline": _kline,
    "depthSnapshot": _depth_snapshot,
    "subscription_ack": _ack,
    "error": _error,
}


# --- the parser ---------------------------------------------------------------------------


class BinanceParser:
    """The parser of one Binance venue: the kinds it accepts and its symbol table.

    Implements :class:`buff_dataplane.feeds.base.Parser`. ``parse`` is pure; the only state
    is the symbol table's bounded cache of immutable strings.
    """

    __slots__ = ("_kinds", "_symbols")

    def __init__(self, *, symbols: SymbolTable, kinds: Iterable[str]) -> None:
        self._symbols = symbols
        self._kinds = frozenset(kinds)
        unknown = self._kinds.difference(KINDS)
        if unknown:
            raise ValueError(f"unknown Binance message kinds: {sorted(unknown)}")

    @property
    def venue(self) -> str:
        return self._symbols.venue

    @property
    def kinds(self) -> frozenset[str]:
        return self._kinds

    @property
    def symbols(self) -> SymbolTable:
        return self._symbols

    def __repr__(self) -> str:
        return f"BinanceParser(venue={self.venue!r})"

    def to_canonical(self, venue_symbol: str) -> str:
        return self._symbols.to_canonical(venue_symbol)

    def to_venue(self, symbol: str) -> str:
        return self._symbols.to_venue(symbol)

    def parse(self, payload: bytes) -> Parsed:
        head = _head(payload, "")
        if head.stream is UNSET and head.data is UNSET:
            return self._parse_body(payload, head, None, "")
        if head.stream is UNSET or head.data is UNSET:
            raise PayloadRejected(
                "bad_field", "a combined-stream message needs `stream` and `data`"
            )
        inner = _head(head.data, ".data")
        if inner.stream is not UNSET or inner.data is not UNSET:
            raise PayloadRejected("unknown_message", "a combined-stream wrapper inside another")
        return self._parse_body(head.data, inner, head.stream, ".data")

    def _parse_body(
        self, body: bytes | Raw, head: wire.Head, stream: str | None, where: str
    ) -> Parsed:
        kind = self._classify(head)
        venue_symbol = None if head.s is UNSET or kind not in _E_KINDS else head.s
        if stream is not None:
            venue_symbol = _check_stream(kind, stream, venue_symbol)
        # Map the symbol before reading the rest, so a delivery contract is refused as such
        # even where its fields differ (its markPrice has r="" and T=0).
        symbol = None if venue_symbol is None else self._symbols.to_canonical(venue_symbol)
        if kind == "error" and head.error is UNSET:
            ts, trade = _flat_error(body, where)
        else:
            ts, trade = _READERS[kind](body, where)
        return Parsed(
            kind=kind,
            channel=CHANNEL_OF_KIND[kind],
            venue_symbol=venue_symbol,
            symbol=symbol,
            event_ts_exchange_ms=ts,
            trades=() if trade is None else (trade,),
        )

    def _classify(self, head: wire.Head) -> str:
        if head.e is not UNSET:
            kind = head.e
            if kind not in _E_KINDS:
                raise PayloadRejected("unknown_message", f"event type e={_show(kind)}")
        elif head.lastUpdateId is not UNSET:
            kind = "depthSnapshot"
        elif head.u is not UNSET and head.s is not UNSET:
            kind = "bookTicker"
        elif head.result is not UNSET:
            kind = "subscription_ack"
        elif head.a is not UNSET:
            kind = "restAggTrade"  # a REST aggTrades item: back-filled; names no symbol
        elif head.error is not UNSET or head.code is not UNSET:
            kind = "error"
        else:
            raise PayloadRejected("unknown_message", "no event type `e` and no known shape")
        if kind not in self._kinds:
            raise PayloadRejected("unknown_message", f"{kind} is not a {self.venue} message")
        return kind
