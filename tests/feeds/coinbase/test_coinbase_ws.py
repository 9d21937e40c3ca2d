"""The Coinbase WebSocket adapter: one URL, one subscribe message, heartbeat always."""

from __future__ import annotations

import json

import pytest

from buff_dataplane.core.errors import ValidationError
from buff_dataplane.feeds.coinbase.parse import parse
from buff_dataplane.feeds.coinbase.ws import ADAPTER
from buff_dataplane.feeds.ws_registry import ws_adapter_for


def test_one_connection_subscribes_matches_ticker_and_heartbeat_after_connecting():
    [plan] = ADAPTER.plan_connections(["ETH-USD", "BTC-USD"], ["trade", "book_ticker"])
    assert plan.name == "feed#0"
    assert plan.venue_symbols == ("BTC-USD", "ETH-USD")
    assert plan.url(ADAPTER.default_endpoint) == "wss://ws-feed.exchange.coinbase.com"
    assert plan.url("ws://127.0.0.1:9") == "ws://127.0.0.1:9"  # nothing in the URL
    assert plan.subscribe(7) == [
        '{"type":"subscribe","product_ids":["BTC-USD","ETH-USD"],'
        '"channels":["heartbeat","matches","ticker"]}'
    ]


def test_heartbeat_rides_along_even_when_only_trades_are_captured():
    [plan] = ADAPTER.plan_connections(["BTC-USD"], ["trade"])
    [message] = plan.subscribe(1)
    assert json.loads(message)["channels"] == ["heartbeat", "matches"]
    [tickers] = ADAPTER.plan_connections(["BTC-USD"], ["book_ticker"])
    assert json.loads(tickers.subscribe(1)[0])["channels"] == ["heartbeat", "ticker"]


def test_a_connection_carries_at_most_100_products_in_a_stable_order():
    products = [f"C{i:03d}-USD" for i in range(250)]
    plans = ADAPTER.plan_connections(list(reversed(products)), ["trade"])
    assert [p.name for p in plans] == ["feed#0", "feed#1", "feed#2"]
    assert [len(p.venue_symbols) for p in plans] == [100, 100, 50]
    assert [s for p in plans for s in p.venue_symbols] == products
    assert plans == ADAPTER.plan_connections(products, ["trade"])


def test_the_venue_facts():
    assert ws_adapter_for("coinbase") is ADAPTER
    assert ADAPTER.venue == "coinbase"
    assert ADAPTER.channels == ("book_ticker", "trade")
    assert ADAPTER.rotate_after_s is None  # no documented connection lifetime
    assert ADAPTER.keepalive is None  # protocol pings; heartbeats show liveness
    assert ADAPTER.max_products_per_connection == 100


@pytest.mark.parametrize("channel", ["mark_price", "depth", "funding", "kline"])
def test_a_channel_coinbase_cannot_capture_is_refused_by_name(channel):
    with pytest.raises(ValidationError) as info:
        ADAPTER.plan_connections(["BTC-USD"], ["trade", channel])
    assert str(info.value) == (
        f"coinbase cannot capture channel {channel!r}: expected some of book_ticker, trade"
    )


def test_no_channel_is_refused():
    with pytest.raises(ValidationError, match="no channel"):
        ADAPTER.plan_connections(["BTC-USD"], [])


def test_the_parser_reads_every_channel_the_adapter_subscribes():
    """What the subscription brings: the ack, matches, tickers and heartbeats."""
    messages = {
        "subscription_ack": '{"type":"subscriptions","channels":[{"name":"heartbeat",'
        '"product_ids":["BTC-USD"]}]}',
        "ticker": '{"type":"ticker","sequence":9,"product_id":"BTC-USD","price":"1.5",'
        '"best_bid":"1.4","best_ask":"1.6","time":"2024-08-09T00:00:00.123456Z",'
        '"trade_id":3,"last_size":"2"}',
        "heartbeat": '{"type":"heartbeat","sequence":90,"last_trade_id":20,'
        '"product_id":"BTC-USD","time":"2024-08-09T00:00:01.000000Z"}',
    }
    channels = {kind: parse(m.encode()).channel for kind, m in messages.items()}
    assert channels == {
        "subscription_ack": "control",
        "ticker": "book_ticker",
        "heartbeat": "control",
    }
