"""Simulator dialects: one venue's protocol each, over the shared tape and faults.

``SimConfig(venue=...)`` chooses one (:func:`dialect_for`); see :mod:`.base` for what a
dialect is and :mod:`.binance` for the Binance markets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from buff_dataplane.core.errors import ValidationError
from buff_dataplane.sim.dialects.base import Dialect, SimHost, Subscription
from buff_dataplane.sim.dialects.binance import BinanceSpotDialect, BinanceUsdmDialect
from buff_dataplane.sim.dialects.bybit import BybitLinearDialect
from buff_dataplane.sim.dialects.coinbase import CoinbaseDialect
from buff_dataplane.sim.dialects.kraken import KrakenDialect
from buff_dataplane.sim.dialects.okx import OkxSwapDialect

__all__ = ["Dialect", "SimHost", "Subscription", "dialect_for", "dialect_venues"]

_DIALECTS: Final[Mapping[str, Dialect]] = {
    BinanceSpotDialect.venue: BinanceSpotDialect(),
    BinanceUsdmDialect.venue: BinanceUsdmDialect(),
    BybitLinearDialect.venue: BybitLinearDialect(),
    CoinbaseDialect.venue: CoinbaseDialect(),
    KrakenDialect.venue: KrakenDialect(),
    OkxSwapDialect.venue: OkxSwapDialect(),
}


def dialect_for(venue: str) -> Dialect:
    """The simulator dialect of ``venue``; ValidationError naming the ones that exist."""
    try:
        return _DIALECTS[venue]
    except (KeyError, TypeError):
        raise ValidationError(
            f"the simulator does not speak {venue!r}: dialects exist for "
            f"{', '.join(dialect_venues())}"
        ) from None


def dialect_venues() -> tuple[str, ...]:
    """The venues the simulator can play, sorted."""
    return tuple(sorted(_DIALECTS))
