"""The WebSocket adapter of each venue: :func:`ws_adapter_for` (see :mod:`.ws_base`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from buff_dataplane.core.errors import ValidationError
from buff_dataplane.core.ids import validate_venue
from buff_dataplane.feeds.binance_spot import ws as binance_spot
from buff_dataplane.feeds.binance_usdm import ws as binance_usdm
from buff_dataplane.feeds.bybit_linear import ws as bybit_linear
from buff_dataplane.feeds.coinbase import ws as coinbase
from buff_dataplane.feeds.kraken import ws as kraken
from buff_dataplane.feeds.okx_swap import ws as okx_swap
from buff_dataplane.feeds.ws_base import WsAdapter

_ADAPTERS: Final[Mapping[str, WsAdapter]] = {
    binance_spot.VENUE: binance_spot.ADAPTER,
    binance_usdm.VENUE: binance_usdm.ADAPTER,
    bybit_linear.VENUE: bybit_linear.ADAPTER,
    coinbase.VENUE: coinbase.ADAPTER,
    kraken.VENUE: kraken.ADAPTER,
    okx_swap.VENUE: okx_swap.ADAPTER,
}


def ws_adapter_for(venue: str) -> WsAdapter:
    """The adapter of ``venue``; ValidationError for an unknown venue or one without one."""
    validate_venue(venue)
    try:
        return _ADAPTERS[venue]
    except KeyError:
        raise ValidationError(
            f"venue {venue} has no WebSocket adapter yet, so it cannot be captured live: "
            f"adapters exist for {', '.join(ws_venues())}"
        ) from None


def ws_venues() -> tuple[str, ...]:
    """The venues with a WebSocket adapter (live capture), sorted."""
    return tuple(sorted(_ADAPTERS))
