"""Every message of the real Kraken v1 recording parses (it holds book data, no trades)."""

from __future__ import annotations

from collections import Counter

import pytest

from buff_dataplane.feeds.kraken.parse import parse

pytestmark = pytest.mark.real_fixtures


def test_every_v1_message_parses(real_messages):
    lines = [(n, p) for n, p in real_messages("cryptofeed/KRAKEN.ws.50.0") if p]
    parsed = [parse(p) for _, p in lines]
    assert len(parsed) == 4321
    assert Counter(p.kind for p in parsed) == {
        "book_update_v1": 4269,
        "heartbeat_v1": 31,
        "book_snapshot_v1": 10,
        "subscription_ack": 10,
        "system_status_v1": 1,
    }
    assert not any(p.trades for p in parsed)
    assert {p.symbol for p in parsed} == {
        "WAVES-EUR", "XMR-USD", "KSM-BTC", "GRT-ETH", "SC-EUR",
        "ETH-CHF", "OCEAN-BTC", "OMG-USD", "BTC-CHF", "ADA-BTC", None,
    }  # fmt: skip
    books = [p.event_ts_exchange_ms for p in parsed if p.channel == "depth"]
    assert all(ts is not None for ts in books)
    assert (min(books), max(books)) == (1618678129215, 1618678163334)
