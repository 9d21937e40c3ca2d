"""Binance REST history shared by USD-M futures and spot: :class:`BinanceRest`.

Both markets answer the same four endpoints under their own prefix (``/fapi/v1`` on
``fapi.binance.com``, ``/api/v3`` on ``api.binance.com``) with the same shapes::

    GET <prefix>/aggTrades     symbol, fromId | startTime/endTime, limit <= 1000
    GET <prefix>/klines        symbol, interval, startTime, endTime, limit (the 12 columns)
    GET <prefix>/exchangeInfo  symbols[].symbol / .status
    GET <prefix>/time          {"serverTime": ms}

and the same error body (``{"code": -1121, "msg": "Invalid symbol."}``) and weight header
(``X-MBX-USED-WEIGHT-1M``). A market is a subclass that states its facts as class
attributes: prefix, weights, limits, retention, the largest time window, its intervals,
its parser. Nothing here branches on the market.

A page of aggTrades comes back as an :class:`AggTradesPage`: the request exactly as sent,
each item re-serialized canonically (its own JSON, no insignificant whitespace, key order
and number text as sent; see :func:`~buff_dataplane.feeds.rest_common.compact_items`),
with its aggregate id ``a`` and trade time ``T``. Every item must pass the market's
parser as a ``restAggTrade``, and a page must be strictly increasing and contiguous in
``a`` (Binance's aggregate ids are contiguous per symbol), at or after ``fromId`` and
inside the time window asked for; anything else is a ``bad_response`` (retried, then
:class:`~buff_dataplane.feeds.rest_common.RestError`). A page shorter than ``limit`` is
legal: callers continue from the last id + 1 until they pass what they need, and an
empty page means there is nothing (yet) from there.

Retries, ``Retry-After``, 418/429 and the per-minute weight budget are
:mod:`buff_dataplane.feeds.rest_common`'s. A rejection is a ValidationError naming the
symbol and the venue's message.
"""

from __future__ import annotations

import itertools
from typing import Annotated, ClassVar, Final

import msgspec
from msgspec import Meta

from buff_dataplane.core.errors import PayloadRejected, ValidationError
from buff_dataplane.feeds.base import Parser, single_trade
from buff_dataplane.feeds.binance_schemas import PlainDec, TsMs
from buff_dataplane.feeds.history import Paging
from buff_dataplane.feeds.rest_common import (
    BadResponse,
    Kline,
    KlineRules,
    RestClient,
    compact_items,
)
from buff_dataplane.feeds.symbols import check_concatenated

WEIGHT_HEADER: Final = "X-MBX-USED-WEIGHT-1M"

Count = Annotated[int, Meta(ge=0, le=2**63 - 1)]
_KlineRow = tuple[
    TsMs, PlainDec, PlainDec, PlainDec, PlainDec, PlainDec, TsMs, PlainDec, Count, PlainDec,
    PlainDec, str,
]  # fmt: skip
_KLINE_ROWS: Final = msgspec.json.Decoder(list[_KlineRow])

__all__ = ["AggTradesPage", "BinanceRest", "Kline", "rejection_message"]


class AggTradesPage(msgspec.Struct, frozen=True, kw_only=True):
    """One aggTrades response: the request as sent and its items, in id order."""

    request: str  # path + query exactly as sent
    items: tuple[bytes, ...]  # each item's canonical JSON (the back-fill's payload_raw)
    ids: tuple[int, ...]  # aggregate trade ids `a`
    ts_ms: tuple[int, ...]  # trade times `T`, epoch ms


class _Error(msgspec.Struct, frozen=True):
    code: int
    msg: str


class _Symbol(msgspec.Struct, frozen=True):
    symbol: str
    status: str


class _ExchangeInfo(msgspec.Struct, frozen=True):
    symbols: list[_Symbol]


class _Time(msgspec.Struct, frozen=True):
    serverTime: int


_ERROR: Final = msgspec.json.Decoder(_Error)
_EXCHANGE_INFO: Final = msgspec.json.Decoder(_ExchangeInfo)
_TIME: Final = msgspec.json.Decoder(_Time)


def rejection_message(body: bytes) -> str | None:
    """``-1121 Invalid symbol.`` for the venue's error body; None for anything else."""
    try:
        err = _ERROR.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return None
    return f"{err.code} {err.msg}"


