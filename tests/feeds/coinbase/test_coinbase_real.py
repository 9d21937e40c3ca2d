"""Every message of the real Coinbase recordings (Exchange and Advanced Trade) parses."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from decimal import Decimal

import pytest

from buff_dataplane.feeds.coinbase.parse import parse

pytestmark = pytest.mark.real_fixtures
TAKER = {"buy": "sell", "sell": "buy", "BUY": "sell", "SELL": "buy"}  # from the maker's side


def test_exchange_feed(real_messages):
    lines = [(n, p) for n, p in real_messages("cryptofeed/COINBASE.ws.28.0") if p]
    parsed = [parse(p) for _, p in lines]
    assert Counter(p.kind for p in parsed) == {
        "l2update": 9719,
        "ticker": 107,
        "match": 97,
        "snapshot": 10,
        "last_match": 10,
        "subscription_ack": 3,
    }
    got = [(p.symbol, t.trade_id, t.price, t.size, t.taker_side) for p in parsed for t in p.trades]
    want = []
    for _, payload in lines:
        m = json.loads(payload)
        if m["type"] in ("match", "last_match"):
            want.append((m["product_id"], m["trade_id"], Decimal(m["price"]), Decimal(m["size"]),
                         TAKER[m["side"]]))  # fmt: skip
    assert got == want and len(got) == 107
    ids: defaultdict[str, list[int]] = defaultdict(list)
    for symbol, tid, *_ in got:
        ids[symbol].append(tid)
    for v in ids.values():  # trade ids are contiguous per product, last_match included
        assert v == list(range(v[0], v[0] + len(v)))
    assert ids["SKL-USD"][-1] == 1568319


def test_advanced_trade_feed(real_v3):
    cap = real_v3("cryptofeed/v3/COINBASE.jsonl.zst")
    assert cap.addr == {"COINBASE.ws.2": "wss://advanced-trade-ws.coinbase.com"}
    parsed = [parse(p) for _, _, p in cap.messages]
    assert Counter(p.kind for p in parsed) == {
        "at_l2_data": 775,
        "at_ticker": 160,
        "at_market_trades": 59,
        "at_heartbeats": 25,
        "at_candles": 6,
        "subscription_ack": 5,
    }
    ids: defaultdict[str, set[int]] = defaultdict(set)
    count = 0
    for p in parsed:
        for t in p.trades:
            ids[p.symbol].add(t.trade_id)
            count += 1
    assert count == 279
    for v in ids.values():  # snapshot and updates together cover a contiguous run
        assert sorted(v) == list(range(min(v), max(v) + 1))
    assert (min(ids["BTC-USD"]), max(ids["BTC-USD"])) == (1068571991, 1068572137)


def test_advanced_trade_side_is_the_makers(real_v3):
    """A taker buy lifts the ask: trades at the last ticker's best ask are taker buys."""
    best: dict[str, tuple[Decimal, Decimal]] = {}
    seen: Counter[tuple[str, str]] = Counter()
    for _, _, payload in real_v3("cryptofeed/v3/COINBASE.jsonl.zst").messages:
        m = json.loads(payload)
        for ev in m["events"]:
            for tk in ev.get("tickers", []):
                best[tk["product_id"]] = (Decimal(tk["best_bid"]), Decimal(tk["best_ask"]))
        p = parse(payload)
        if p.kind == "at_market_trades" and json.loads(payload)["events"][0]["type"] == "update":
            for t in p.trades:
                bid, ask = best[p.symbol]
                at = "ask" if t.price >= ask else "bid" if t.price <= bid else "inside"
                seen[(t.taker_side, at)] += 1
    assert seen == {("buy", "ask"): 49, ("sell", "bid"): 26, ("sell", "inside"): 2,
                    ("buy", "bid"): 1, ("buy", "inside"): 1}  # fmt: skip
