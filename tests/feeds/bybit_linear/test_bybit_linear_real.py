"""Every message of the real Bybit v5 recording parses; every trade is read exactly."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal

import pytest

from buff_dataplane.core.errors import PayloadRejected
from buff_dataplane.feeds.bybit_linear.parse import parse

pytestmark = pytest.mark.real_fixtures
FILE = "cryptofeed/v3/BYBIT.jsonl.zst"
LINEAR, SPOT = "BYBIT.ws.2", "BYBIT.ws.3"
TAKER = {"Buy": "buy", "Sell": "sell"}


def test_connections_are_linear_and_spot(real_v3):
    cap = real_v3(FILE)
    assert cap.addr == {
        LINEAR: "wss://stream.bybit.com/v5/public/linear",
        SPOT: "wss://stream.bybit.com/v5/public/spot",
    }
    assert (len(cap.of(LINEAR)), len(cap.of(SPOT))) == (2546, 681)


def test_every_linear_message_parses(real_v3):
    parsed = [parse(payload) for _, payload in real_v3(FILE).of(LINEAR)]
    assert Counter(p.kind for p in parsed) == {
        "orderbook": 1598,
        "tickers": 758,
        "publicTrade": 102,
        "kline": 71,
        "subscription_ack": 17,
    }
    assert {p.symbol for p in parsed} == {
        "BTC-USDT-PERP", "ETH-USDT-PERP", "SOL-USDT-PERP", "DOGE-USDT-PERP", None,
    }  # fmt: skip
    for p in parsed:
        assert bool(p.trades) == (p.channel == "trade")


def test_every_linear_trade_is_read_exactly(real_v3):
    got, want = [], []
    for _, payload in real_v3(FILE).of(LINEAR):
        p = parse(payload)
        got += [(p.symbol, t.trade_id, t.price, t.size, t.taker_side, t.ts_ms) for t in p.trades]
        msg = json.loads(payload)
        if msg.get("topic", "").startswith("publicTrade."):
            want += [
                (t["s"][:-4] + "-USDT-PERP", int(t["i"].replace("-", ""), 16), Decimal(t["p"]),
                 Decimal(t["v"]), TAKER[t["S"]], t["T"])
                for t in msg["data"]
            ]  # fmt: skip
    assert got == want
    assert len(got) == 327
    assert Counter(side for *_, side, _ in got) == {"sell": 215, "buy": 112}
    btc = sum((size for sym, _, _, size, *_ in got if sym == "BTC-USDT-PERP"), Decimal(0))
    assert btc == Decimal("7.039")


def test_spot_trades_do_not_pass_for_linear_ones(real_v3):
    """Spot ids are numeric: the linear parser refuses them. Spot's other messages look
    like linear ones, so the importer skips the spot connection by its URL."""
    reasons = Counter()
    for _, payload in real_v3(FILE).of(SPOT):
        try:
            parse(payload)
        except PayloadRejected as exc:
            reasons[exc.reason] += 1
    assert reasons == {"bad_field": 18}