def decode_agg_trades(
    parser: Parser,
    body: bytes,
    request: str,
    lo_id: int | None,
    window: tuple[int, int] | None,
    limit: int,
) -> AggTradesPage:
    """An aggTrades body as a page, checked item by item with the market's ``parser``."""
    items = compact_items(body)
    if len(items) > limit:
        raise BadResponse(f"{len(items)} items for limit={limit}")
    ids: list[int] = []
    times: list[int] = []
    for i, item in enumerate(items):
        try:
            parsed = parser.parse(item)
            trade = single_trade(parsed)
        except PayloadRejected as exc:
            raise BadResponse(f"item {i} is not an aggTrades item: {exc}") from exc
        if parsed.kind != "restAggTrade" or trade is None:
            raise BadResponse(f"item {i} is a {parsed.kind} message, not an aggTrades item")
        ids.append(trade.trade_id)
        times.append(trade.ts_ms)
    for a, b in itertools.pairwise(ids):
        if b != a + 1:
            what = "not increasing" if b <= a else "not contiguous"
            raise BadResponse(f"aggregate ids {what}: {a} then {b}")
    if lo_id is not None and ids and ids[0] < lo_id:
        raise BadResponse(f"first aggregate id {ids[0]} is before fromId={lo_id}")
    if window is not None and times and not window[0] <= min(times) <= max(times) <= window[1]:
        raise BadResponse(
            f"trade times {min(times)}..{max(times)} outside the window {window[0]}..{window[1]}"
        )
    return AggTradesPage(request=request, items=tuple(items), ids=tuple(ids), ts_ms=tuple(times))


def decode_klines(body: bytes) -> list[Kline]:
    """The 12-column klines, in open-time order."""
    try:
        rows = _KLINE_ROWS.decode(body)
    except msgspec.ValidationError as exc:
        raise BadResponse(f"not the 12-column klines: {exc}") from exc
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise BadResponse(f"not JSON ({exc})") from exc
    out = [
        Kline(
            open_time_ms=r[0],
            open=r[1],
            high=r[2],
            low=r[3],
            close=r[4],
            volume=r[5],
            close_time_ms=r[6],
            quote_volume=r[7],
            trade_count=r[8],
            taker_buy_volume=r[9],
            taker_buy_quote_volume=r[10],
        )
        for r in rows
    ]
    for r in rows:
        if r[6] < r[0]:
            raise BadResponse(f"kline {r[0]}: close time {r[6]} before open")
    for a, b in itertools.pairwise(rows):
        if b[0] <= a[6]:
            raise BadResponse(f"klines out of order: {a[0]} then {b[0]}")
    return out


def _decode_symbols(body: bytes) -> list[str]:
    try:
        info = _EXCHANGE_INFO.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise BadResponse(f"not exchangeInfo: {exc}") from exc
    return sorted(s.symbol for s in info.symbols if s.status == "TRADING")


def _decode_time(body: bytes) -> int:
    try:
        return _TIME.decode(body).serverTime
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise BadResponse(f"not a server time: {exc}") from exc


