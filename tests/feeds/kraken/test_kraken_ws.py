"""The Kraken v2 WebSocket adapter: URL, subscribe messages, limits, keep-alive facts."""

from __future__ import annotations

import json

import pytest

from buff_dataplane.core.errors import ValidationError
from buff_dataplane.feeds.kraken.parse import parse, to_venue
from buff_dataplane.feeds.kraken.ws import ADAPTER, MAX_SYMBOLS_PER_CONNECTION
from buff_dataplane.feeds.ws_registry import ws_adapter_for


def test_one_connection_subscribes_each_channel_for_all_its_symbols():
    symbols = [to_venue("ETH-USD"), to_venue("BTC-USD")]
    [plan] = ADAPTER.plan_connections(symbols, ["trade", "book_ticker"])
    assert plan.name == "v2#0"
    assert plan.venue_symbols == ("BTC/USD", "ETH/USD")
    assert plan.url(ADAPTER.default_endpoint) == "wss://ws.kraken.com/v2"
    assert plan.url("ws://127.0.0.1:9/") == "ws://127.0.0.1:9/v2"
    assert plan.subscribe(3) == [
        '{"method":"subscribe","params":{"channel":"ticker","symbol":["BTC/USD","ETH/USD"]},'
        '"req_id":3}',
        '{"method":"subscribe","params":{"channel":"trade","symbol":["BTC/USD","ETH/USD"],'
        '"snapshot":true},"req_id":3}',
    ]


def test_the_subscribe_message_has_the_documented_shape():
    [plan] = ADAPTER.plan_connections(["BTC/USD"], ["trade"])
    [message] = plan.subscribe(7)
    body = json.loads(message)
    assert body == {
        "method": "subscribe",
        "params": {"channel": "trade", "symbol": ["BTC/USD"], "snapshot": True},
        "req_id": 7,
    }
    # its acknowledgement (exchanges.md 6.2) is what the capture records as `subscribed`
    ack = (
        b'{"method":"subscribe","req_id":7,"result":{"channel":"trade","snapshot":true,'
        b'"symbol":"BTC/USD"},"success":true,"time_in":"2023-09-25T09:04:31.742599Z",'
        b'"time_out":"2023-09-25T09:04:31.742648Z"}'
    )
    assert (parse(ack).kind, parse(ack).symbol) == ("subscription_ack", "BTC-USD")


def test_symbols_are_split_over_connections_at_the_bound():
    symbols = [f"A{i:03d}/USD" for i in range(MAX_SYMBOLS_PER_CONNECTION + 20)]
    plans = ADAPTER.plan_connections(list(reversed(symbols)), ["trade"])
    assert [p.name for p in plans] == ["v2#0", "v2#1"]
    assert [len(p.venue_symbols) for p in plans] == [MAX_SYMBOLS_PER_CONNECTION, 20]
    assert plans[0].venue_symbols + plans[1].venue_symbols == tuple(symbols)
    assert plans == ADAPTER.plan_connections(symbols, ["trade", "trade"])  # deterministic


def test_the_venue_facts():
    assert ws_adapter_for("kraken") is ADAPTER
    assert ADAPTER.venue == "kraken"
    assert ADAPTER.default_endpoint == "wss://ws.kraken.com"
    assert ADAPTER.channels == ("book_ticker", "trade")
    assert ADAPTER.rotate_after_s is None  # no documented connection lifetime
    assert ADAPTER.keepalive is None  # the venue's heartbeats keep the connection busy


@pytest.mark.parametrize("channel", ["mark_price", "depth", "funding", "kline"])
def test_a_channel_kraken_spot_cannot_capture_is_refused_by_name(channel):
    with pytest.raises(ValidationError) as info:
        ADAPTER.plan_connections(["BTC/USD"], ["trade", channel])
    assert str(info.value) == (
        f"kraken cannot capture channel {channel!r}: expected some of book_ticker, trade"
    )


def test_no_channels_is_refused():
    with pytest.raises(ValidationError, match="no channels"):
        ADAPTER.plan_connections(["BTC/USD"], [])
