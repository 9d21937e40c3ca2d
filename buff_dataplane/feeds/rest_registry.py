"""The REST history client of each venue: :func:`history_for` (an async context manager).

It owns the ``httpx.AsyncClient`` it opens; tests and the capture may instead build a
venue client over their own client. A client is a
:class:`~buff_dataplane.feeds.history.HistoryClient` (the contract, with how each venue's
history is walked), built from ``(client, base_url, policy)``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Final

import httpx

from buff_dataplane.core.errors import ValidationError
from buff_dataplane.core.ids import validate_venue
from buff_dataplane.feeds.binance_spot.rest import BinanceSpotRest
from buff_dataplane.feeds.binance_usdm.rest import BinanceUsdmRest
from buff_dataplane.feeds.bybit_linear.rest import BybitLinearRest
from buff_dataplane.feeds.coinbase.rest import CoinbaseRest
from buff_dataplane.feeds.history import HistoryClient
from buff_dataplane.feeds.kraken.rest import KrakenRest
from buff_dataplane.feeds.okx_swap.rest import OkxSwapRest
from buff_dataplane.feeds.rest_common import RestPolicy

_CLIENTS: Final[Mapping[str, type[HistoryClient]]] = {
    BinanceSpotRest.venue: BinanceSpotRest,
    BinanceUsdmRest.venue: BinanceUsdmRest,
    BybitLinearRest.venue: BybitLinearRest,
    CoinbaseRest.venue: CoinbaseRest,
    KrakenRest.venue: KrakenRest,
    OkxSwapRest.venue: OkxSwapRest,
}


def rest_venues() -> tuple[str, ...]:
    """The venues with a REST history client, sorted."""
    return tuple(sorted(_CLIENTS))


def default_rest_endpoint(venue: str) -> str:
    return _client_class(venue).default_base_url


def _client_class(venue: str) -> type[HistoryClient]:
    validate_venue(venue)
    try:
        return _CLIENTS[venue]
    except KeyError:
        raise ValidationError(
            f"venue {venue} has no REST history client yet: "
            f"clients exist for {', '.join(sorted(_CLIENTS))}"
        ) from None


@contextlib.asynccontextmanager
async def history_for(
    venue: str, endpoint: str | None = None, policy: RestPolicy | None = None
) -> AsyncIterator[HistoryClient]:
    """A REST client of ``venue`` at ``endpoint`` (default: the venue's own URL)."""
    cls = _client_class(venue)
    base = endpoint or cls.default_base_url
    if not base.startswith(("http://", "https://")):
        raise ValidationError(f"REST endpoint {base!r} is not an http(s) URL")
    policy = policy or RestPolicy()
    async with httpx.AsyncClient(timeout=policy.timeout_s) as client:
        yield cls(client, base, policy)