class BinanceRest(RestClient):
    """The REST endpoints this product uses on one Binance market, over one RestSession.

    ``weight_limit_1m`` overrides the venue's per-minute weight limit (a test simulator
    may run with a smaller one).
    """

    venue: ClassVar[str]
    parser: ClassVar[Parser]
    default_base_url: ClassVar[str]
    prefix: ClassVar[str]  # "/fapi/v1", "/api/v3"
    retention_ms: ClassVar[int]  # older history cannot be queried
    max_window_ms: ClassVar[int]  # endTime - startTime at most
    page_limit: ClassVar[int] = 1000
    paging: ClassVar[Paging] = "id"  # fromId, or startTime/endTime (feeds.history)
    kline_rules: ClassVar[KlineRules] = KlineRules()  # a kline per bucket, opened by a trade
    klines_limit: ClassVar[int]
    weight_limit_1m: ClassVar[int]
    intervals: ClassVar[tuple[str, ...]]
    agg_trades_weight: ClassVar[int]
    klines_weight: ClassVar[int]  # at klines_limit
    exchange_info_weight: ClassVar[int]
    time_weight: ClassVar[int] = 1
    weight_header: ClassVar[str | None] = WEIGHT_HEADER
    rejection = staticmethod(rejection_message)

    def _venue_symbol(self, value: str) -> str:
        return check_concatenated(self.venue, value)

    async def trades(
        self,
        venue_symbol: str,
        *,
        from_id: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int | None = None,
    ) -> AggTradesPage:
        """The history contract's page (feeds.history): an aggTrades page."""
        return await self.agg_trades(
            venue_symbol,
            from_id=from_id,
            start_ms=start_ms,
            end_ms=end_ms,
            limit=self.page_limit if limit is None else limit,
        )

    async def agg_trades(
        self,
        venue_symbol: str,
        *,
        from_id: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 1000,
    ) -> AggTradesPage:
        """One page of aggregated trades from ``from_id``, or within [start_ms, end_ms].

        With neither, the venue returns its most recent trades. Both bounds are inclusive.
        """
        symbol = self._venue_symbol(venue_symbol)
        if not 1 <= limit <= self.page_limit:
            raise ValidationError(f"aggTrades limit={limit}: expected 1..{self.page_limit}")
        if from_id is not None and (start_ms is not None or end_ms is not None):
            raise ValidationError("aggTrades: give fromId or startTime/endTime, not both")
        if from_id is not None and from_id < 0:
            raise ValidationError(f"aggTrades fromId={from_id}: expected >= 0")
        if start_ms is not None and end_ms is not None:
            if end_ms < start_ms:
                raise ValidationError(f"aggTrades window {start_ms}..{end_ms} is inverted")
            if end_ms - start_ms > self.max_window_ms:
                raise ValidationError(
                    f"aggTrades window {start_ms}..{end_ms} spans {end_ms - start_ms} ms: "
                    f"the venue allows at most {self.max_window_ms}"
                )
        query = [f"symbol={symbol}"]
        for name, value in (("fromId", from_id), ("startTime", start_ms), ("endTime", end_ms)):
            if value is not None:
                query.append(f"{name}={int(value)}")
        query.append(f"limit={limit}")
        request = f"{self.prefix}/aggTrades?{'&'.join(query)}"
        window = None
        if start_ms is not None or end_ms is not None:
            window = (start_ms or 0, end_ms if end_ms is not None else 2**62)

        def decode(body: bytes) -> AggTradesPage:
            return decode_agg_trades(self.parser, body, request, from_id, window, limit)

        return await self.session.get(
            request, weight=self.agg_trades_weight, decode=decode, subject=f"symbol {symbol}"
        )

    async def klines(
        self, venue_symbol: str, interval: str, start_ms: int, end_ms: int
    ) -> list[Kline]:
        """The klines opening in [start_ms, end_ms), paging by ``klines_limit``.

        The venue's last kline is the still-open one: a range reaching past now ends
        with a partial bar.
        """
        symbol = self._venue_symbol(venue_symbol)
        if interval not in self.intervals:
            raise ValidationError(
                f"{self.venue} has no {interval!r} klines: expected one of "
                f"{', '.join(self.intervals)}"
            )
        if end_ms <= start_ms:
            raise ValidationError(f"klines range {start_ms}..{end_ms} is inverted or empty")
        out: list[Kline] = []
        cursor = start_ms
        while cursor < end_ms:
            request = (
                f"{self.prefix}/klines?symbol={symbol}&interval={interval}&startTime={cursor}"
                f"&endTime={end_ms - 1}&limit={self.klines_limit}"
            )
            page = await self.session.get(
                request, weight=self.klines_weight, decode=decode_klines, subject=f"symbol {symbol}"
            )
            out.extend(k for k in page if cursor <= k.open_time_ms < end_ms)
            if len(page) < self.klines_limit:
                break
            following = (page[-1].close_time_ms or page[-1].open_time_ms) + 1
            if following <= cursor:  # no progress: the page ended before the cursor
                break
            cursor = following
        return out

    async def symbols(self) -> list[str]:
        """The venue symbols in status TRADING, sorted (from exchangeInfo)."""
        return await self.session.get(
            f"{self.prefix}/exchangeInfo", weight=self.exchange_info_weight, decode=_decode_symbols
        )

    async def server_time(self) -> int:
        """The venue's clock, UTC epoch ms: what has happened there."""
        return await self.session.get(
            f"{self.prefix}/time", weight=self.time_weight, decode=_decode_time
        )
