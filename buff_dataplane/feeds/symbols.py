"""Venue symbol <-> canonical key, by table (pure).

Venues that spell an instrument as base and quote run together (``BTCUSDT``) are mapped
by :class:`SymbolTable`: an explicit override (venue symbol -> (base, quote)) if there is
one, else a split at the longest known quote asset the venue symbol ends with. No other
string tricks: a symbol that does not fit is refused, and a name the split gets wrong
(``ADAEUR`` would split as ``AD`` + ``AEUR`` once ``AEUR`` is a quote) goes in the overrides.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final, NoReturn

from buff_dataplane.core.errors import PayloadRejected, ValidationError
from buff_dataplane.core.ids import validate_symbol, validate_venue

_VENUE_SYMBOL_RE: Final = re.compile(r"[A-Z0-9]{2,40}")
_CACHE_MAX: Final = 8192


def _show(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class SymbolTable:
    """The instrument mapping of one venue.

    ``to_canonical`` maps a venue symbol to ``BASE-QUOTE`` (``BASE-QUOTE-PERP`` when
    ``perpetual``). A symbol with ``_`` (Binance delivery ``BTCUSDT_240927``, coin-margined
    ``BTCUSD_PERP``), outside ``[A-Z0-9]{2,40}``, ending in no known quote, or whose key would
    not pass :func:`validate_symbol` raises PayloadRejected ``unsupported_instrument``.

    ``to_venue`` is the inverse. It refuses (ValidationError) a key whose venue symbol would
    not read back as the same key, e.g. ``XA-EUR`` when ``AEUR`` is also a quote.
    """

    __slots__ = ("_cache", "_inverse", "_overrides", "_perpetual", "_quote_set", "_quotes", "venue")

    def __init__(
        self,
        *,
        venue: str,
        quotes: Iterable[str],
        overrides: Mapping[str, tuple[str, str]],
        perpetual: bool,
    ) -> None:
        self.venue = validate_venue(venue)
        # Longest first: a quote that ends another one ("EUR" in "AEUR") must lose to it.
        self._quotes = tuple(sorted(quotes, key=len, reverse=True))
        self._quote_set = frozenset(self._quotes)
        self._perpetual = perpetual
        self._overrides = dict(overrides)
        self._inverse = {self._key(b, q): v for v, (b, q) in self._overrides.items()}
        for key in self._inverse:
            validate_symbol(key)
        if len(self._inverse) != len(self._overrides):
            raise ValidationError(f"{venue}: two symbol overrides map to the same key")
        self._cache: dict[str, str] = {}

    @property
    def quotes(self) -> tuple[str, ...]:
        """Known quote assets, longest first."""
        return self._quotes

    @property
    def overrides(self) -> Mapping[str, tuple[str, str]]:
        return dict(self._overrides)

    def _key(self, base: str, quote: str) -> str:
        return f"{base}-{quote}-PERP" if self._perpetual else f"{base}-{quote}"

    def to_canonical(self, venue_symbol: str) -> str:
        if not isinstance(venue_symbol, str):
            self._refuse(venue_symbol, "expected a symbol string")
        key = self._cache.get(venue_symbol)
        if key is None:
            key = self._map(venue_symbol)
            if len(self._cache) >= _CACHE_MAX:  # bounded: payloads can name any symbol
                self._cache.clear()
            self._cache[venue_symbol] = key
        return key

    def _map(self, venue_symbol: str) -> str:
        override = self._overrides.get(venue_symbol)
        if override is not None:
            return self._key(*override)
        if "_" in venue_symbol:
            self._refuse(venue_symbol, "a dated or coin-margined contract; only perpetuals map")
        if not _VENUE_SYMBOL_RE.fullmatch(venue_symbol):
            self._refuse(venue_symbol, "expected 2-40 characters A-Z0-9")
        for quote in self._quotes:
            if venue_symbol.endswith(quote) and len(venue_symbol) > len(quote):
                key = self._key(venue_symbol[: -len(quote)], quote)
                try:
                    return validate_symbol(key)
                except ValidationError as exc:
                    raise PayloadRejected(
                        "unsupported_instrument", f"{venue_symbol} on {self.venue}: {exc}"
                    ) from exc
        self._refuse(venue_symbol, f"ends in no known quote ({', '.join(self._quotes)})")

    def _refuse(self, venue_symbol: object, why: str) -> NoReturn:
        raise PayloadRejected(
            "unsupported_instrument", f"{_show(venue_symbol)} on {self.venue}: {why}"
        )

    def to_venue(self, symbol: str) -> str:
        validate_symbol(symbol)
        venue_symbol = self._inverse.get(symbol)
        if venue_symbol is not None:
            return venue_symbol
        parts = symbol.split("-")
        want = 3 if self._perpetual else 2
        if len(parts) != want:
            form = "BASE-QUOTE-PERP" if self._perpetual else "BASE-QUOTE"
            raise ValidationError(f"symbol {symbol!r} is not on {self.venue}: expected {form}")
        base, quote = parts[0], parts[1]
        if quote not in self._quote_set:
            raise ValidationError(
                f"symbol {symbol!r}: {quote} is not a {self.venue} quote asset "
                f"({', '.join(self._quotes)}) and the symbol has no override"
            )
        venue_symbol = base + quote
        try:
            back = self.to_canonical(venue_symbol)
        except PayloadRejected as exc:
            raise ValidationError(f"symbol {symbol!r} is not on {self.venue}: {exc}") from exc
        if back != symbol:
            raise ValidationError(
                f"symbol {symbol!r}: {venue_symbol} reads back as {back} on {self.venue}; "
                "it needs an override"
            )
        return venue_symbol
