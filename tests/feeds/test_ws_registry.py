"""ws_adapter_for: one WebSocket adapter per venue, each keeping the contract; and every
venue has the rest of its live kit (a REST history client, a simulator dialect)."""

from __future__ import annotations

import pytest

from buff_dataplane.core.errors import ValidationError
from buff_dataplane.core.ids import VENUES
from buff_dataplane.feeds.registry import parser_for
from buff_dataplane.feeds.rest_registry import rest_venues
from buff_dataplane.feeds.ws_registry import ws_adapter_for, ws_venues
from buff_dataplane.sim.dialects import dialect_venues

SYMBOLS = {
    "binance-spot": ["BTC-USDT", "ETH-USDT"],
    "binance-usdm": ["BTC-USDT-PERP"],
    "bybit-linear": ["BTC-USDT-PERP", "ETH-USDT-PERP"],
    "coinbase": ["BTC-USD", "ETH-USD"],
    "kraken": ["BTC-USD", "ETH-USD"],
    "okx-swap": ["BTC-USDT-PERP", "ETH-USDT-PERP"],
}


def test_every_venue_has_an_adapter_a_rest_client_and_a_simulator_dialect():
    assert ws_venues() == rest_venues() == dialect_venues() == tuple(sorted(VENUES))
    assert sorted(SYMBOLS) == sorted(VENUES)


@pytest.mark.parametrize("venue", ["../x", "", "BINANCE-SPOT", "binance", "nasdaq"])
def test_a_malformed_or_unknown_venue_is_refused(venue):
    with pytest.raises(ValidationError, match="venue"):
        ws_adapter_for(venue)


@pytest.mark.parametrize("venue", sorted(SYMBOLS))
def test_every_plan_carries_symbols_the_venue_parser_maps_and_is_deterministic(venue):
    adapter = ws_adapter_for(venue)
    assert adapter.venue == venue
    assert adapter.default_endpoint.startswith("wss://")
    assert adapter.rotate_after_s is None or 0 < adapter.rotate_after_s <= 24 * 3600
    assert adapter.keepalive is None or adapter.keepalive.interval_s > 0
    parser = parser_for(venue)
    symbols = SYMBOLS[venue]
    venue_symbols = [parser.to_venue(s) for s in symbols]
    plans = adapter.plan_connections(venue_symbols, list(adapter.channels))
    assert plans == adapter.plan_connections(list(reversed(venue_symbols)), adapter.channels)
    carried = {s for p in plans for s in p.venue_symbols}
    assert sorted(parser.to_canonical(s) for s in carried) == sorted(symbols)
    assert len({p.name for p in plans}) == len(plans)
    for request_id, plan in enumerate(plans, 1):
        assert plan.url("ws://127.0.0.1:9/").startswith("ws://127.0.0.1:9")
        assert all(isinstance(m, str) for m in plan.subscribe(request_id))


@pytest.mark.parametrize(
    ("venue", "keepalive"),
    [("binance-usdm", None), ("binance-spot", None), ("bybit-linear", '{"op":"ping"}'),
     ("okx-swap", "ping"), ("coinbase", None)],
)  # fmt: skip
def test_the_venues_that_need_an_application_ping_have_one(venue, keepalive):
    got = ws_adapter_for(venue).keepalive
    assert (got.message if got else None) == keepalive
