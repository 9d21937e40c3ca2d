"""Every message of the real USD-M recordings parses; trade ids and counts are exact."""

from __future__ import annotations

from collections import Counter, defaultdict
from decimal import Decimal
from itertools import pairwise

import pytest

from buff_dataplane.core.errors import PayloadRejected
from buff_dataplane.core.ids import validate_symbol
from buff_dataplane.feeds.base import Parsed
from buff_dataplane.feeds.binance_usdm.parse import parse

pytestmark = pytest.mark.real_fixtures


def parse_all(lines: list[tuple[int, bytes]]) -> tuple[list[Parsed], list[tuple[int, str]]]:
    parsed: list[Parsed] = []
    rejected: list[tuple[int, str]] = []
    for line_no, payload in lines:
        try:
            parsed.append(parse(payload))
        except PayloadRejected as exc:
            rejected.append((line_no, str(exc)))
    return parsed, rejected


def assert_consistent(parsed: list[Parsed]) -> None:
    for p in parsed:
        assert (bool(p.trades)) == (p.channel == "trade")
        assert (p.symbol is None) == (p.venue_symbol is None)
        if p.symbol is not None:
            validate_symbol(p.symbol)
        if bool(p.trades):
            assert p.event_ts_exchange_ms == p.trades[0].ts_ms


def test_cryptofeed_futures_combined_stream(real_messages):
    lines = real_messages("cryptofeed/BINANCE_FUTURES.ws.1.0")
    parsed, rejected = parse_all(lines)

    assert rejected == []
    assert len(parsed) == 1535
    assert Counter(p.kind for p in parsed) == {
        "depthUpdate": 764,
        "bookTicker": 613,
        "aggTrade": 91,
        "kline": 67,
    }
    assert {p.symbol for p in parsed} == {
        "SUSHI-USDT-PERP",
        "AKRO-USDT-PERP",
        "KEEP-USDT-PERP",
        "CTK-USDT-PERP",
    }
    assert all(p.event_ts_exchange_ms is not None for p in parsed)
    assert_consistent(parsed)
    ids: dict[str | None, list[int]] = defaultdict(list)
    for p in parsed:
        if bool(p.trades):
            ids[p.symbol].append(p.trades[0].trade_id)
    assert {s: (v[0], v[-1], len(v)) for s, v in ids.items()} == {
        "CTK-USDT-PERP": (16599292, 16599329, 38),
        "AKRO-USDT-PERP": (14888302, 14888309, 8),
        "SUSHI-USDT-PERP": (87353230, 87353269, 40),
        "KEEP-USDT-PERP": (1211537, 1211541, 5),
    }
    for v in ids.values():  # aggTrade ids are contiguous per symbol
        assert v == list(range(v[0], v[0] + len(v)))


def test_cryptofeed_futures_rest_depth_snapshots(real_messages):
    lines = real_messages("cryptofeed/BINANCE_FUTURES.http.0.0")
    parsed, rejected = parse_all(lines)

    # The file ends with an empty line: not a message, and the only line refused.
    assert [n for n, payload in lines if not payload] == [5]
    assert [n for n, _ in rejected] == [5]
    assert [(p.kind, p.channel, p.symbol, p.event_ts_exchange_ms) for p in parsed] == [
        ("depthSnapshot", "depth", None, 1626992741261),
        ("depthSnapshot", "depth", None, 1626992741238),
        ("depthSnapshot", "depth", None, 1626992742012),
        ("depthSnapshot", "depth", None, 1626992741972),
    ]


def test_hftbacktest_usdm_day_tail(real_messages):
    parsed, rejected = parse_all(real_messages("hftbacktest/usdm/btcusdt_20240808.gz"))

    assert rejected == []
    assert Counter(p.kind for p in parsed) == {
        "bookTicker": 66089,
        "trade": 21313,
        "depthUpdate": 6551,
        "depthSnapshot": 1,
    }
    assert {p.symbol for p in parsed} == {"BTC-USDT-PERP", None}  # None: the REST snapshot
    assert_consistent(parsed)
    trades = [p.trades[0] for p in parsed if bool(p.trades)]
    ids = [t.trade_id for t in trades]
    assert ids == list(range(5266583935, 5266605247 + 1))  # contiguous raw trade ids
    assert Counter(t.taker_side for t in trades) == {"sell": 11697, "buy": 9616}
    assert all(a.ts_ms <= b.ts_ms for a, b in pairwise(trades))
    assert (trades[0].ts_ms, trades[-1].ts_ms) == (1723161256322, 1723161599643)
    # Exact decimal sums: a float path would not land on these.
    assert sum((t.size for t in trades), Decimal(0)) == Decimal("2429.366")
    assert sum((t.size * t.price for t in trades), Decimal(0)) == Decimal("149845680.88980")
