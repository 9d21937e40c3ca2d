"""Binance spot parser on recorded payloads, one file per message shape (payloads/README.md)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from buff_dataplane.core.errors import PayloadRejected, ValidationError
from buff_dataplane.feeds.base import Parsed, Trade
from buff_dataplane.feeds.binance_spot.parse import PARSER, VENUE, parse

PAYLOADS = Path(__file__).parent / "payloads"


def load(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def edit(name: str, old: str, new: str) -> bytes:
    data = load(name)
    assert data.count(old.encode()) == 1, (name, old)
    return data.replace(old.encode(), new.encode())


def reject(payload: bytes) -> PayloadRejected:
    with pytest.raises(PayloadRejected) as info:
        parse(payload)
    return info.value


def control(kind: str) -> Parsed:
    return Parsed(
        kind=kind, channel="control", venue_symbol=None, symbol=None, event_ts_exchange_ms=None
    )


def quote(kind: str, channel: str, venue_symbol: str, symbol: str, ts: int | None) -> Parsed:
    return Parsed(
        kind=kind,
        channel=channel,
        venue_symbol=venue_symbol,
        symbol=symbol,
        event_ts_exchange_ms=ts,
    )


ACCEPTED: dict[str, Parsed] = {
    "restAggTrade.json": Parsed(
        kind="restAggTrade",
        channel="trade",
        venue_symbol=None,
        symbol=None,
        event_ts_exchange_ms=1498793709153,
        trades=(
            Trade(
                trade_id=26129,
                price=Decimal("0.01633102"),
                size=Decimal("4.70443515"),
                taker_side="sell",
                ts_ms=1498793709153,
                first_trade_id=27781,
                last_trade_id=27781,
            ),
        ),
    ),
    "aggTrade.json": Parsed(
        kind="aggTrade",
        channel="trade",
        venue_symbol="NKNUSDT",
        symbol="NKN-USDT",
        event_ts_exchange_ms=1633998523963,
        trades=(
            Trade(
                trade_id=15683430,
                price=Decimal("0.35280000"),
                size=Decimal("58.00000000"),
                taker_side="buy",
                ts_ms=1633998523963,
                first_trade_id=19862790,
                last_trade_id=19862790,
            ),
        ),
    ),
    "aggTrade_btc_quote.json": Parsed(
        kind="aggTrade",
        channel="trade",
        venue_symbol="LRCBTC",
        symbol="LRC-BTC",
        event_ts_exchange_ms=1633998534486,
        trades=(
            Trade(
                trade_id=9213679,
                price=Decimal("0.00000638"),
                size=Decimal("177.00000000"),
                taker_side="buy",
                ts_ms=1633998534486,
                first_trade_id=12368013,
                last_trade_id=12368013,
            ),
        ),
    ),
    "aggTrade_data_first.json": Parsed(
        kind="aggTrade",
        channel="trade",
        venue_symbol="BTCUSDT",
        symbol="BTC-USDT",
        event_ts_exchange_ms=1657910133927,
        trades=(
            Trade(
                trade_id=1257346680,
                price=Decimal("20838.64000000"),
                size=Decimal("0.00200000"),
                taker_side="sell",
                ts_ms=1657910133927,
                first_trade_id=1471456796,
                last_trade_id=1471456796,
            ),
        ),
    ),
    "trade.json": Parsed(
        kind="trade",
        channel="trade",
        venue_symbol="BTCUSDT",
        symbol="BTC-USDT",
        event_ts_exchange_ms=1723161255342,  # T, not E=1723161255343
        trades=(
            Trade(
                trade_id=3735683259,
                price=Decimal("61837.63000000"),
                size=Decimal("0.02000000"),
                taker_side="sell",
                ts_ms=1723161255342,
                first_trade_id=None,
                last_trade_id=None,
            ),
        ),
    ),
    # Spot's bookTicker carries no time at all.
    "bookTicker.json": quote("bookTicker", "book_ticker", "BTCUSDT", "BTC-USDT", None),
    "bookTicker_eth_quote.json": quote("bookTicker", "book_ticker", "BLZETH", "BLZ-ETH", None),
    "depthUpdate.json": quote("depthUpdate", "depth", "NKNUSDT", "NKN-USDT", 1633998512068),
    "depthUpdate_eur_quote.json": quote(
        "depthUpdate", "depth", "RUNEEUR", "RUNE-EUR", 1633998522573
    ),
    "kline.json": quote("kline", "kline", "NKNUSDT", "NKN-USDT", 1633998523963),
    # REST /api/v3/depth has no time; a partial-depth stream names its symbol in the stream.
    "depthSnapshot.json": Parsed(
        kind="depthSnapshot",
        channel="depth",
        venue_symbol=None,
        symbol=None,
        event_ts_exchange_ms=None,
    ),
    "partial_depth.json": quote("depthSnapshot", "depth", "BTCUSDT", "BTC-USDT", None),
    "subscription_ack.json": control("subscription_ack"),
    "error.json": control("error"),
}

REJECTED: dict[str, str] = {
    "bad_price_float.json": "bad_field",
    "bookTicker_bad_size.json": "bad_field",
    "markPriceUpdate.json": "unknown_message",
    "server_shutdown.json": "unknown_message",
    "stream_symbol_mismatch.json": "stream_symbol_mismatch",
    "time_in_microseconds.json": "bad_field",
    "truncated.json": "not_json",
}


def test_every_payload_file_is_tested():
    files = {p.name for p in PAYLOADS.iterdir() if p.suffix == ".json"}
    assert files == set(ACCEPTED) | set(REJECTED)


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_payload_parses_to_exact_values(name):
    want = ACCEPTED[name]
    # A Binance message holds at most one trade; ``trades`` repeats it as a 1-tuple.
    assert parse(load(name)) == want


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_ugly_payload_is_rejected_with_its_reason(name):
    assert reject(load(name)).reason == REJECTED[name]


def test_trade_money_keeps_the_exact_text():
    trade = parse(load("trade.json")).trades[0]
    assert trade is not None
    assert (str(trade.price), str(trade.size)) == ("61837.63000000", "0.02000000")


def test_parser_identity():
    assert PARSER.venue == VENUE == "binance-spot"
    assert "markPriceUpdate" not in PARSER.kinds


def test_mark_price_is_named_as_not_a_spot_message():
    assert "not a binance-spot message" in reject(load("markPriceUpdate.json")).detail


def test_book_ticker_without_event_type_is_told_by_its_keys():
    bare = json.dumps(json.loads(load("bookTicker.json"))["data"]).encode()
    assert parse(bare) == ACCEPTED["bookTicker.json"]


def test_book_ticker_size_error_names_the_field():
    assert "$.data.B" in reject(load("bookTicker_bad_size.json")).detail


def test_partial_depth_symbol_comes_from_the_stream():
    other = edit("partial_depth.json", "btcusdt@depth5", "ethbtc@depth5")
    assert parse(other).symbol == "ETH-BTC"
    wrong = edit("partial_depth.json", "btcusdt@depth5", "btcusdt@trade")
    assert reject(wrong).reason == "stream_kind_mismatch"


def test_perpetual_symbol_is_not_a_spot_symbol():
    with pytest.raises(ValidationError, match=r"expected BASE-QUOTE$"):
        PARSER.to_venue("BTC-USDT-PERP")
