"""The Bybit linear WebSocket adapter: one URL, topics subscribed after connect, the
client's ping, and connections packed by the venue's args limit."""

import json

import pytest

from buff_dataplane.core.errors import ConfigError, ValidationError
from buff_dataplane.feeds.bybit_linear.parse import parse
from buff_dataplane.feeds.bybit_linear.ws import (
    ADAPTER,
    MAX_ARGS_CHARS_PER_CONNECTION,
    BybitLinearWsAdapter,
    args_chars,
)
from buff_dataplane.feeds.ws_base import Keepalive
from buff_dataplane.feeds.ws_registry import ws_adapter_for


def test_the_registry_serves_the_adapter_with_the_venue_facts():
    adapter = ws_adapter_for("bybit-linear")
    assert adapter is ADAPTER
    assert adapter.default_endpoint == "wss://stream.bybit.com"
    assert adapter.channels == ("book_ticker", "trade")
    assert adapter.rotate_after_s is None  # no documented connection lifetime
    assert adapter.keepalive == Keepalive(20.0, '{"op":"ping"}')
    assert MAX_ARGS_CHARS_PER_CONNECTION == 21_000


def test_one_connection_subscribes_every_topic_with_the_generation_as_req_id():
    [plan] = ADAPTER.plan_connections(["ETHUSDT", "BTCUSDT"], ["trade", "book_ticker"])
    assert plan.name == "linear#0"
    assert plan.venue_symbols == ("BTCUSDT", "ETHUSDT")
    assert plan.url("wss://stream.bybit.com") == "wss://stream.bybit.com/v5/public/linear"
    assert plan.url("ws://127.0.0.1:9/") == "ws://127.0.0.1:9/v5/public/linear"
    assert plan.subscribe(4) == [
        '{"op":"subscribe","args":["tickers.BTCUSDT","publicTrade.BTCUSDT",'
        '"tickers.ETHUSDT","publicTrade.ETHUSDT"],"req_id":"4"}'
    ]


def test_the_keepalive_text_is_a_ping_the_venue_answers_with_a_parsed_pong():
    assert json.loads(ADAPTER.keepalive.message) == {"op": "ping"}
    pong = b'{"success":true,"ret_msg":"pong","conn_id":"x","req_id":"","op":"ping"}'
    parsed = parse(pong)
    assert (parsed.kind, parsed.channel, parsed.symbol) == ("pong", "control", None)


def test_connections_are_packed_within_the_args_limit_keeping_a_symbol_whole():
    symbols = [f"COIN{i:04d}USDT" for i in range(1_000)]
    plans = ADAPTER.plan_connections(symbols, ["trade", "book_ticker"])
    assert len(plans) == 3
    sizes = []
    for plan in plans:
        [message] = plan.subscribe(1)
        args = json.loads(message)["args"]
        sizes.append(args_chars(args))
        assert len(args) == 2 * len(plan.venue_symbols)
    # Full but for the last: one more symbol's two topics (50 characters) would not fit.
    assert sizes == [20_951, 20_951, 8_101]
    assert [len(p.venue_symbols) for p in plans] == [419, 419, 162]
    carried = [s for p in plans for s in p.venue_symbols]
    assert carried == sorted(symbols)
    assert [p.name for p in plans] == ["linear#0", "linear#1", "linear#2"]


def test_plans_are_deterministic_and_deduplicated():
    a = ADAPTER.plan_connections(["BTCUSDT", "ETHUSDT", "BTCUSDT"], ["trade", "trade"])
    b = ADAPTER.plan_connections(["ETHUSDT", "BTCUSDT"], ["trade"])
    assert a == b
    assert a[0].topics == ("publicTrade.BTCUSDT", "publicTrade.ETHUSDT")


@pytest.mark.parametrize("channel", ["mark_price", "depth", "funding"])
def test_a_channel_the_adapter_does_not_capture_is_refused_by_name(channel):
    with pytest.raises(ValidationError) as info:
        ADAPTER.plan_connections(["BTCUSDT"], ["trade", channel])
    assert str(info.value) == (
        f"bybit-linear cannot capture channel {channel!r}: expected some of book_ticker, trade"
    )


def test_one_symbol_whose_topics_pass_the_limit_is_refused():
    tiny = BybitLinearWsAdapter(max_args_chars=30)
    with pytest.raises(ValidationError, match="'BTCUSDT' alone are too long"):
        tiny.plan_connections(["BTCUSDT"], ["trade", "book_ticker"])


def test_a_keepalive_without_interval_is_a_config_error():
    with pytest.raises(ConfigError):
        Keepalive(0, '{"op":"ping"}')
