"""ws_adapter_for: one WebSocket adapter per live venue, each keeping the contract."""

from __future__ import annotations

import pytest

from buff_dataplane.core.errors import ValidationError
from buff_dataplane.feeds.registry import parser_for
from buff_dataplane.feeds.ws_registry import ws_adapter_for, ws_venues


def test_the_live_venues_are_the_binance_markets_sorted():
    assert ws_venues() == ("binance-spot", "binance-usdm")


@pytest.mark.parametrize("venue", ["kraken", "coinbase", "bybit-linear", "okx-swap"])
def test_a_known_venue_without_an_adapter_is_named_with_those_that_exist(venue):
    with pytest.raises(ValidationError) as info:
        ws_adapter_for(venue)
    assert str(info.value) == (
        f"venue {venue} has no WebSocket adapter yet, so it cannot be captured live: "
        "adapters exist for binance-spot, binance-usdm"
    )


@pytest.mark.parametrize("venue", ["../x", "", "BINANCE-SPOT", "binance"])
def test_a_malformed_or_unknown_venue_is_refused(venue):
    with pytest.raises(ValidationError, match="venue"):
        ws_adapter_for(venue)


@pytest.mark.parametrize("venue", ["binance-spot", "binance-usdm"])
def test_every_plan_carries_symbols_the_venue_parser_maps_and_is_deterministic(venue):
    adapter = ws_adapter_for(venue)
    assert adapter.venue == venue
    assert adapter.default_endpoint.startswith("wss://")
    assert adapter.rotate_after_s is not None and 0 < adapter.rotate_after_s < 24 * 3600
    assert adapter.keepalive is None  # Binance's server pings; the client only answers
    parser = parser_for(venue)
    symbols = ["BTC-USDT", "ETH-USDT"] if venue == "binance-spot" else ["BTC-USDT-PERP"]
    venue_symbols = [parser.to_venue(s) for s in symbols]
    plans = adapter.plan_connections(venue_symbols, list(adapter.channels))
    assert plans == adapter.plan_connections(list(reversed(venue_symbols)), adapter.channels)
    carried = {s for p in plans for s in p.venue_symbols}
    assert sorted(parser.to_canonical(s) for s in carried) == sorted(symbols)
    assert len({p.name for p in plans}) == len(plans)
    for request_id, plan in enumerate(plans, 1):
        assert plan.url("ws://127.0.0.1:9/").startswith("ws://127.0.0.1:9/")
        assert all(isinstance(m, str) for m in plan.subscribe(request_id))
