"""Binance USD-M parser on recorded payloads, one file per message shape (payloads/README.md)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from buff_dataplane.core.errors import PayloadRejected
from buff_dataplane.core.events import MAX_TS_MS, MIN_TS_MS
from buff_dataplane.feeds.base import Parsed, Trade
from buff_dataplane.feeds.binance_usdm.parse import PARSER, VENUE, parse

PAYLOADS = Path(__file__).parent / "payloads"


def load(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def edit(name: str, old: str, new: str) -> bytes:
    """The payload ``name`` with its one occurrence of ``old`` replaced by ``new``."""
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
        venue_symbol="CTKUSDT",
        symbol="CTK-USDT-PERP",
        event_ts_exchange_ms=1626992741421,
        trades=(
            Trade(
                trade_id=16599292,
                price=Decimal("1.01100"),
                size=Decimal("10"),
                taker_side="buy",
                ts_ms=1626992741421,
                first_trade_id=23961322,
                last_trade_id=23961322,
            ),
        ),
    ),
    "aggTrade_sdk_fields.json": Parsed(
        kind="aggTrade",
        channel="trade",
        venue_symbol="BTCUSDT",
        symbol="BTC-USDT-PERP",
        event_ts_exchange_ms=1789191815354,
        trades=(
            Trade(
                trade_id=3056191238,
                price=Decimal("77199.90"),
                size=Decimal("0.012"),
                taker_side="sell",
                ts_ms=1789191815354,
                first_trade_id=8072551055,
                last_trade_id=8072551060,
            ),
        ),
    ),
    "trade.json": Parsed(
        kind="trade",
        channel="trade",
        venue_symbol="BTCUSDT",
        symbol="BTC-USDT-PERP",
        event_ts_exchange_ms=1723161256322,
        trades=(
            Trade(
                trade_id=5266583935,
                price=Decimal("61800.30"),
                size=Decimal("0.006"),
                taker_side="buy",
                ts_ms=1723161256322,
                first_trade_id=None,
                last_trade_id=None,
            ),
        ),
    ),
    "bookTicker.json": Parsed(
        kind="bookTicker",
        channel="book_ticker",
        venue_symbol="BTCUSDT",
        symbol="BTC-USDT-PERP",
        event_ts_exchange_ms=1723161256313,
    ),
    "markPriceUpdate.json": Parsed(
        kind="markPriceUpdate",
        channel="mark_price",
        venue_symbol="BTCUSDT",
        symbol="BTC-USDT-PERP",
        event_ts_exchange_ms=1562305380000,
    ),
    "depthUpdate.json": Parsed(
        kind="depthUpdate",
        channel="depth",
        venue_symbol="SUSHIUSDT",
        symbol="SUSHI-USDT-PERP",
        event_ts_exchange_ms=1626992741024,  # T, not E=1626992741037
    ),
    "kline.json": Parsed(
        kind="kline",
        channel="kline",
        venue_symbol="CTKUSDT",
        symbol="CTK-USDT-PERP",
        event_ts_exchange_ms=1626992741424,
    ),
    "kline_closed.json": Parsed(
        kind="kline",
        channel="kline",
        venue_symbol="SUSHIUSDT",
        symbol="SUSHI-USDT-PERP",
        event_ts_exchange_ms=1626992760203,
    ),
    "depthSnapshot.json": Parsed(
        kind="depthSnapshot",
        channel="depth",
        venue_symbol=None,
        symbol=None,
        event_ts_exchange_ms=1626992742012,  # T, not E=1626992742018
    ),
    "subscription_ack.json": control("subscription_ack"),
    "list_subscriptions.json": control("subscription_ack"),
    "error.json": control("error"),
    "error_flat.json": control("error"),
}

REJECTED: dict[str, str] = {
    "bad_price_float.json": "bad_field",
    "bad_utf8.json": "not_json",
    "delivery_contract.json": "unsupported_instrument",
    "depth_level_number.json": "bad_field",
    "empty.json": "not_json",
    "id_as_string.json": "bad_field",
    "markPriceUpdate_delivery.json": "unsupported_instrument",
    "markPrice_all_market.json": "unknown_message",
    "missing_field.json": "bad_field",
    "price_nan.json": "bad_field",
    "size_zero.json": "bad_field",
    "stream_kind_mismatch.json": "stream_kind_mismatch",
    "stream_symbol_mismatch.json": "stream_symbol_mismatch",
    "time_in_microseconds.json": "bad_field",
    "truncated.json": "not_json",
    "unknown_event.json": "unknown_message",
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
    exc = reject(load(name))
    assert exc.reason == REJECTED[name]
    assert "\n" not in str(exc)


def test_trade_money_keeps_the_exact_text():
    trade = parse(load("trade.json")).trades[0]
    assert trade is not None
    assert (str(trade.price), str(trade.size)) == ("61800.30", "0.006")
    agg = parse(load("aggTrade.json")).trades[0]
    assert agg is not None
    assert (str(agg.price), str(agg.size)) == ("1.01100", "10")


def test_rejections_name_the_field():
    assert "$.data.p" in reject(load("bad_price_float.json")).detail
    assert "$.data.b[0][0]" in reject(load("depth_level_number.json")).detail
    assert "`a`" in reject(load("missing_field.json")).detail
    assert "$.data" in reject(load("missing_field.json")).detail
    assert "BTCUSDT_240927" in reject(load("markPriceUpdate_delivery.json")).detail


def test_parser_identity():
    assert PARSER.venue == VENUE == "binance-usdm"
    assert "markPriceUpdate" in PARSER.kinds


# --- variants derived from the recorded payloads ------------------------------------------


def _data_of(name: str) -> bytes:
    return json.dumps(json.loads(load(name))["data"], separators=(",", ":")).encode()


@pytest.mark.parametrize("name", ["aggTrade.json", "trade.json", "bookTicker.json", "kline.json"])
def test_bare_message_parses_like_its_combined_stream_form(name):
    assert parse(_data_of(name)) == parse(load(name))


@pytest.mark.parametrize("name", ["trade.json", "depthUpdate.json", "depthSnapshot.json"])
def test_pretty_printed_json_parses_like_compact(name):
    pretty = json.dumps(json.loads(load(name)), indent=2).encode()
    assert parse(pretty) == parse(load(name))


def test_data_before_stream_parses_the_same():
    obj = json.loads(load("trade.json"))
    swapped = json.dumps({"data": obj["data"], "stream": obj["stream"]}).encode()
    assert parse(swapped) == parse(load("trade.json"))


def test_taker_side_follows_buyer_is_maker():
    assert parse(load("trade.json")).trades[0].taker_side == "buy"  # m=false
    flipped = parse(edit("trade.json", '"m":false', '"m":true'))
    assert flipped.trades[0].taker_side == "sell"
    assert reject(edit("trade.json", '"m":false', '"m":"false"')).reason == "bad_field"


@pytest.mark.parametrize(
    ("name", "old", "new"),
    [
        ("aggTrade.json", '"l":23961322', '"l":23961321'),  # f > l
        ("depthUpdate.json", '"U":600859599090', '"U":600859600918'),  # U > u
        ("kline.json", '"s":"CTKUSDT","i"', '"s":"AKROUSDT","i"'),  # k.s != s
        ("kline.json", '"t":1626992700000', '"t":1626992760000'),  # open after close
        ("kline.json", '"o":"1.01000"', '"o":"1.01e0"'),
        ("markPriceUpdate.json", '"r":"-0.00038167"', '"r":"-"'),
        ("markPriceUpdate.json", '"i":"11784.62659091"', '"i":""'),
        ("bookTicker.json", '"B":"2.507"', '"B":"2\\u00005"'),  # NUL inside a field
        ("bookTicker.json", '"a":"61800.30"', '"a":"-61800.30"'),
        ("depthUpdate.json", '["7.6110","2"]', '["7.6110","2","3"]'),
        ("depthUpdate.json", '["7.6110","2"]', '["7.6110","Infinity"]'),
        ("trade.json", '"p":"61800.30"', '"p":"-61800.30"'),
        ("trade.json", '"p":"61800.30"', '"p":"6.18003e4"'),
        ("trade.json", '"p":"61800.30"', '"p":"\u0666\u0661\u0668\u0660\u0660"'),  # Arabic-Indic
        ("trade.json", '"p":"61800.30"', '"p":"61800."'),
        ("trade.json", '"q":"0.006"', '"q":"0.006 "'),
        ("trade.json", '"t":5266583935', f'"t":{2**63}'),
        ("trade.json", '"t":5266583935', '"t":-1'),
        ("trade.json", '"T":1723161256322', f'"T":{MIN_TS_MS - 1}'),
        ("trade.json", '"T":1723161256322', f'"T":{MAX_TS_MS + 1}'),
        ("trade.json", '"T":1723161256322', '"T":1723161256322.0'),
    ],
)
def test_out_of_contract_field_is_bad_field(name, old, new):
    assert reject(edit(name, old, new)).reason == "bad_field"


def test_time_bounds_are_inclusive():
    lo = parse(edit("trade.json", '"T":1723161256322', f'"T":{MIN_TS_MS}'))
    hi = parse(edit("trade.json", '"T":1723161256322', f'"T":{MAX_TS_MS}'))
    assert (lo.event_ts_exchange_ms, hi.event_ts_exchange_ms) == (MIN_TS_MS, MAX_TS_MS)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"[]", "unknown_message"),
        (b"null", "unknown_message"),
        (b'"aggTrade"', "unknown_message"),
        (b"61800.30", "unknown_message"),
        (b"{}", "unknown_message"),
        (b'{"stream":"btcusdt@trade"}', "bad_field"),
        (b'{"stream":"btcusdt@trade","data":"x"}', "unknown_message"),
        (b'{"stream":7,"data":{}}', "bad_field"),
        (b'{"stream":"a@b","data":{"stream":"a@b","data":{}}}', "unknown_message"),
        (b"[" * 100_000, "not_json"),
        (b'{"e":"trade"} x', "not_json"),
        (b"\xef\xbb\xbf{}", "not_json"),
    ],
)
def test_malformed_envelope(payload, reason):
    assert reject(payload).reason == reason


def test_stream_without_at_sign_is_bad_field():
    exc = reject(edit("trade.json", '"stream":"btcusdt@trade"', '"stream":"btcusdt"'))
    assert exc.reason == "bad_field"


def test_all_market_stream_is_refused_for_naming_no_symbol():
    exc = reject(edit("bookTicker.json", '"stream":"btcusdt@bookTicker"', '"stream":"!bookTicker"'))
    assert exc.reason == "bad_field"
    assert "<symbol>@<name>" in exc.detail


def test_futures_book_ticker_without_time_has_no_exchange_time():
    payload = edit("bookTicker.json", ',"T":1723161256313,"E":1723161256313', "")
    assert parse(payload).event_ts_exchange_ms is None
