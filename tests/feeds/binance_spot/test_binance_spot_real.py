"""Every message of the real spot recordings parses; trade ids and counts are exact."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from itertools import pairwise

import pytest

from buff_dataplane.core.errors import PayloadRejected
from buff_dataplane.core.ids import validate_symbol
from buff_dataplane.feeds.base import Parsed
from buff_dataplane.feeds.binance_spot.parse import parse

pytestmark = pytest.mark.real_fixtures


def parse_all(lines: list[tuple[int, bytes]]) -> tuple[list[Parsed], list[tuple[int, str]]]:
    parsed: list[Parsed] = []
    rejected: list[tuple[int, str]] = []
    for line_no, payload in lines:
        try:
            parsed.append(parse(payload))
        except PayloadRejected as exc:
            rejected.append((line_no, exc.reason))
    return parsed, rejected


def assert_consistent(parsed: list[Parsed]) -> None:
    for p in parsed:
        assert (bool(p.trades)) == (p.channel == "trade")
        assert (p.symbol is None) == (p.venue_symbol is None)
        if p.symbol is not None:
            validate_symbol(p.symbol)
        # Only spot's bookTicker and the REST depth snapshot carry no time.
        assert (p.event_ts_exchange_ms is None) == (p.kind in ("bookTicker", "depthSnapshot"))


def test_cryptofeed_spot_combined_stream(real_messages):
    lines = real_messages("cryptofeed/BINANCE.ws.1.0")
    parsed, rejected = parse_all(lines)

    # The file ends with an empty line: not a message, and the only line refused.
    assert [n for n, payload in lines if not payload] == [267]
    assert rejected == [(267, "not_json")]
    assert len(parsed) == 265
    assert Counter(p.kind for p in parsed) == {
        "depthUpdate": 177,
        "bookTicker": 84,
        "aggTrade": 2,
        "kline": 2,
    }
    assert Counter(p.symbol for p in parsed) == {
        "NKN-USDT": 226,
        "LRC-BTC": 26,
        "BLZ-ETH": 11,
        "RUNE-EUR": 2,
    }
    assert_consistent(parsed)
    trades = [(p.symbol, p.trades[0]) for p in parsed if bool(p.trades)]
    assert [(s, t.trade_id, t.price, t.taker_side) for s, t in trades] == [
        ("NKN-USDT", 15683430, Decimal("0.35280000"), "buy"),
        ("LRC-BTC", 9213679, Decimal("0.00000638"), "buy"),
    ]


def test_hftbacktest_spot_day_tail(real_messages):
    parsed, rejected = parse_all(real_messages("hftbacktest/spot/btcusdt_20240808.gz"))

    assert rejected == []
    assert Counter(p.kind for p in parsed) == {
        "bookTicker": 28040,
        "trade": 9757,
        "depthUpdate": 3451,
        "depthSnapshot": 1,
    }
    assert {p.symbol for p in parsed} == {"BTC-USDT", None}  # None: the REST snapshot
    assert_consistent(parsed)
    trades = [p.trades[0] for p in parsed if bool(p.trades)]
    assert [t.trade_id for t in trades] == list(range(3735683259, 3735693015 + 1))
    assert Counter(t.taker_side for t in trades) == {"sell": 5654, "buy": 4103}
    assert all(a.ts_ms <= b.ts_ms for a, b in pairwise(trades))
    assert sum((t.size for t in trades), Decimal(0)) == Decimal("212.03315000")
