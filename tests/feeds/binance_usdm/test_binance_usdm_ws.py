"""The Binance USD-M WebSocket adapter: routes, stream names, subscribe, limits."""

from __future__ import annotations

import json

from buff_dataplane.feeds.binance_usdm.ws import ADAPTER


def test_streams_are_grouped_by_route_and_subscribed_after_connect():
    plans = ADAPTER.plan_connections(["ETHUSDT", "BTCUSDT"], ["book_ticker", "trade"])
    assert [(p.name, p.streams) for p in plans] == [
        ("market#0", ("btcusdt@aggTrade", "ethusdt@aggTrade")),
        ("public#1", ("btcusdt@bookTicker", "ethusdt@bookTicker")),
    ]
    assert [p.url("wss://fstream.binance.com") for p in plans] == [
        "wss://fstream.binance.com/market/stream",
        "wss://fstream.binance.com/public/stream",
    ]
    [message] = plans[0].subscribe(7)
    params = '["btcusdt@aggTrade","ethusdt@aggTrade"]'
    assert message == f'{{"method":"SUBSCRIBE","params":{params},"id":7}}'
    assert json.loads(message)["id"] == 7
    assert all(p.venue_symbols == ("BTCUSDT", "ETHUSDT") for p in plans)


def test_a_connection_carries_at_most_200_streams():
    symbols = [f"S{i:03d}USDT" for i in range(250)]
    plans = ADAPTER.plan_connections(symbols, ["trade", "mark_price"])
    assert [(p.name, len(p.streams)) for p in plans] == [
        ("market#0", 200),
        ("market#1", 200),
        ("market#2", 100),
    ]
    # mark_price sorts before trade: the first 250 streams are markPrice ones
    assert plans[0].streams[0] == "s000usdt@markPrice"
    assert plans[1].streams[50] == "s000usdt@aggTrade"
    # markPrice of S200..S249, then aggTrade of S000..S149
    assert plans[1].venue_symbols == tuple(symbols[:150] + symbols[200:])
    assert plans[2].venue_symbols == tuple(symbols[150:])
    assert ADAPTER.rotate_after_s == 23 * 3600
