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


def check_concatenated(venue: str, value: object) -> str:
    """A concatenated venue symbol (``BTCUSDT``: A-Z, 0-9) as a REST request may name it;
    ValidationError otherwise, before any request is sent."""
    if not isinstance(value, str) or not _VENUE_SYMBOL_RE.fullmatch(value):
        raise ValidationError(
            f"{venue} symbol {value!r} is not a venue symbol like 'BTCUSDT' (A-Z, 0-9)"
        )
    return value


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


_ASSET_RE: Final = re.compile(r"[A-Z0-9]{1,16}")


class DelimitedSymbolTable:
    """The instrument mapping of a venue that spells base and quote apart.

    ``BTC-USD`` (Coinbase), ``XBT/USD`` and ``BTC/USD`` (Kraken), ``BTC-USDT-SWAP`` (OKX):
    the venue symbol is ``BASE<sep>QUOTE``, followed by ``<sep><suffix>`` when ``suffix`` is
    set (an OKX perpetual swap). ``aliases`` are legacy asset names read but never written
    (Kraken v1's ``XBT`` -> ``BTC``): ``to_venue`` spells every asset canonically
    (``BTC-USD`` -> ``BTC/USD``, the Kraken v2 name), so ``to_venue`` then ``to_canonical``
    is the identity on keys, while ``XBT/USD`` and ``BTC/USD`` both read as ``BTC-USD``. The
    quote must be one of ``quotes`` (either spelling). With a suffix the key is
    ``BASE-QUOTE-PERP``; without, ``BASE-QUOTE``.

    ``other_products`` names well-formed symbols of the venue's other products (OKX spot
    pairs and dated futures on ``okx-swap``): they raise PayloadRejected ``other_product``,
    a valid message this venue id does not cover. Anything else (another form, an unknown
    quote, a key that would not pass :func:`validate_symbol`) raises PayloadRejected
    ``unsupported_instrument``, with ``refusal`` saying which instruments the venue id covers.
    """

    __slots__ = (
        "_aliases",
        "_cache",
        "_other_products",
        "_quote_set",
        "_quotes",
        "_refusal",
        "_separator",
        "_suffix",
        "venue",
    )

    def __init__(
        self,
        *,
        venue: str,
        separator: str,
        quotes: Iterable[str],
        aliases: Mapping[str, str] | None = None,
        suffix: str | None = None,
        refusal: str = "",
        other_products: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.venue = validate_venue(venue)
        if len(separator) != 1 or _ASSET_RE.fullmatch(separator):
            raise ValidationError(f"{venue}: a separator is one character outside A-Z0-9")
        self._separator = separator
        self._suffix = suffix
        self._quotes = tuple(quotes)
        self._quote_set = frozenset(self._quotes)
        self._aliases = dict(aliases or {})
        if set(self._aliases) & set(self._aliases.values()):
            raise ValidationError(f"{venue}: an asset alias names another alias")
        for name in (*self._quotes, *self._aliases, *self._aliases.values()):
            if not _ASSET_RE.fullmatch(name):
                raise ValidationError(f"{venue}: asset {name!r} is not [A-Z0-9]{{1,16}}")
        self._refusal = refusal
        self._other_products = tuple((re.compile(rx), name) for rx, name in other_products)
        self._cache: dict[str, str] = {}

    @property
    def quotes(self) -> tuple[str, ...]:
        return self._quotes

    @property
    def aliases(self) -> Mapping[str, str]:
        return dict(self._aliases)

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

    def _form(self) -> str:
        s = self._separator
        return f"BASE{s}QUOTE{s}{self._suffix}" if self._suffix else f"BASE{s}QUOTE"

    def _map(self, venue_symbol: str) -> str:
        for pattern, product in self._other_products:
            if pattern.fullmatch(venue_symbol):
                tail = f"; {self._refusal}" if self._refusal else ""
                raise PayloadRejected(
                    "other_product", f"{_show(venue_symbol)} is {product}, not {self.venue}{tail}"
                )
        parts = venue_symbol.split(self._separator)
        if self._suffix is not None:
            if len(parts) != 3 or parts[2] != self._suffix:
                self._refuse(venue_symbol, f"expected {self._form()}")
            parts = parts[:2]
        if len(parts) != 2 or not all(_ASSET_RE.fullmatch(p) for p in parts):
            self._refuse(venue_symbol, f"expected {self._form()} with assets A-Z0-9")
        base, quote = parts
        if quote not in self._quote_set:
            self._refuse(venue_symbol, f"{quote} is not a known quote ({', '.join(self._quotes)})")
        base, quote = self._aliases.get(base, base), self._aliases.get(quote, quote)
        key = f"{base}-{quote}-PERP" if self._suffix is not None else f"{base}-{quote}"
        try:
            return validate_symbol(key)
        except ValidationError as exc:  # pragma: no cover - the asset regex admits only keys
            raise PayloadRejected(
                "unsupported_instrument", f"{venue_symbol} on {self.venue}: {exc}"
            ) from exc

    def _refuse(self, venue_symbol: object, why: str) -> NoReturn:
        tail = f"; {self._refusal}" if self._refusal else ""
        raise PayloadRejected(
            "unsupported_instrument", f"{_show(venue_symbol)} on {self.venue}: {why}{tail}"
        )

    def to_venue(self, symbol: str) -> str:
        validate_symbol(symbol)
        parts = symbol.split("-")
        want = 3 if self._suffix is not None else 2
        if len(parts) != want:
            form = "BASE-QUOTE-PERP" if self._suffix is not None else "BASE-QUOTE"
            raise ValidationError(f"symbol {symbol!r} is not on {self.venue}: expected {form}")
        names = parts[:2] if self._suffix is None else [*parts[:2], self._suffix]
        venue_symbol = self._separator.join(names)
        try:
            back = self.to_canonical(venue_symbol)
        except PayloadRejected as exc:
            raise ValidationError(f"symbol {symbol!r} is not on {self.venue}: {exc}") from exc
        if back != symbol:
            raise ValidationError(
                f"symbol {symbol!r}: {venue_symbol} reads back as {back} on {self.venue}"
            )
        return venue_symbol
