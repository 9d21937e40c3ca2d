"""Bybit v5 linear parser on recorded payloads, one file per message shape (payloads/README.md)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from buff_dataplane.core.errors import PayloadRejected, ValidationError
from buff_dataplane.feeds.base import Parsed, Trade, single_trade
from buff_dataplane.feeds.bybit_linear.parse import PARSER, VENUE, parse, to_canonical, to_venue

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


def uuid(text: str) -> int:
    return int(text.replace("-", ""), 16)


def trade(i: str, p: str, v: str, side: str, ts: int) -> Trade:
    return Trade(
        trade_id=uuid(i),
        price=Decimal(p),
        size=Decimal(v),
        taker_side=side,
        ts_ms=ts,
        first_trade_id=None,
        last_trade_id=None,
    )


def trades(venue_symbol: str, symbol: str, *batch: Trade) -> Parsed:
    return Parsed(
        kind="publicTrade",
        channel="trade",
        venue_symbol=venue_symbol,
        symbol=symbol,
        event_ts_exchange_ms=min(t.ts_ms for t in batch),
        trades=batch,
    )


def other(kind: str, channel: str, ts: int | None, venue_symbol: str | None = None) -> Parsed:
    return Parsed(
        kind=kind,
        channel=channel,
        venue_symbol=venue_symbol,
        symbol=None if venue_symbol is None else to_canonical(venue_symbol),
        event_ts_exchange_ms=ts,
    )


ETH = ("ETHUSDT", "ETH-USDT-PERP")
ETH_T = 1786310820346
ACCEPTED: dict[str, Parsed] = {
    "publicTrade.json": trades(
        "BTCUSDT",
        "BTC-USDT-PERP",
        trade("a9188a0a-82bc-50de-be60-03eedbe3cdd7", "65114.20", "0.004", "sell", 1786310819680),
    ),
    "publicTrade_batch.json": trades(
        *ETH,
        trade("19d7df56-4f10-5290-a969-d9d9f2c74cc3", "1922.50", "0.01", "buy", ETH_T),
        trade("4d4ad26c-901f-5146-adc0-1db29b6b9ab6", "1922.50", "1.30", "buy", ETH_T),
        trade("600c96a7-10e6-5814-80d5-a1427918f84f", "1922.50", "0.10", "buy", ETH_T),
        trade("566d0d18-a763-5afc-8a7a-27e24ecdc3ea", "1922.50", "0.10", "buy", ETH_T),
        trade("3f8f151c-8889-5f3a-84c1-9582dd71695b", "1922.50", "0.16", "buy", ETH_T),
    ),
    "publicTrade_doc.json": trades(
        "BTCUSDT",
        "BTC-USDT-PERP",
        trade("20f43950-d8dd-5b31-9112-a178eb6023af", "16578.50", "0.001", "buy", 1672304486865),
    ),
    "publicTrade_rpi.json": trades(
        "BTCUSDT",
        "BTC-USDT-PERP",
        trade("8c931d9a-b703-5c34-9aeb-860867cf1f66", "69916.80", "0.001", "sell", 1774021164272),
        trade("307fb58f-09dc-5121-b24f-eb2f81873445", "69916.80", "0.001", "sell", 1774021164272),
    ),
    "recentTrade.json": Parsed(
        kind="recentTrade",
        channel="trade",
        venue_symbol="BTCUSDT",
        symbol="BTC-USDT-PERP",
        event_ts_exchange_ms=1786310819680,
        trades=(
            trade(
                "a9188a0a-82bc-50de-be60-03eedbe3cdd7", "65114.20", "0.004", "sell", 1786310819680
            ),
        ),
    ),
    "tickers_snapshot.json": other("tickers", "book_ticker", 1786310817583, "BTCUSDT"),
    "tickers_delta.json": other("tickers", "book_ticker", 1786310817883, "BTCUSDT"),
    "orderbook_snapshot.json": other("orderbook", "depth", 1786310818952, "SOLUSDT"),
    "orderbook_delta.json": other("orderbook", "depth", 1786310820249, "SOLUSDT"),  # cts
    "kline.json": other("kline", "kline", 1786310818440, "BTCUSDT"),
    "subscription_ack.json": other("subscription_ack", "control", None),
    "subscribe_rejected.json": other("error", "control", None),
    "pong.json": other("pong", "control", None),
    "pong_option.json": other("pong", "control", None),
}

REJECTED: dict[str, str] = {
    "allLiquidation.json": "unknown_message",
    "dated_future.json": "unsupported_instrument",
    "empty_batch.json": "bad_field",
    "legacy_trade.json": "unknown_message",
    "price_number.json": "bad_field",
    "recentTrade_spot_doc.json": "bad_field",
    "recentTrade_time_number.json": "bad_field",
    "spot_publicTrade.json": "bad_field",
    "topic_symbol_mismatch.json": "stream_symbol_mismatch",
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


def test_a_batch_keeps_every_trade_in_order():
    parsed = parse(load("publicTrade_batch.json"))
    assert [str(t.size) for t in parsed.trades] == ["0.01", "1.30", "0.10", "0.10", "0.16"]


def test_trade_id_is_the_uuid_value_and_reads_back():
    [t] = parse(load("publicTrade.json")).trades
    assert t.trade_id == 224766946217523258686066197698997112279
    assert f"{t.trade_id:032x}" == "a9188a0a82bc50debe6003eedbe3cdd7"


def test_event_time_is_the_earliest_trade_time_not_the_push_time():
    second = '"T":1774021164272,"s":"BTCUSDT","S":"Sell","v":"0.001","p":"69916.80","L":"Zero'
    payload = edit("publicTrade_rpi.json", second, second.replace("272", "270"))
    parsed = parse(payload)
    assert parsed.event_ts_exchange_ms == 1774021164270
    assert [t.ts_ms for t in parsed.trades] == [1774021164272, 1774021164270]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('"S":"Sell"', '"S":"sell"'),
        ('"v":"0.004"', '"v":"0"'),
        ('"v":"0.004"', '"v":"-0.004"'),
        ('"p":"65114.20"', '"p":"6.511420e4"'),
        ('"T":1786310819680', '"T":"1786310819680"'),
        ('"T":1786310819680', '"T":1786310819680000'),  # microseconds: out of range
        (
            '"i":"a9188a0a-82bc-50de-be60-03eedbe3cdd7"',
            '"i":"A9188A0A-82BC-50DE-BE60-03EEDBE3CDD7"',
        ),
        ('"i":"a9188a0a-82bc-50de-be60-03eedbe3cdd7"', '"i":"a9188a0a82bc50debe6003eedbe3cdd7"'),
        ('"type":"snapshot"', '"type":"delta"'),
        ('"topic":"publicTrade.BTCUSDT"', '"topic":"publicTrade.1.BTCUSDT"'),
    ],
)
def test_out_of_contract_trade_field_is_bad_field(old, new):
    assert reject(edit("publicTrade.json", old, new)).reason == "bad_field"


def test_unknown_fields_are_ignored():
    plain = parse(load("publicTrade.json"))
    extra = parse(edit("publicTrade.json", '"BT":false', '"BT":false,"mP":"1","iP":"2"'))
    assert extra == plain


def test_book_level_out_of_contract_is_bad_field():
    payload = edit("orderbook_delta.json", '["76.860","155.5"]', '["76.860",155.5]')
    assert "$.data.b[0][1]" in reject(payload).detail


def test_control_answers_without_success_are_bad_field():
    assert reject(b'{"op":"subscribe","ret_msg":""}').reason == "bad_field"
    assert reject(b'{"op":"auth","success":true}').reason == "unknown_message"
    assert reject(b"[]").reason == "unknown_message"
    assert reject(b"{}").reason == "unknown_message"


@pytest.mark.parametrize(
    ("venue_symbol", "symbol"),
    [
        ("BTCUSDT", "BTC-USDT-PERP"),
        ("1000PEPEUSDT", "1000PEPE-USDT-PERP"),
        ("ETHUSDC", "ETH-USDC-PERP"),
    ],
)
def test_symbols_map_by_table_both_ways(venue_symbol, symbol):
    assert to_canonical(venue_symbol) == symbol
    assert to_venue(symbol) == venue_symbol


@pytest.mark.parametrize("venue_symbol", ["BTCPERP", "BTC-26DEC25", "BTCUSD", "btcusdt"])
def test_other_instruments_are_unsupported(venue_symbol):
    with pytest.raises(PayloadRejected) as info:
        to_canonical(venue_symbol)
    assert info.value.reason == "unsupported_instrument"


def test_to_venue_refuses_a_spot_key():
    with pytest.raises(ValidationError, match="BASE-QUOTE-PERP"):
        to_venue("BTC-USDT")


def test_parser_identity():
    assert PARSER.venue == VENUE == "bybit-linear"
    assert "publicTrade" in PARSER.kinds


def test_a_recent_trade_item_is_the_same_trade_as_its_push():
    rest = parse(load("recentTrade.json"))
    ws = parse(load("publicTrade.json"))
    assert single_trade(rest) == ws.trades[0]
    assert (rest.symbol, rest.event_ts_exchange_ms) == (ws.symbol, ws.event_ts_exchange_ms)


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ('"side":"Sell"', '"side":"sell"', "bad_field"),
        ('"size":"0.004"', '"size":"0"', "bad_field"),
        ('"time":"1786310819680"', '"time":"1786310819680000"', "bad_field"),
        ('"time":"1786310819680"', '"time":"-1"', "bad_field"),
        ('"symbol":"BTCUSDT"', '"symbol":"BTCUSDT-26SEP25"', "unsupported_instrument"),
        ('"execId":"a9188a0a-82bc-50de-be60-03eedbe3cdd7",', "", "unknown_message"),
    ],
)
def test_out_of_contract_recent_trade_item_is_refused(old, new, reason):
    assert reject(edit("recentTrade.json", old, new)).reason == reason
