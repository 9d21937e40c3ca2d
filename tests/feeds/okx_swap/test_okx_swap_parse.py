"""OKX v5 swap parser on recorded payloads, one file per message shape (payloads/README.md)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from buff_dataplane.core.errors import PayloadRejected, ValidationError
from buff_dataplane.core.trades import content_key
from buff_dataplane.feeds.base import Parsed, Trade, single_trade
from buff_dataplane.feeds.okx_swap.parse import PARSER, VENUE, parse, to_canonical, to_venue

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


def one_trade(kind: str, inst: str, t: Trade) -> Parsed:
    return Parsed(
        kind=kind,
        channel="trade",
        venue_symbol=inst,
        symbol=to_canonical(inst),
        event_ts_exchange_ms=t.ts_ms,
        trades=(t,),
    )


def other(kind: str, channel: str, ts: int | None, inst: str | None = None) -> Parsed:
    return Parsed(
        kind=kind,
        channel=channel,
        venue_symbol=inst,
        symbol=None if inst is None else to_canonical(inst),
        event_ts_exchange_ms=ts,
    )


DOC_TRADE = dict(
    price=Decimal("42219.9"), size=Decimal("12"), taker_side="buy", ts_ms=1630048897897
)
ACCEPTED: dict[str, Parsed] = {
    "trades.json": one_trade(
        "trades",
        "UNI-USD-SWAP",
        Trade(
            trade_id=12883020,
            price=Decimal("5.123"),
            size=Decimal("100"),
            taker_side="sell",
            ts_ms=1652459215150,
            first_trade_id=None,  # no `count`: one match
            last_trade_id=None,
        ),
    ),
    "trades_count.json": one_trade(
        "trades",
        "BTC-USDT-SWAP",
        Trade(trade_id=130639474, first_trade_id=130639472, last_trade_id=130639474, **DOC_TRADE),
    ),
    "trades_all.json": one_trade(
        "trades_all",
        "BTC-USDT-SWAP",
        Trade(trade_id=130639474, first_trade_id=None, last_trade_id=None, **DOC_TRADE),
    ),
    "history_trade.json": Parsed(
        kind="history_trade",
        channel="trade",
        venue_symbol="BTC-USDT-SWAP",
        symbol="BTC-USDT-PERP",
        event_ts_exchange_ms=1654161646974,
        trades=(
            Trade(
                trade_id=242720720,
                price=Decimal("29963.2"),
                size=Decimal("3"),
                taker_side="sell",
                ts_ms=1654161646974,
                first_trade_id=242720720,  # one match: it covers its own id
                last_trade_id=242720720,
            ),
        ),
    ),
    "mark_price.json": other("mark_price", "mark_price", 1630049139746, "BTC-USDT-SWAP"),
    "tickers.json": other("tickers", "book_ticker", 1652459223143, "UNI-USD-SWAP"),
    "books_snapshot.json": other("books", "depth", 1652459225363, "UNI-USD-SWAP"),
    "books_update.json": other("books", "depth", 1652459225464, "UNI-USD-SWAP"),
    "subscription_ack.json": other("subscription_ack", "control", None, "UNI-USD-SWAP"),
    "subscribe_ack_doc.json": other("subscription_ack", "control", None, "BTC-USDT-SWAP"),
    "error_60012.json": other("error", "control", None),
    "error_60018.json": other("error", "control", None),
    "notice.json": other("notice", "control", None),
    "pong.json": other("pong", "control", None),
}

REJECTED: dict[str, str] = {
    "bad_inst.json": "unsupported_instrument",
    "count_past_first_id.json": "bad_field",
    "futures_trades.json": "other_product",
    "history_trade_count.json": "bad_field",
    "history_trade_spot.json": "other_product",
    "inst_mismatch.json": "stream_symbol_mismatch",
    "option_trades.json": "other_product",
    "spot_trades.json": "other_product",
    "truncated.json": "not_json",
    "ts_number.json": "bad_field",
    "unknown_channel.json": "unknown_message",
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


def test_other_products_are_named():
    assert "an OKX spot pair" in reject(load("spot_trades.json")).detail
    assert "an OKX dated future" in reject(load("futures_trades.json")).detail
    assert "an OKX option" in reject(load("option_trades.json")).detail


def test_count_of_one_covers_just_the_print():
    t = parse(edit("trades_count.json", '"count":"3"', '"count":"1"')).trades[0]
    assert (t.first_trade_id, t.last_trade_id) == (130639474, 130639474)


def test_a_push_of_several_prints_keeps_them_in_order():
    item = '{"instId":"BTC-USDT-SWAP","tradeId":"130639475","px":"42220","sz":"1","side":"sell","ts":"1630048897899","count":"1"}'  # noqa: E501
    payload = edit("trades_count.json", '"seqId":1234}]', f'"seqId":1234}},{item}]')
    parsed = parse(payload)
    assert [t.trade_id for t in parsed.trades] == [130639474, 130639475]
    assert [t.taker_side for t in parsed.trades] == ["buy", "sell"]
    assert parsed.event_ts_exchange_ms == 1630048897897


@pytest.mark.parametrize(
    ("name", "old", "new"),
    [
        ("trades.json", '"side":"sell"', '"side":"Sell"'),
        ("trades.json", '"px":"5.123"', '"px":"-5.123"'),
        ("trades.json", '"sz":"100"', '"sz":"0"'),
        ("trades.json", '"tradeId":"12883020"', '"tradeId":"12883020.0"'),
        ("trades.json", '"tradeId":"12883020"', '"tradeId":"99999999999999999999"'),
        ("trades.json", '"ts":"1652459215150"', '"ts":"1652459215150000"'),
        ("trades_count.json", '"count":"3"', '"count":"0"'),
        ("trades_all.json", '"source":"0"', '"source":"0","count":"2"'),
        ("tickers.json", '"askPx":"5.142"', '"askPx":"5,142"'),
        ("books_update.json", '["5.158","129","0","2"]', '["5.158","129","0"]'),
        ("books_update.json", '["5.158","129","0","2"]', '["5.158",129,"0","2"]'),
        ("trades.json", '{"channel":"trades","instId":"UNI-USD-SWAP"}', '{"channel":"trades"}'),
    ],
)
def test_out_of_contract_field_is_bad_field(name, old, new):
    assert reject(edit(name, old, new)).reason == "bad_field"


def test_a_rest_item_and_a_single_match_print_of_one_trade_compare_equal():
    # The back-fill tells a resent trade from a conflict by content_key: a REST item for
    # a print of count 1 must be the same trade.
    print_ = parse(edit("trades_count.json", '"count":"3"', '"count":"1"')).trades[0]
    item = edit("history_trade.json", '"tradeId":"242720720"', '"tradeId":"130639474"')
    item = item.replace(b'"px":"29963.2"', b'"px":"42219.9"').replace(b'"sz":"3"', b'"sz":"12"')
    item = item.replace(b'"side":"sell"', b'"side":"buy"')
    rest = single_trade(parse(item.replace(b'"ts":"1654161646974"', b'"ts":"1630048897897"')))
    assert rest is not None and content_key(rest) == content_key(print_)


def test_a_rest_item_with_a_count_of_one_is_still_one_match():
    payload = edit("history_trade.json", '"ts":"1654161646974"', '"ts":"1654161646974","count":"1"')
    assert parse(payload) == ACCEPTED["history_trade.json"]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('"px":"29963.2"', '"px":"0"'),
        ('"side":"sell"', '"side":"SELL"'),
        ('"tradeId":"242720720"', '"tradeId":242720720'),
        ('"ts":"1654161646974"', '"ts":"-1"'),
    ],
)
def test_an_out_of_contract_rest_item_is_bad_field(old, new):
    assert reject(edit("history_trade.json", old, new)).reason == "bad_field"


def test_a_rest_item_of_another_instrument_type_is_refused():
    payload = edit("history_trade.json", '"BTC-USDT-SWAP"', '"BTC-USD-220527"')
    assert reject(payload).reason == "other_product"


def test_a_mark_price_push_must_carry_a_positive_price_of_its_instrument():
    assert reject(edit("mark_price.json", '"markPx":"42310.6"', '"markPx":""')).reason == (
        "bad_field"
    )
    wrong = edit(
        "mark_price.json", '"instType":"SWAP","instId":"BTC-USDT-SWAP"', '"instId":"ETH-USDT-SWAP"'
    )
    assert reject(wrong).reason == "stream_symbol_mismatch"
    empty = b'{"arg":{"channel":"mark-price","instId":"BTC-USDT-SWAP"},"data":[]}'
    assert reject(empty).reason == "bad_field"


def test_an_empty_ticker_side_is_allowed():
    parsed = parse(edit("tickers.json", '"bidPx":"5.134","bidSz":"96"', '"bidPx":"","bidSz":""'))
    assert parsed.channel == "book_ticker"


@pytest.mark.parametrize(
    "payload", [b"ping", b"PONG", b"[]", b"{}", b'{"event":"login","code":"0"}', b'{"arg":{}}']
)
def test_malformed_or_unknown_envelope_is_refused(payload):
    assert reject(payload).reason in ("not_json", "unknown_message", "bad_field")


@pytest.mark.parametrize(
    ("venue_symbol", "symbol"),
    [
        ("BTC-USDT-SWAP", "BTC-USDT-PERP"),
        ("UNI-USD-SWAP", "UNI-USD-PERP"),
        ("ETH-USDC-SWAP", "ETH-USDC-PERP"),
    ],
)
def test_symbols_map_by_table_both_ways(venue_symbol, symbol):
    assert to_canonical(venue_symbol) == symbol
    assert to_venue(symbol) == venue_symbol


@pytest.mark.parametrize("venue_symbol", ["BTC-EUR-SWAP", "BTC-USDT-SWAP-X", "btc-usdt-swap", ""])
def test_unmapped_symbols_are_unsupported(venue_symbol):
    with pytest.raises(PayloadRejected) as info:
        to_canonical(venue_symbol)
    assert info.value.reason == "unsupported_instrument"


def test_to_venue_refuses_a_spot_key():
    with pytest.raises(ValidationError, match="BASE-QUOTE-PERP"):
        to_venue("BTC-USDT")


def test_parser_identity():
    assert PARSER.venue == VENUE == "okx-swap"
    assert {"trades", "trades_all", "history_trade", "mark_price"} <= PARSER.kinds
