"""Venue-neutral pieces of the pure parsers (no I/O, no clock, no float).

- :func:`decode`: a pre-built msgspec decoder whose failures become PayloadRejected
  (``bad_field`` for a wrong type or value, ``not_json`` for bytes that are not JSON);
- money: :func:`plain_money` for decimal text (``"61800.30"``), :func:`number_money` for a
  JSON number kept as its exact text (:class:`msgspec.Raw`, Kraken v2);
- time: :func:`iso_ms` (RFC 3339 / ISO 8601 UTC, any fraction) and :func:`seconds_ms`
  (``"1618678133.365913"``), both exact integer arithmetic, floored to the millisecond;
- :func:`trade_message`: the Parsed of a message carrying one or more trades;
- :class:`TableParser`: venue id and symbol table of a parser.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Annotated, Final, Protocol, TypeVar

import msgspec
from msgspec import Meta, Raw

from buff_dataplane.core.errors import PayloadRejected
from buff_dataplane.core.events import MAX_TS_MS, MIN_TS_MS
from buff_dataplane.feeds.base import Parsed, Trade

_T = TypeVar("_T")

# --- field types, checked by msgspec while decoding ---------------------------------------

MAX_INT64: Final = 2**63 - 1
TsMs = Annotated[int, Meta(ge=MIN_TS_MS, le=MAX_TS_MS)]
Id = Annotated[int, Meta(ge=0, le=MAX_INT64)]
# An integer sent as decimal text (OKX ``"1630048897897"``, Coinbase AT ``"1068572091"``).
IntText = Annotated[str, Meta(pattern=r"^[0-9]{1,19}\Z")]

# Plain decimal text, as every venue but Kraken v2 sends money: no sign, exponent or NaN.
PLAIN_DECIMAL: Final = r"[0-9]{1,32}(?:\.[0-9]{1,31})?"
_PLAIN_RE: Final = re.compile(PLAIN_DECIMAL)
# A JSON number as it stands in the message (RFC 8259 grammar), at most 64 characters.
_NUMBER_RE: Final = re.compile(rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_MAX_NUMBER_TEXT: Final = 64
_ISO_RE: Final = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[T ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,9}))?(Z|[+-][0-9]{2}:[0-9]{2})"
)
_SECONDS_RE: Final = re.compile(r"([0-9]{9,11})(?:\.([0-9]{1,9}))?")
_EPOCH_ORDINAL: Final = dt.date(1970, 1, 1).toordinal()
_DAY_MS: Final = 86_400_000


def show(value: object, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters for a one-line reason."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def decode(decoder: msgspec.json.Decoder[_T], body: bytes | Raw, where: str = "") -> _T:
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


def bad(where: str, what: str) -> PayloadRejected:
    """A ``bad_field`` rejection naming the JSON path ``where``."""
    return PayloadRejected("bad_field", f"`${where}`: {what}")


def int_text(text: str, where: str) -> int:
    """The int64 of decimal digits already checked by :data:`IntText`."""
    value = int(text)
    if value > MAX_INT64:
        raise bad(where, f"{text} does not fit in 64 bits")
    return value


def ts_text(text: str, where: str) -> int:
    """Epoch ms sent as decimal text (OKX ``ts``), range-checked."""
    return check_ts(int(text), where)


def check_ts(ms: int, where: str) -> int:
    if not MIN_TS_MS <= ms <= MAX_TS_MS:
        raise bad(where, f"time {ms} ms is outside {MIN_TS_MS}..{MAX_TS_MS}")
    return ms


def check_plain(text: str, where: str) -> str:
    """``text`` is plain decimal text like ``"61800.30"`` (book levels may be zero)."""
    if _PLAIN_RE.fullmatch(text) is None:
        raise bad(where, f"expected plain decimal text, got {show(text)}")
    return text


def plain_money(text: str, where: str) -> Decimal:
    """A positive price or size from plain decimal text, exact."""
    value = Decimal(check_plain(text, where))
    if value <= 0:
        raise bad(where, f"expected a positive decimal, got {text!r}")
    return value


def number_money(raw: Raw, where: str) -> Decimal:
    """A positive price or size sent as a JSON number, from the number's exact text.

    ``raw`` is the number's bytes as they stand in the message (msgspec.Raw), so no float
    is ever made: ``0.5147`` is ``Decimal("0.5147")``, digit for digit.
    """
    text = bytes(raw)
    if len(text) > _MAX_NUMBER_TEXT or _NUMBER_RE.fullmatch(text) is None:
        raise bad(where, f"expected a JSON number, got {show(text)}")
    value = Decimal(text.decode("ascii"))
    if value <= 0:
        raise bad(where, f"expected a positive number, got {text.decode('ascii')}")
    exponent = value.as_tuple().exponent
    if value.adjusted() > 31 or not isinstance(exponent, int) or exponent < -31:
        # the range of plain decimal text: 32 integer and 31 fraction digits
        raise bad(where, f"{text.decode('ascii')} is out of range for a price or size")
    return value


def _fraction_ms(fraction: str | None) -> int:
    return 0 if not fraction else int((fraction + "00")[:3])


def iso_ms(text: str, where: str) -> int:
    """Epoch ms of an ISO 8601 / RFC 3339 time with an offset, floored; no float.

    ``2021-04-17T16:43:30.244075Z`` -> 1618677810244. Up to nine fraction digits
    (Coinbase Advanced Trade sends nanoseconds); ``Z`` or ``+HH:MM``; a space may stand
    for ``T``. An impossible date (``02-30``) is refused.
    """
    match = _ISO_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise bad(where, f"expected an RFC 3339 UTC time, got {show(text)}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        days = dt.date(int(year), int(month), int(day)).toordinal() - _EPOCH_ORDINAL
    except ValueError as exc:
        raise bad(where, f"not a date: {show(text)}") from exc
    if int(hour) > 23 or int(minute) > 59 or int(second) > 59:
        raise bad(where, f"not a time of day: {show(text)}")
    offset_min = 0
    if zone != "Z":
        offset_min = int(zone[1:3]) * 60 + int(zone[4:6])
        if zone[0] == "-":
            offset_min = -offset_min
    ms = (
        days * _DAY_MS
        + ((int(hour) * 60 + int(minute) - offset_min) * 60 + int(second)) * 1000
        + _fraction_ms(fraction)
    )
    return check_ts(ms, where)


def seconds_ms(text: str, where: str) -> int:
    """Epoch ms of decimal seconds text (``"1618678133.365913"``), floored; no float."""
    match = _SECONDS_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise bad(where, f"expected epoch seconds as decimal text, got {show(text)}")
    return check_ts(int(match.group(1)) * 1000 + _fraction_ms(match.group(2)), where)


def trade_message(
    kind: str, venue_symbol: str, symbol: str, trades: Sequence[Trade], where: str
) -> Parsed:
    """The Parsed of a trade message: every trade, the earliest trade time as event time."""
    if not trades:
        raise bad(where, "a trade message without trades")
    batch = tuple(trades)
    return Parsed(
        kind=kind,
        channel="trade",
        venue_symbol=venue_symbol,
        symbol=symbol,
        event_ts_exchange_ms=min(t.ts_ms for t in batch),
        trades=batch,
    )


def one_symbol(names: Sequence[str], where: str) -> str:
    """The one instrument a batch names; ``mixed_symbols`` if it names several."""
    first = names[0]
    for name in names:
        if name != first:
            raise PayloadRejected(
                "mixed_symbols", f"`${where}` names {show(first)} and {show(name)}"
            )
    return first


class SymbolMap(Protocol):
    """What a parser needs of a symbol table."""

    @property
    def venue(self) -> str: ...

    def to_canonical(self, venue_symbol: str) -> str: ...

    def to_venue(self, symbol: str) -> str: ...


class TableParser:
    """Venue id and instrument mapping of a parser; subclasses add ``parse``."""

    __slots__ = ("_symbols",)

    def __init__(self, symbols: SymbolMap) -> None:
        self._symbols = symbols

    @property
    def venue(self) -> str:
        return self._symbols.venue

    @property
    def symbols(self) -> SymbolMap:
        return self._symbols

    def __repr__(self) -> str:
        return f"{type(self).__name__}(venue={self.venue!r})"

    def to_canonical(self, venue_symbol: str) -> str:
        return self._symbols.to_canonical(venue_symbol)

    def to_venue(self, symbol: str) -> str:
        return self._symbols.to_venue(symbol)


_STR_ROWS: Final = msgspec.json.Decoder(list[list[str]])


def book_levels(raw: Raw, where: str, widths: tuple[int, ...] = (2,)) -> list[list[str]]:
    """Book levels ``[["price", "size", ...], ...]``: strings, price and size plain decimals.

    ``widths`` are the row lengths the venue sends (OKX adds two fields, Kraken v1 a time).
    A size of zero (a level removed) is fine here; money checks stop at the text form.
    """
    rows = decode(_STR_ROWS, raw, where)
    for i, row in enumerate(rows):
        if len(row) not in widths:
            raise bad(f"{where}[{i}]", f"expected {' or '.join(map(str, widths))} fields")
        check_plain(row[0], f"{where}[{i}][0]")
        check_plain(row[1], f"{where}[{i}][1]")
    return rows
