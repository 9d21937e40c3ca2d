import pytest

from buff_dataplane.core.errors import ValidationError
from buff_dataplane.core.ids import StreamId, validate_channel, validate_symbol, validate_venue


@pytest.mark.parametrize("good", ["BTC-USDT-PERP", "BTC-USDT", "1000PEPE-USDT-PERP", "A-B"])
def test_valid_symbols_pass(good):
    assert validate_symbol(good) == good


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "btc-usdt",
        "BTCUSDT",
        "BTC USDT",
        "../x",
        "BTC/USDT",
        "BTC-USDT-SWAP",
        "BTC-USDT-",
        "A" * 17 + "-USDT",
        "BTC-USDT\n",
        None,
        5,
    ],
)
def test_invalid_symbols_are_refused_with_the_expected_form(bad):
    with pytest.raises(ValidationError, match="expected BASE-QUOTE"):
        validate_symbol(bad)


@pytest.mark.parametrize("bad", ["", "../x", "Binance", "binance usdm", "x/y", "-a", "a--b", "a-"])
def test_invalid_venue_ids_are_refused(bad):
    with pytest.raises(ValidationError, match="venue"):
        validate_venue(bad)


def test_unknown_but_well_formed_venue_is_refused_unless_asked():
    with pytest.raises(ValidationError, match="unknown venue 'bitmex'"):
        validate_venue("bitmex")
    assert validate_venue("bitmex", known_only=False) == "bitmex"


def test_channels_are_a_closed_set():
    assert validate_channel("trade") == "trade"
    with pytest.raises(ValidationError, match="invalid channel"):
        validate_channel("trades")


def test_stream_id_round_trips_and_refuses_path_tricks():
    sid = StreamId.parse("binance-usdm/trade/BTC-USDT-PERP")
    assert (sid.venue, sid.channel, sid.symbol) == ("binance-usdm", "trade", "BTC-USDT-PERP")
    assert str(sid) == "binance-usdm/trade/BTC-USDT-PERP"
    for bad in ["binance-usdm/trade/../x", "binance-usdm/trade", "a/b/c/d", "/trade/BTC-USDT", ""]:
        with pytest.raises(ValidationError):
            StreamId.parse(bad)


def test_error_messages_are_one_line():
    with pytest.raises(ValidationError) as info:
        validate_symbol("bad\nsymbol")
    assert "\n" not in str(info.value)
