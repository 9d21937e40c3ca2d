"""The okx-swap WebSocket adapter: plans, subscribe ops, keep-alive facts, refusals."""

from __future__ import annotations

import json

import pytest

from buff_dataplane.core.errors import ValidationError
from buff_dataplane.feeds.okx_swap.parse import parse, to_venue
from buff_dataplane.feeds.okx_swap.ws import ADAPTER, MAX_ARGS_PER_CONNECTION, OkxWsAdapter
from buff_dataplane.feeds.ws_base import Keepalive
from buff_dataplane.feeds.ws_registry import ws_adapter_for


def test_the_venue_facts():
    adapter = ws_adapter_for("okx-swap")
    assert adapter is ADAPTER
    assert adapter.default_endpoint == "wss://ws.okx.com:8443"
    assert adapter.channels == ("book_ticker", "mark_price", "trade")
    assert adapter.rotate_after_s is None  # OKX documents no connection lifetime
    # The text `ping` within the 30 s the server waits before closing (4004).
    assert adapter.keepalive == Keepalive(20.0, "ping")
    assert parse(b"pong").kind == "pong"  # its answer is read as a control message


def test_one_public_connection_subscribes_every_channel_of_every_instrument_in_one_op():
    symbols = [to_venue("ETH-USDT-PERP"), to_venue("BTC-USDT-PERP")]
    [plan] = ADAPTER.plan_connections(symbols, ["trade", "book_ticker", "mark_price"])
    assert plan.name == "public#0"
    assert plan.venue_symbols == ("BTC-USDT-SWAP", "ETH-USDT-SWAP")
    assert plan.url("wss://ws.okx.com:8443/") == "wss://ws.okx.com:8443/ws/v5/public"
    [message] = plan.subscribe(7)
    assert message == (
        '{"id":"7","op":"subscribe","args":['
        '{"channel":"tickers","instId":"BTC-USDT-SWAP"},'
        '{"channel":"mark-price","instId":"BTC-USDT-SWAP"},'
        '{"channel":"trades","instId":"BTC-USDT-SWAP"},'
        '{"channel":"tickers","instId":"ETH-USDT-SWAP"},'
        '{"channel":"mark-price","instId":"ETH-USDT-SWAP"},'
        '{"channel":"trades","instId":"ETH-USDT-SWAP"}]}'
    )


def test_plans_split_at_the_per_connection_limit_and_are_deterministic():
    symbols = [f"C{i:03d}-USDT-SWAP" for i in range(120)]
    plans = ADAPTER.plan_connections(symbols, ["trade"])
    assert [len(p.args) for p in plans] == [MAX_ARGS_PER_CONNECTION, 20]
    assert [p.name for p in plans] == ["public#0", "public#1"]
    assert plans == ADAPTER.plan_connections(list(reversed(symbols)), ["trade", "trade"])
    small = OkxWsAdapter(max_args_per_connection=2)
    plans = small.plan_connections(["A-USDT-SWAP", "B-USDT-SWAP"], ["trade", "book_ticker"])
    assert [p.venue_symbols for p in plans] == [("A-USDT-SWAP",), ("B-USDT-SWAP",)]
    for plan in plans:
        [message] = plan.subscribe(1)
        assert len(json.loads(message)["args"]) == 2


@pytest.mark.parametrize("channel", ["depth", "funding", "control", "trades"])
def test_a_channel_the_adapter_does_not_capture_is_refused_by_name(channel):
    with pytest.raises(ValidationError) as info:
        ADAPTER.plan_connections(["BTC-USDT-SWAP"], ["trade", channel])
    assert str(info.value) == (
        f"okx-swap cannot capture channel {channel!r}: expected some of "
        "book_ticker, mark_price, trade"
    )
