"""DelimitedSymbolTable (Coinbase, Kraken, OKX): round trips, aliases, other products."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from buff_dataplane.core.errors import PayloadRejected, ValidationError
from buff_dataplane.core.ids import validate_symbol
from buff_dataplane.feeds.coinbase import parse as coinbase
from buff_dataplane.feeds.kraken import parse as kraken
from buff_dataplane.feeds.okx_swap import parse as okx
from buff_dataplane.feeds.symbols import DelimitedSymbolTable

ASSETS = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=16)


@given(base=ASSETS, quote=st.sampled_from(coinbase.QUOTES))
def test_coinbase_round_trips(base, quote):
    product = f"{base}-{quote}"
    assert coinbase.to_venue(coinbase.to_canonical(product)) == product


@given(base=ASSETS, quote=st.sampled_from(okx.QUOTES))
def test_okx_round_trips(base, quote):
    inst = f"{base}-{quote}-SWAP"
    symbol = okx.to_canonical(inst)
    assert validate_symbol(symbol) == f"{base}-{quote}-PERP"
    assert okx.to_venue(symbol) == inst


@given(base=ASSETS.filter(lambda a: a not in kraken.ALIASES), quote=st.sampled_from(kraken.QUOTES))
def test_kraken_keys_round_trip_through_the_v2_name(base, quote):
    symbol = kraken.to_canonical(f"{base}/{quote}")
    assert kraken.to_canonical(kraken.to_venue(symbol)) == symbol
    assert "XBT" not in kraken.to_venue(symbol).split("/")


def test_a_legacy_alias_is_read_but_never_written():
    with pytest.raises(ValidationError, match="reads back as BTC-USD"):
        kraken.to_venue("XBT-USD")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"separator": "A"}, "separator"),
        ({"separator": "--"}, "separator"),
        ({"quotes": ("usd",)}, "not \\[A-Z0-9\\]"),
        ({"aliases": {"XBT": "BTC", "BTC": "XBT"}}, "alias"),
    ],
)
def test_bad_tables_are_refused(kwargs, message):
    args = {"venue": "coinbase", "separator": "-", "quotes": ("USD",), **kwargs}
    with pytest.raises(ValidationError, match=message):
        DelimitedSymbolTable(**args)


def test_other_products_get_their_own_reason_and_name():
    with pytest.raises(PayloadRejected) as info:
        okx.to_canonical("ETH-USDT")
    assert info.value.reason == "other_product"
    assert "an OKX spot pair" in info.value.detail


def test_cache_is_bounded_and_transparent():
    table = DelimitedSymbolTable(venue="coinbase", separator="-", quotes=("USD",))
    for i in range(10_000):
        assert table.to_canonical(f"X{i}-USD") == f"X{i}-USD"
    assert table.to_canonical("BTC-USD") == "BTC-USD"


@pytest.mark.parametrize("value", [None, 7, ["BTC-USD"], "BTC-USD-", "-USD", "B C-USD"])
def test_non_symbols_are_unsupported(value):
    with pytest.raises(PayloadRejected) as info:
        coinbase.to_canonical(value)
    assert info.value.reason == "unsupported_instrument"
