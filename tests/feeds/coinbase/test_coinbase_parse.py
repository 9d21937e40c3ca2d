"""Coinbase parser on recorded payloads, one file per message shape (payloads/README.md)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from buff_dataplane.core.errors import PayloadRejected
from buff_dataplane.feeds.base import Parsed, Trade
from buff_dataplane.feeds.coinbase.parse import PARSER, VENUE, parse, to_canonical, to_venue

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


def one_trade(
    kind: str, product: str, tid: int, price: str, size: str, taker: str, ts: int
) -> Parsed:
    t = Trade(
        trade_id=tid,
        price=Decimal(price),
        size=Decimal(size),
        taker_side=taker,
        ts_ms=ts,
        first_trade_id=None,
        last_trade_id=None,
    )
    return Parsed(
        kind=kind,
        channel="trade",
        venue_symbol=product,
        symbol=product,
        event_ts_exchange_ms=ts,
        trades=(t,),
    )


def other(kind: str, channel: str, ts: int | None, product: str | None = None) -> Parsed:
    return Parsed(
        kind=kind, channel=channel, venue_symbol=product, symbol=product, event_ts_exchange_ms=ts
    )


ACCEPTED: dict[str, Parsed] = {
    # side "sell" is the maker's: the taker bought
    "match.json": one_trade("match", "SKL-BTC", 280232, "0.00001305", "985", "buy", 1618677817089),
    "last_match.json": one_trade(
        "last_match", "BAND-GBP", 881613, "14.7775", "0.04", "buy", 1618677810244
    ),
    "match_doc.json": one_trade("match", "BTC-USD", 10, "400.23", "5.23512", "buy", 1415348367028),
    "last_match_2026.json": one_trade(
        "last_match", "BTC-USD", 1099995623, "84140.83", "0.00004104", "buy", 1790689558116
    ),
    # Advanced Trade: side "SELL" is the maker's too
    "at_market_trades.json": one_trade(
        "at_market_trades", "BTC-USD", 1068572091, "65083.67", "0.01034361", "buy", 1786309548167
    ),
    # a REST trades item names no product; its side is the maker's too
    "rest_trade.json": msgspec.structs.replace(
        one_trade("rest_trade", "-", 86327327, "6225.32", "0.06469797", "buy", 1584664619860),
        venue_symbol=None,
        symbol=None,
    ),
    "ticker.json": other("ticker", "book_ticker", 1618677810244, "BAND-GBP"),
    "snapshot.json": other("snapshot", "depth", None, "SKL-GBP"),
    "l2update.json": other("l2update", "depth", 1618677817075, "SKL-BTC"),
    "heartbeat.json": msgspec.structs.replace(
        other("heartbeat", "control", 1415348368464, "BTC-USD"), stated_last_trade_id=20
    ),
    "subscriptions.json": other("subscription_ack", "control", None),
    "subscriptions_doc.json": other("subscription_ack", "control", None),
    "error.json": other("error", "control", None),
    "at_ticker.json": other("at_ticker", "book_ticker", 1786309548298, "ETH-USD"),
    "at_l2_data.json": other("at_l2_data", "depth", 1786309562822, "ETH-USD"),
    "at_candles.json": other("at_candles", "kline", 1786309551491, "ETH-USD"),
    "at_heartbeats.json": other("at_heartbeats", "control", 1786309548856),
    "at_subscriptions.json": other("subscription_ack", "control", 1786309548228),
}
REJECTED: dict[str, str] = {
    "at_mixed_products.json": "mixed_symbols",
    "match_price_number.json": "bad_field",
    "match_time_no_zone.json": "bad_field",
    "match_unknown_quote.json": "unsupported_instrument",
    "received.json": "unknown_message",
    "rest_trade_side_upper.json": "bad_field",
    "rest_trade_price_number.json": "bad_field",
    "truncated.json": "not_json",
}
MULTI = {"at_market_trades_snapshot.json"}


def test_every_payload_file_is_tested():
    files = {p.name for p in PAYLOADS.iterdir() if p.suffix == ".json"}
    assert files == set(ACCEPTED) | set(REJECTED) | MULTI


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_payload_parses_to_exact_values(name):
    assert parse(load(name)) == ACCEPTED[name]


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_ugly_payload_is_rejected_with_its_reason(name):
    exc = reject(load(name))
    assert exc.reason == REJECTED[name]
    assert "\n" not in str(exc)


def test_advanced_trade_snapshot_keeps_100_trades_newest_first():
    parsed = parse(load("at_market_trades_snapshot.json"))
    assert (parsed.kind, parsed.symbol) == ("at_market_trades", "ETH-USD")
    assert len(parsed.trades) == 100
    first, last = parsed.trades[0], parsed.trades[-1]
    assert (first.trade_id, first.price, first.size, first.taker_side) == (
        833140778, Decimal("1919.41"), Decimal("0.00639701"), "sell",  # maker BUY
    )  # fmt: skip
    assert (last.trade_id, last.ts_ms) == (833140679, 1786309486652)
    assert parsed.event_ts_exchange_ms == 1786309486652  # the earliest trade, the last listed


@pytest.mark.parametrize(("maker", "taker"), [('"side":"sell"', "buy"), ('"side":"buy"', "sell")])
def test_taker_side_is_the_opposite_of_the_makers(maker, taker):
    assert parse(edit("match.json", '"side":"sell"', maker)).trades[0].taker_side == taker


@pytest.mark.parametrize(
    ("old", "new", "ms"),
    [
        ("16:43:37.089723Z", "16:43:37Z", 1618677817000),
        ("16:43:37.089723Z", "16:43:37.9Z", 1618677817900),
        ("16:43:37.089723Z", "16:43:37.089999999Z", 1618677817089),  # floored, nanoseconds
        ("16:43:37.089723Z", "18:43:37.089723+02:00", 1618677817089),
        ("2021-04-17T16:43:37.089723Z", "2021-04-17 16:43:37.089723Z", 1618677817089),
    ],
)
def test_iso_times_are_exact_and_floored(old, new, ms):
    assert parse(edit("match.json", old, new)).event_ts_exchange_ms == ms


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("2021-04-17T16:43:37.089723Z", "2021-02-30T16:43:37.089723Z"),
        ("16:43:37.089723Z", "24:43:37.089723Z"),
        ("16:43:37.089723Z", "16:43:37.0897231234Z"),
        ("2021-04-17T16:43:37.089723Z", "1618677817089"),
        ('"size":"985"', '"size":"0"'),
        ('"price":"0.00001305"', '"price":"1.305e-5"'),
        ('"trade_id":280232', '"trade_id":"280232"'),
        ('"side":"sell"', '"side":"SELL"'),
    ],
)
def test_out_of_contract_match_field_is_bad_field(old, new):
    assert reject(edit("match.json", old, new)).reason == "bad_field"


def test_advanced_trade_ids_are_decimal_text():
    payload = edit("at_market_trades.json", '"trade_id":"1068572091"', '"trade_id":1068572091')
    assert reject(payload).reason == "bad_field"


@pytest.mark.parametrize("payload", [b"[]", b"{}", b'{"channel":"status","timestamp":"x"}'])
def test_unknown_envelopes_are_refused(payload):
    assert reject(payload).reason == "unknown_message"


@pytest.mark.parametrize("product", ["BTC-USD", "ETH-EUR", "SKL-BTC", "USDT-USDC", "00-USD"])
def test_products_map_by_table_both_ways(product):
    assert to_canonical(product) == product
    assert to_venue(product) == product


@pytest.mark.parametrize("product", ["BTC-USD-PERP", "BTCUSD", "BTC/USD", "btc-usd", "BTC-XYZ"])
def test_other_products_are_unsupported(product):
    with pytest.raises(PayloadRejected) as info:
        to_canonical(product)
    assert info.value.reason == "unsupported_instrument"


def test_parser_identity():
    assert PARSER.venue == VENUE == "coinbase"
    assert {"match", "last_match", "at_market_trades"} <= PARSER.kinds


def test_a_rest_item_is_the_same_trade_as_its_match():
    """A back-filled item and the live match of the same trade id dedupe as one trade."""
    match = parse(load("match_doc.json")).trades[0]
    item = b'{"time":"2014-11-07T08:19:27.028459Z","trade_id":10,"price":"400.23",'
    item += b'"size":"5.23512","side":"sell"}'
    parsed = parse(item)
    assert (parsed.kind, parsed.channel, parsed.symbol) == ("rest_trade", "trade", None)
    assert parsed.trades == (match,)


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ('"trade_id":86327327', '"trade_id":"86327327"', "bad_field"),
        ('"trade_id":86327327', '"trade_id":-1', "bad_field"),
        ('"size":"0.06469797"', '"size":"0"', "bad_field"),
        ('"time":"2020-03-20T00:36:59.860Z"', '"time":"2020-03-20T00:36:59"', "bad_field"),
        ('"trade_id":86327327,', "", "unknown_message"),  # no type, channel or trade_id
    ],
)
def test_out_of_contract_rest_items_are_refused(old, new, reason):
    assert reject(edit("rest_trade.json", old, new)).reason == reason
