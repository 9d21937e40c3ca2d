"""The Binance spot WebSocket adapter: stream names, URLs, limits."""

from __future__ import annotations

import pytest

from buff_dataplane.core.errors import ValidationError
from buff_dataplane.feeds.binance_spot.ws import ADAPTER


def test_one_combined_connection_names_lower_case_streams_in_its_url():
    [plan] = ADAPTER.plan_connections(["ETHUSDT", "BTCUSDT"], ["trade", "book_ticker"])
    assert plan.name == "stream#0"
    assert plan.venue_symbols == ("BTCUSDT", "ETHUSDT")
    assert plan.streams == (
        "btcusdt@bookTicker",
        "ethusdt@bookTicker",
        "btcusdt@aggTrade",
        "ethusdt@aggTrade",
    )
    assert plan.url(ADAPTER.default_endpoint) == (
        "wss://stream.binance.com:9443/stream?streams="
        "btcusdt@bookTicker/ethusdt@bookTicker/btcusdt@aggTrade/ethusdt@aggTrade"
    )
    assert plan.subscribe(1) == []  # the URL subscribes: nothing to send


def test_a_connection_carries_at_most_1024_streams():
    symbols = [f"S{i:04d}USDT" for i in range(1100)]
    plans = ADAPTER.plan_connections(symbols, ["trade"])
    assert [len(p.streams) for p in plans] == [1024, 76]
    assert [p.name for p in plans] == ["stream#0", "stream#1"]
    assert plans[0].venue_symbols == tuple(symbols[:1024])
    assert plans[1].venue_symbols == tuple(symbols[1024:])
    both = ADAPTER.plan_connections(symbols[:600], ["trade", "book_ticker"])
    assert [len(p.streams) for p in both] == [1024, 176]
    assert set(both[0].venue_symbols) | set(both[1].venue_symbols) == set(symbols[:600])
    assert len(both[1].venue_symbols) == 176  # aggTrade streams of the last 176 symbols


def test_the_venue_facts():
    assert ADAPTER.venue == "binance-spot"
    assert ADAPTER.default_endpoint == "wss://stream.binance.com:9443"
    assert ADAPTER.channels == ("book_ticker", "trade")
    assert ADAPTER.max_streams_per_connection == 1024
    assert ADAPTER.rotate_after_s == 23 * 3600  # before the 24 h lifetime
    assert ADAPTER.keepalive is None


@pytest.mark.parametrize("channel", ["mark_price", "depth", "funding"])
def test_a_channel_spot_cannot_capture_is_refused_by_name(channel):
    with pytest.raises(ValidationError) as info:
        ADAPTER.plan_connections(["BTCUSDT"], ["trade", channel])
    assert str(info.value) == (
        f"binance-spot cannot capture channel {channel!r}: expected some of book_ticker, trade"
    )
