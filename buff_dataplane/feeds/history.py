"""The REST history contract: what back-fill, the cross-check and the capture's symbol
check need of a venue (one client class per venue, registered in
:mod:`buff_dataplane.feeds.rest_registry`).

A venue's trade history is walked one way, its ``paging``:

==========  =================================================================================
``id``      ``trades(from_id=X)``: trades with ids >= X, ascending; and ``trades(start_ms=S,
            end_ms=E)``: the earliest trades in [S, E], ascending (Binance ``fromId`` /
            ``startTime``; OKX and Coinbase walk their newest-first ``after`` cursors inside
            the client and still answer ascending)
``time``    only ``trades(start_ms=S, end_ms=E)`` (Kraken ``since``); an id gap is walked by
            time between the trades around it
``recent``  only ``trades()``: the latest ``page_limit`` trades, ascending (Bybit
            ``recent-trade``); a gap older than that page cannot be filled
==========  =================================================================================

A page holds at most ``limit`` items; each item is the exact bytes the venue parser reads
as one trade (the back-fill's ``payload_raw``), with its id and exchange time alongside.
``retention_ms`` is how far back the venue serves history; ``max_window_ms`` the widest
``[start, end]`` one request may ask. Errors: :class:`~buff_dataplane.core.errors.FeedError`
subclasses from :mod:`buff_dataplane.feeds.rest_common` (retried by the back-fill), and
ValidationError for a request the venue refuses on its merits (an unknown symbol).
"""

from __future__ import annotations

from typing import ClassVar, Literal, Protocol

import httpx

from buff_dataplane.feeds.rest_common import Kline, KlineRules, RestPolicy, RestStats

Paging = Literal["id", "time", "recent"]


class HistoryPage(Protocol):
    @property
    def request(self) -> str: ...  # path + query as sent (the back-fill's origin)
    @property
    def items(self) -> tuple[bytes, ...]: ...
    @property
    def ids(self) -> tuple[int, ...]: ...
    @property
    def ts_ms(self) -> tuple[int, ...]: ...


class TradeHistory(Protocol):
    """A venue's REST trade history, as back-fill uses it."""

    @property
    def venue(self) -> str: ...
    @property
    def retention_ms(self) -> int: ...
    @property
    def max_window_ms(self) -> int: ...
    @property
    def page_limit(self) -> int: ...
    @property
    def paging(self) -> Paging: ...

    async def server_time(self) -> int: ...

    async def trades(
        self,
        venue_symbol: str,
        *,
        from_id: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int | None = None,
    ) -> HistoryPage: ...


class HistoryClient(TradeHistory, Protocol):
    """A venue's whole REST client: history, klines for cross-checks, its symbols."""

    default_base_url: ClassVar[str]
    intervals: ClassVar[tuple[str, ...]]
    kline_rules: ClassVar[KlineRules]

    def __init__(self, client: httpx.AsyncClient, base_url: str, policy: RestPolicy) -> None: ...

    @property
    def stats(self) -> RestStats: ...

    async def symbols(self) -> list[str]: ...

    async def klines(
        self, venue_symbol: str, interval: str, start_ms: int, end_ms: int
    ) -> list[Kline]: ...
