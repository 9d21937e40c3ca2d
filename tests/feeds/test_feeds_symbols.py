"""Venue symbol <-> canonical key for the Binance venues: examples and round-trip properties."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from buff_dataplane.core.errors import PayloadRejected, ValidationError
from buff_dataplane.core.ids import validate_symbol
from buff_dataplane.feeds.binance_spot import parse as spot
from buff_dataplane.feeds.binance_usdm import parse as usdm
from buff_dataplane.feeds.symbols import SymbolTable

BASES = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=16)


@pytest.mark.parametrize(
    ("venue_symbol", "symbol"),
    [
        ("BTCUSDT", "BTC-USDT-PERP"),
        ("BTCUSDC", "BTC-USDC-PERP"),
        ("ETHBUSD", "ETH-BUSD-PERP"),
        ("1000SHIBUSDT", "1000SHIB-USDT-PERP"),
        ("BTCDOMUSDT", "BTCDOM-USDT-PERP"),
        ("USDCUSDT", "USDC-USDT-PERP"),
        ("ETHBTC", "ETH-BTC-PERP"),  # override: quoted in BTC
    ],
)
def test_usdm_examples(venue_symbol, symbol):
    assert usdm.to_canonical(venue_symbol) == symbol
    assert usdm.to_venue(symbol) == venue_symbol


@pytest.mark.parametrize(
    ("venue_symbol", "symbol"),
    [
        ("BTCUSDT", "BTC-USDT"),
        ("BTCFDUSD", "BTC-FDUSD"),
        ("BTCTUSD", "BTC-TUSD"),
        ("LRCBTC", "LRC-BTC"),
        ("BLZETH", "BLZ-ETH"),
        ("RUNEEUR", "RUNE-EUR"),
        ("EURUSDT", "EUR-USDT"),
        ("EURIUSDT", "EURI-USDT"),
        ("USDTTRY", "USDT-TRY"),
        ("BTCAEUR", "BTC-AEUR"),
        ("ADAEUR", "ADA-EUR"),  # override: the split would give AD-AEUR
    ],
)
def test_spot_examples(venue_symbol, symbol):
    assert spot.to_canonical(venue_symbol) == symbol
    assert spot.to_venue(symbol) == venue_symbol


@pytest.mark.parametrize(
    "venue_symbol",
    [
        "BTCUSDT_240927",  # delivery contract
        "BTCUSD_PERP",  # coin-margined
        "USDT",  # no base
        "BTCEUR",  # EUR is not a USD-M quote
        "btcusdt",
        "BTC-USDT",
        "",
        "ABCDEFGHIJKLMNOPQUSDT",  # 17-character base
        "币安人生USDT",
        None,
        ["BTCUSDT"],
    ],
)
def test_usdm_unmapped_symbols_are_unsupported_instruments(venue_symbol):
    with pytest.raises(PayloadRejected) as info:
        usdm.to_canonical(venue_symbol)
    assert info.value.reason == "unsupported_instrument"


@pytest.mark.parametrize(
    ("table", "symbol", "message"),
    [
        (usdm, "BTC-USDT", "expected BASE-QUOTE-PERP"),
        (spot, "BTC-USDT-PERP", "expected BASE-QUOTE"),
        (usdm, "BTC-EUR-PERP", "not a binance-usdm quote asset"),
        (spot, "ZA-EUR", "needs an override"),  # ZAEUR reads back as Z-AEUR
        (spot, "btc-usdt", "invalid symbol"),
        (spot, "BTC-USDT/../x", "invalid symbol"),
    ],
)
def test_to_venue_refuses_what_does_not_map_back(table, symbol, message):
    with pytest.raises(ValidationError, match=message) as info:
        table.to_venue(symbol)
    assert not isinstance(info.value, PayloadRejected)


@pytest.mark.parametrize("module", [usdm, spot])
def test_the_only_quote_that_ends_another_is_covered_by_overrides(module):
    quotes = module.QUOTES
    collisions = {(a, b) for a in quotes for b in quotes if a != b and a.endswith(b)}
    assert collisions == ({("AEUR", "EUR")} if module is spot else set())
    for venue_symbol, (base, quote) in module.OVERRIDES.items():
        assert base + quote == venue_symbol


@pytest.mark.parametrize("module", [usdm, spot])
@given(data=st.data())
def test_venue_symbol_round_trips(module, data):
    quote = data.draw(st.sampled_from(module.QUOTES))
    venue_symbol = data.draw(
        BASES.map(lambda base: base + quote) | st.sampled_from(sorted(module.OVERRIDES))
    )
    symbol = module.to_canonical(venue_symbol)
    assert validate_symbol(symbol) == symbol
    assert module.to_venue(symbol) == venue_symbol


@given(base=BASES, quote=st.sampled_from(usdm.QUOTES))
def test_usdm_canonical_round_trips(base, quote):
    symbol = f"{base}-{quote}-PERP"
    assert usdm.to_canonical(usdm.to_venue(symbol)) == symbol


@given(base=BASES, quote=st.sampled_from(spot.QUOTES))
@example(base="A", quote="EUR")  # found by hypothesis: the one-letter base is unambiguous
def test_spot_canonical_round_trips_unless_it_needs_an_override(base, quote):
    symbol = f"{base}-{quote}"
    # BASE ending in A + EUR reads back as BASE[:-1] + AEUR (the longer quote wins), unless
    # nothing is left of the base: "AEUR" can only be A-EUR.
    ambiguous = (
        quote == "EUR"
        and len(base) > 1
        and base.endswith("A")
        and base + quote not in spot.OVERRIDES
    )
    if ambiguous:
        with pytest.raises(ValidationError, match="needs an override"):
            spot.to_venue(symbol)
    else:
        assert spot.to_canonical(spot.to_venue(symbol)) == symbol


def test_cache_is_bounded_and_transparent():
    table = SymbolTable(venue="binance-spot", quotes=("USDT",), overrides={}, perpetual=False)
    for i in range(10_000):
        assert table.to_canonical(f"X{i}USDT") == f"X{i}-USDT"
    assert table.to_canonical("BTCUSDT") == "BTC-USDT"


def test_overrides_mapping_to_one_key_are_refused():
    with pytest.raises(ValidationError, match="same key"):
        SymbolTable(
            venue="binance-spot",
            quotes=("EUR",),
            overrides={"ADAEUR": ("ADA", "EUR"), "ADAXEUR": ("ADA", "EUR")},
            perpetual=False,
        )
