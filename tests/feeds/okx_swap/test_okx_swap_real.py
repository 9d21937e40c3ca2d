"""Every message of the real OKX recording is classified: swaps parse, other products are named."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest

from buff_dataplane.core.errors import PayloadRejected
from buff_dataplane.feeds.okx_swap.parse import parse

pytestmark = pytest.mark.real_fixtures


def test_every_message_is_a_swap_message_or_another_products(real_messages):
    lines = real_messages("cryptofeed/OKX.ws.1.0")
    kinds: Counter[str] = Counter()
    others: Counter[str] = Counter()
    trades = []
    for _, payload in lines:
        try:
            p = parse(payload)
        except PayloadRejected as exc:
            assert exc.reason == "other_product", exc
            others[exc.detail.split(" is ")[0]] += 1
            continue
        kinds[p.kind] += 1
        assert p.symbol == "UNI-USD-PERP"
        trades += p.trades
    assert len(lines) == 410
    assert kinds == {"books": 93, "subscription_ack": 6, "tickers": 1, "trades": 1}
    assert others == {"'BTC-USDT'": 198, "'BTC-USD-220527'": 111}
    [t] = trades
    assert (t.trade_id, t.price, t.size, t.taker_side, t.ts_ms) == (
        12883020, Decimal("5.123"), Decimal("100"), "sell", 1652459215150,
    )  # fmt: skip
