"""Kraken v2 and v1 parser on recorded payloads, one file per shape (payloads/README.md)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from buff_dataplane.core.errors import PayloadRejected
from buff_dataplane.core.trades import content_key
from buff_dataplane.feeds.base import Parsed, Trade, single_trade
from buff_dataplane.feeds.kraken.parse import PARSER, VENUE, parse, to_canonical, to_venue

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


def trade(tid: int, price: str, qty: str, side: str, ts: int) -> Trade:
    return Trade(
        trade_id=tid,
        price=Decimal(price),
        size=Decimal(qty),
        taker_side=side,
        ts_ms=ts,
        first_trade_id=None,
        last_trade_id=None,
    )


def trades(pair: str, *batch: Trade) -> Parsed:
    return Parsed(
        kind="trade",
        channel="trade",
        venue_symbol=pair,
        symbol=to_canonical(pair),
        event_ts_exchange_ms=min(t.ts_ms for t in batch),
        trades=batch,
    )


def other(kind: str, channel: str, ts: int | None, pair: str | None = None) -> Parsed:
    return Parsed(
        kind=kind,
        channel=channel,
        venue_symbol=pair,
        symbol=None if pair is None else to_canonical(pair),
        event_ts_exchange_ms=ts,
    )


ACCEPTED: dict[str, Parsed] = {
    "trade_snapshot.json": trades(
        "MATIC/USD",
        trade(4665846, "0.5147", "6423.46326", "buy", 1695628116925),
        trade(4665847, "0.5147", "1136.19677815", "buy", 1695628176925),
    ),
    "trade_update.json": trades(
        "BTC/USD", trade(10218208, "105433.6", "0.00027625", "buy", 1762795433971)
    ),
    "rest_trade.json": Parsed(
        kind="rest_trade",
        channel="trade",
        venue_symbol=None,
        symbol=None,
        event_ts_exchange_ms=1762795433971,
        trades=(trade(10218208, "105433.60000", "0.00027625", "buy", 1762795433971),),
    ),
    "ticker.json": other("ticker", "book_ticker", None, "ALGO/USD"),
    "ticker_update.json": other("ticker", "book_ticker", 1762795433971, "BTC/USD"),
    "status.json": other("status", "control", None),
    "heartbeat.json": other("heartbeat", "control", None),
    "pong.json": other("pong", "control", None),
    "subscribe_ack.json": other("subscription_ack", "control", None, "MATIC/USD"),
    "subscribe_rejected.json": other("error", "control", None, "XBT/USD"),
    "system_status_v1.json": other("system_status_v1", "control", None),
    "subscription_status_v1.json": other("subscription_ack", "control", None, "WAVES/EUR"),
    "heartbeat_v1.json": other("heartbeat_v1", "control", None),
    "pong_v1.json": other("pong_v1", "control", None),
    # v1 book: the latest level time of the message
    "book_snapshot_v1.json": other("book_snapshot_v1", "depth", 1618678129215, "GRT/ETH"),
    "book_update_v1_bids.json": other("book_update_v1", "depth", 1618678133365, "XMR/USD"),
    "book_update_v1_asks.json": other("book_update_v1", "depth", 1618678133383, "WAVES/EUR"),
    "book_update_v1_both.json": other("book_update_v1", "depth", 1618678145920, "SC/EUR"),
}
REJECTED: dict[str, str] = {
    "book_v1_level_number.json": "bad_field",
    "rest_trade_no_id.json": "no_trade_id",
    "rest_trade_time_string.json": "bad_field",
    "ticker_v1.json": "unknown_message",
    "trade_mixed_symbols.json": "mixed_symbols",
    "trade_price_string.json": "bad_field",
    "trade_v1.json": "no_trade_id",
    "truncated.json": "not_json",
}


def test_every_payload_file_is_tested():
    files = {p.name for p in PAYLOADS.iterdir() if p.suffix == ".json"}
    assert files == set(ACCEPTED) | set(REJECTED)


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_payload_parses_to_exact_values(name):
    assert parse(load(name)) == ACCEPTED[name]


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_ugly_payload_is_rejected_with_its_reason(name):
    exc = reject(load(name))
    assert exc.reason == REJECTED[name]
    assert "\n" not in str(exc)


@pytest.mark.parametrize(
    ("number", "exact"),
    [
        ("0.1", "0.1"),
        ("0.30000000000000004", "0.30000000000000004"),
        ("105433.60000", "105433.60000"),  # trailing zeros kept: the text, not a float
        ("1e-8", "1E-8"),
        ("123456789012345678901234567890.123456789", "123456789012345678901234567890.123456789"),
    ],
)
def test_json_number_money_is_read_from_its_text(number, exact):
    t = parse(edit("trade_update.json", '"price":105433.6', f'"price":{number}')).trades[0]
    assert t is not None
    assert str(t.price) == exact and t.price == Decimal(exact)


def test_a_float_would_have_changed_the_value():
    # 0.30000000000000004 and 0.3 are one float; as exact decimals they differ.
    a = parse(edit("trade_update.json", '"price":105433.6', '"price":0.30000000000000004'))
    b = parse(edit("trade_update.json", '"price":105433.6', '"price":0.3'))
    assert a.trades[0].price != b.trades[0].price


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('"price":105433.6', '"price":-105433.6'),
        ('"price":105433.6', '"price":0'),
        ('"price":105433.6', '"price":1e999999'),
        ('"price":105433.6', '"price":1e-32'),
        ('"qty":0.00027625', '"qty":"0.00027625"'),
        ('"qty":0.00027625', '"qty":null'),
        ('"side":"buy"', '"side":"b"'),
        ('"ord_type":"limit"', '"ord_type":7'),
        ('"trade_id":10218208', '"trade_id":-1'),
        ('"timestamp":"2025-11-10T17:23:53.971744Z"', '"timestamp":1762795433.971744'),
        ('"type":"update"', '"type":"delta"'),
    ],
)
def test_out_of_contract_trade_field_is_bad_field(old, new):
    assert reject(edit("trade_update.json", old, new)).reason == "bad_field"


def test_an_empty_trade_push_is_bad_field():
    assert reject(b'{"channel":"trade","type":"update","data":[]}').reason == "bad_field"


def test_v1_trades_are_checked_before_they_are_refused_for_their_missing_id():
    bad = edit("trade_v1.json", '"5541.20000"', '"5541,2"')
    assert reject(bad).reason == "bad_field"
    assert "no id" in reject(load("trade_v1.json")).detail


@pytest.mark.parametrize(
    ("name", "old", "new"),
    [
        ("book_update_v1_bids.json", '"1618678133.365913"]', '"1618678133.365913","x"]'),
        ("book_update_v1_bids.json", '"1618678133.365913"', '"yesterday"'),
        ("book_update_v1_bids.json", '"c":"2583817756"', '"c":"2583817756","d":1'),
        ("book_update_v1_bids.json", '{"b":', '{"bs":'),
        ("book_update_v1_bids.json", "[992,", '["992",'),
    ],
)
def test_out_of_contract_v1_book_is_bad_field(name, old, new):
    assert reject(edit(name, old, new)).reason == "bad_field"


def test_a_republished_v1_level_is_accepted():
    payload = edit("book_update_v1_bids.json", '"1618678133.365913"]', '"1618678133.365913","r"]')
    assert parse(payload).kind == "book_update_v1"


@pytest.mark.parametrize(
    "payload",
    [b"[]", b"[1,2]", b"{}", b'{"channel":"book"}', b'{"event":"addOrder"}', b"[1,{},2,3]"],
)
def test_unknown_or_malformed_messages_are_refused(payload):
    assert reject(payload).reason in ("unknown_message", "bad_field")


@pytest.mark.parametrize(
    ("pair", "symbol", "v2_name"),
    [
        ("BTC/USD", "BTC-USD", "BTC/USD"),
        ("XBT/USD", "BTC-USD", "BTC/USD"),  # v1's XBT is BTC
        ("KSM/XBT", "KSM-BTC", "KSM/BTC"),
        ("XDG/EUR", "DOGE-EUR", "DOGE/EUR"),
        ("MATIC/USD", "MATIC-USD", "MATIC/USD"),
    ],
)
def test_pairs_map_by_table_and_write_the_v2_name(pair, symbol, v2_name):
    assert to_canonical(pair) == symbol
    assert to_venue(symbol) == v2_name
    assert to_canonical(to_venue(symbol)) == symbol


@pytest.mark.parametrize(
    "pair", ["BTC-USD", "BTCUSD", "XXBTZUSD", "BTC/XYZ", "btc/usd", "BTC/USD/X"]
)
def test_other_pairs_are_unsupported(pair):
    with pytest.raises(PayloadRejected) as info:
        to_canonical(pair)
    assert info.value.reason == "unsupported_instrument"


def test_parser_identity():
    assert PARSER.venue == VENUE == "kraken"
    assert {"trade", "book_update_v1"} <= PARSER.kinds


# -- REST Trades rows: what a back-fill stores, read back by the same parser ----------------


def test_a_rest_row_and_the_v2_push_of_one_trade_have_the_same_content():
    # exchanges.md 6.3's consecutive row and the v2 update built from it (trade 10218208)
    rest = single_trade(parse(load("rest_trade.json")))
    ws = single_trade(parse(load("trade_update.json")))
    assert rest is not None and ws is not None
    assert content_key(rest) == content_key(ws)
    assert (rest.price, str(rest.price), str(ws.price)) == (ws.price, "105433.60000", "105433.6")


@pytest.mark.parametrize(
    ("time", "ms"),
    [
        ("1762795433.9717445", 1762795433971),
        ("1762795433.999999", 1762795433999),  # floored, never rounded up to the next ms
        ("1762795434", 1762795434000),
        ("1762795433.001", 1762795433001),
    ],
)
def test_a_rest_row_time_is_read_from_the_number_text(time, ms):
    row = edit("rest_trade.json", "1762795433.9717445", time)
    assert parse(row).event_ts_exchange_ms == ms


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("1762795433.9717445", "1.7627954339717445e9"),  # exponent form: not epoch seconds
        ('"b"', '"buy"'),
        ('"l"', '"limit"'),
        ('"105433.60000"', "105433.6"),  # REST money is decimal text
        ('"0.00027625"', '"-0.00027625"'),
        ("10218208]", '"10218208"]'),
        ('"",10218208]', '"",10218208,1]'),
    ],
)
def test_out_of_contract_rest_row_is_refused(old, new):
    assert reject(edit("rest_trade.json", old, new)).reason in ("bad_field", "unknown_message")


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('"bid":105433.5', '"bid":"105433.5"'),
        ('"ask_qty":1.25', '"ask_qty":0'),
        ('"timestamp":"2025-11-10T17:23:53.971744Z"', '"timestamp":"yesterday"'),
    ],
)
def test_out_of_contract_ticker_is_bad_field(old, new):
    assert reject(edit("ticker_update.json", old, new)).reason == "bad_field"


def test_a_ticker_naming_two_pairs_is_mixed_symbols():
    body = load("ticker_update.json").decode()
    item = body[body.index("[{") + 1 : body.rindex("}]") + 1]
    two = body.replace(item, item + "," + item.replace("BTC/USD", "ETH/USD"))
    assert reject(two.encode()).reason == "mixed_symbols"
