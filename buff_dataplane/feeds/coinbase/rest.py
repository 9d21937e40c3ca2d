"""Coinbase Exchange REST: trade history by id cursor for back-fill, candles for cross-checks.

Endpoints (base ``https://api.exchange.coinbase.com``, public; exchanges.md 5.5)::

    GET /products/{id}/trades    after | before (trade id cursors), limit <= 1000
    GET /products/{id}/candles   granularity (s), start, end (ISO 8601); <= 300 rows
    GET /products                [{"id":"BTC-USD","status":"online",...}, ...]
    GET /time                    {"iso":"2015-01-07T23:47:25.201Z","epoch":1420674445.201}

**Trades** come newest first. The cursor is the trade id: ``after=X`` answers the
``limit`` newest trades with ids below X, and the response headers ``CB-BEFORE`` /
``CB-AFTER`` name the first (newest) and last (oldest) id of the page. There is no time
paging at all. This client answers the history contract (:mod:`~buff_dataplane.feeds.
history`, paging ``id``) ascending:

* ``trades(from_id=X, limit=L)`` asks ``after=X+L``: the L newest trades below X+L, which
  (ids being distinct integers) are every trade with an id in [X, X+L), plus older ones
  when fewer exist; those are left out. One request per page, whatever the ids' density.
  A short page (the venue's history ends there) whose oldest id is above X would say the
  history starts inside [X, X+L); it is checked with one more request (``after`` = that
  id, ``limit=1``), and a page cut short is a ``bad_response`` :class:`~buff_dataplane.
  feeds.rest_common.RestError`, never taken as a hole;
* ``trades()``: the latest page;
* ``trades(start_ms=...)`` / ``end_ms``: refused with a ValidationError. The back-fill then
  marks a gap that has no trade ids (a downtime window with no trade on either side, a
  range edge before the first trade) ``UNRESOLVED`` with that reason; gaps found by an id
  jump or a heartbeat's ``last_trade_id`` always have their ids.

Every item must pass the coinbase parser as a ``rest_trade`` (its ``side`` is the maker's,
as on the socket), the ids of a body must be strictly decreasing and below the cursor;
else ``bad_response`` (retried, then RestError).

**Candles** ``[time_s, low, high, open, close, volume]`` (note the order), newest first, at
most 300 per request (more is refused), granularity 60, 300, 900, 3600, 21600 or 86400 s.
Values are JSON numbers in the venue's documentation, maybe strings today: both are
accepted, and their text is kept exactly (no float). The venue sends **no candle for a
bucket without trades** (``KlineRules(omits_empty=True)``); candles have no quote volume,
trade count or taker split (those Kline fields stay None and are not compared).

**Limits and errors**: public REST allows 10 requests per second per IP with bursts of 15
(a token bucket): the client keeps to that bucket itself, on the injected clock and
sleep; HTTP 429 is retried with backoff (no ``Retry-After`` is documented; one sent is
honoured). A rejection is ``{"message": "NotFound"}`` with a 4xx status: a
ValidationError naming the product and the venue's message.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import random
import re
from collections.abc import Callable, Mapping
from typing import ClassVar, Final, TypeVar

import httpx
import msgspec
from msgspec import Raw

from buff_dataplane.core.errors import PayloadRejected, ValidationError
from buff_dataplane.feeds.base import single_trade
from buff_dataplane.feeds.coinbase.parse import PARSER
from buff_dataplane.feeds.common import PLAIN_DECIMAL, iso_ms
from buff_dataplane.feeds.history import Paging
from buff_dataplane.feeds.rest_common import (
    BadResponse,
    Clock,
    Kline,
    KlineRules,
    RestClient,
    RestError,
    RestPolicy,
    Sleep,
    compact_items,
    wall_ms,
)

_T = TypeVar("_T")

VENUE: Final = "coinbase"
GRANULARITY_S: Final[Mapping[str, int]] = {
    "1m": 60, "5m": 300, "15m": 900, "1h": 3_600, "6h": 21_600, "1d": 86_400,
}  # fmt: skip
CANDLES_LIMIT: Final = 300
TRADES_LIMIT: Final = 1000
REQUESTS_PER_S: Final = 10.0
BURST: Final = 15
# The venue serves every trade since listing: a century stands for "no retention limit".
FULL_HISTORY_MS: Final = 100 * 365 * 86_400_000

__all__ = ["CoinbaseRest", "TradesPage", "rejection_message"]


class TradesPage(msgspec.Struct, frozen=True, kw_only=True):
    """One trades page, ascending: the request as sent, and the items' canonical JSON."""

    request: str  # path + query exactly as sent
    items: tuple[bytes, ...]  # each a ``rest_trade`` (the back-fill's payload_raw)
    ids: tuple[int, ...]
    ts_ms: tuple[int, ...]


class _Page(msgspec.Struct, frozen=True):
    """A body as sent (newest first), checked: all of its items, before any filtering."""

    items: tuple[bytes, ...]
    ids: tuple[int, ...]
    ts_ms: tuple[int, ...]


class _Error(msgspec.Struct, frozen=True):
    message: str


class _Product(msgspec.Struct, frozen=True):
    id: str
    status: str = "online"
    trading_disabled: bool = False


class _Time(msgspec.Struct, frozen=True):
    iso: str


_ERROR: Final = msgspec.json.Decoder(_Error)
_PRODUCTS: Final = msgspec.json.Decoder(list[_Product])
_TIME: Final = msgspec.json.Decoder(_Time)
_CANDLES: Final = msgspec.json.Decoder(list[tuple[int, Raw, Raw, Raw, Raw, Raw]])
_NUMBER: Final = msgspec.json.Decoder(str | int | float)
_MONEY_TEXT: Final = re.compile(
    rf"(?:{PLAIN_DECIMAL}|-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)"
)
_DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError)


def rejection_message(body: bytes) -> str | None:
    """``NotFound`` for the venue's error body ``{"message": ...}``; None for anything else."""
    try:
        return _ERROR.decode(body).message
    except _DECODE_ERRORS:
        return None


def iso_s(ms: int) -> str:
    """``2024-08-09T00:01:00Z``: a candle bound, whole seconds (floored)."""
    return dt.datetime.fromtimestamp(ms // 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def decode_trades(body: bytes, before_id: int | None, limit: int) -> _Page:
    """A trades body, newest first, every item a ``rest_trade`` with ids strictly falling."""
    items = compact_items(body)
    if len(items) > limit:
        raise BadResponse(f"{len(items)} items for limit={limit}")
    ids: list[int] = []
    times: list[int] = []
    for i, item in enumerate(items):
        try:
            parsed = PARSER.parse(item)
            trade = single_trade(parsed)
        except PayloadRejected as exc:
            raise BadResponse(f"item {i} is not a trades item: {exc}") from exc
        if parsed.kind != "rest_trade" or trade is None:
            raise BadResponse(f"item {i} is a {parsed.kind} message, not a trades item")
        ids.append(trade.trade_id)
        times.append(trade.ts_ms)
    for a, b in itertools.pairwise(ids):
        if b >= a:
            raise BadResponse(f"trade ids not newest first: {a} then {b}")
    if before_id is not None and ids and ids[0] >= before_id:
        raise BadResponse(f"trade id {ids[0]} is not below the cursor after={before_id}")
    return _Page(tuple(items), tuple(ids), tuple(times))


def _money(raw: Raw, where: str) -> str:
    """A candle value's exact text: a JSON number as written, or a string's content."""
    try:
        value = _NUMBER.decode(raw)
    except _DECODE_ERRORS as exc:
        raise BadResponse(f"{where}: not a number ({exc})") from exc
    text = value if isinstance(value, str) else bytes(raw).decode("ascii")
    if isinstance(value, bool) or _MONEY_TEXT.fullmatch(text) is None:
        raise BadResponse(f"{where}: {text!r} is not a decimal")
    return text


def decode_candles(body: bytes, granularity_s: int) -> list[Kline]:
    """Candle rows (newest first) as Klines in open-time order."""
    try:
        rows = _CANDLES.decode(body)
    except _DECODE_ERRORS as exc:
        raise BadResponse(f"not candles [time, low, high, open, close, volume]: {exc}") from exc
    out: list[Kline] = []
    for n, (t, low, high, open_, close, volume) in enumerate(reversed(rows)):
        where = f"candle {t}"
        if t % granularity_s:
            raise BadResponse(f"{where}: not aligned to {granularity_s} s")
        out.append(
            Kline(
                open_time_ms=t * 1000,
                open=_money(open_, f"{where} open"),
                high=_money(high, f"{where} high"),
                low=_money(low, f"{where} low"),
                close=_money(close, f"{where} close"),
                volume=_money(volume, f"{where} volume"),
                close_time_ms=(t + granularity_s) * 1000 - 1,
            )
        )
        if n and out[-1].open_time_ms <= out[-2].open_time_ms:
            raise BadResponse(f"candles not newest first at {t}")
    return out


def _decode_products(body: bytes) -> list[str]:
    try:
        products = _PRODUCTS.decode(body)
    except _DECODE_ERRORS as exc:
        raise BadResponse(f"not a products list: {exc}") from exc
    return sorted(p.id for p in products if p.status == "online" and not p.trading_disabled)


def _decode_time(body: bytes) -> int:
    try:
        return iso_ms(_TIME.decode(body).iso, ".iso")
    except (*_DECODE_ERRORS, PayloadRejected) as exc:
        raise BadResponse(f"not a server time: {exc}") from exc


class _Bucket:
    """The venue's token bucket (``rate`` per second, ``burst`` deep) kept on our side."""

    def __init__(self, rate: float, burst: int, now_ms: Clock) -> None:
        self.rate, self.burst, self._now_ms = rate, burst, now_ms
        self.tokens, self.at = float(burst), now_ms()

    def wait_s(self) -> float:
        """Take a token; the seconds to wait first (0 when one is there)."""
        now = self._now_ms()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate / 1000)
        self.at = now
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class CoinbaseRest(RestClient):
    """The Coinbase Exchange REST endpoints this product uses (see the module docstring)."""

    venue: ClassVar[str] = VENUE
    default_base_url: ClassVar[str] = "https://api.exchange.coinbase.com"
    retention_ms: ClassVar[int] = FULL_HISTORY_MS
    max_window_ms: ClassVar[int] = FULL_HISTORY_MS  # moot: no time paging
    page_limit: ClassVar[int] = TRADES_LIMIT
    paging: ClassVar[Paging] = "id"
    intervals: ClassVar[tuple[str, ...]] = tuple(GRANULARITY_S)
    kline_rules: ClassVar[KlineRules] = KlineRules(omits_empty=True)
    minute_spent_on_429: ClassVar[bool] = False  # a per-second limit: back off, then go on
    rejection = staticmethod(rejection_message)

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        policy: RestPolicy = RestPolicy(),
        *,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        now_ms: Clock = wall_ms,
        requests_per_s: float = REQUESTS_PER_S,
        burst: int = BURST,
    ) -> None:
        self._bucket = _Bucket(requests_per_s, burst, now_ms)
        weight = int(requests_per_s * 60)  # a request weighs 1
        super().__init__(
            client, base_url, policy, sleep=sleep, rng=rng, now_ms=now_ms, weight_limit_1m=weight
        )

    def _product(self, value: str) -> str:
        try:
            PARSER.to_canonical(value)
        except (PayloadRejected, ValidationError, TypeError):
            raise ValidationError(
                f"{VENUE} product {value!r} is not a product id like 'BTC-USD'"
            ) from None
        return value

    async def _get(self, request: str, decode: Callable[[bytes], _T], subject: str = "") -> _T:
        wait = self._bucket.wait_s()
        if wait > 0:
            self.stats.waits += 1
            self.stats.sleep_s += wait
            await self._sleep(wait)
        return await self.session.get(request, weight=1, decode=decode, subject=subject)

    async def _page(self, product: str, after: int | None, limit: int) -> tuple[str, _Page]:
        query = ([f"after={after}"] if after is not None else []) + [f"limit={limit}"]
        request = f"/products/{product}/trades?{'&'.join(query)}"

        def decode(body: bytes) -> _Page:
            return decode_trades(body, after, limit)

        return request, await self._get(request, decode, f"product {product}")

    async def trades(
        self,
        venue_symbol: str,
        *,
        from_id: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int | None = None,
    ) -> TradesPage:
        """Trades with ids in [from_id, from_id + limit), ascending; without ``from_id``
        the latest ``limit``. ``start_ms`` / ``end_ms``: ValidationError (no time paging)."""
        product = self._product(venue_symbol)
        if start_ms is not None or end_ms is not None:
            raise ValidationError(
                f"{VENUE} REST trades page by trade id only (cursor `after`), not by time: "
                "a gap without trade ids cannot be located in the venue's history"
            )
        limit = self.page_limit if limit is None else limit
        if not 1 <= limit <= self.page_limit:
            raise ValidationError(f"{VENUE} trades limit={limit}: expected 1..{self.page_limit}")
        if from_id is not None and from_id < 0:
            raise ValidationError(f"{VENUE} trades from_id={from_id}: expected >= 0")
        after = None if from_id is None else from_id + limit
        request, page = await self._page(product, after, limit)
        if from_id is not None and page.ids and len(page.ids) < limit and page.ids[-1] > from_id:
            await self._check_start(product, page.ids[-1], request)
        keep = [i for i, tid in enumerate(page.ids) if from_id is None or tid >= from_id]
        keep.reverse()
        return TradesPage(
            request=request,
            items=tuple(page.items[i] for i in keep),
            ids=tuple(page.ids[i] for i in keep),
            ts_ms=tuple(page.ts_ms[i] for i in keep),
        )

    async def _check_start(self, product: str, oldest: int, request: str) -> None:
        """A short page says the history starts at ``oldest``; nothing may be older."""
        probe, page = await self._page(product, oldest, 1)
        if page.ids:
            url = self.session.base_url + request
            raise RestError(
                f"GET {url}: a short page ends at trade id {oldest}, yet {probe} "
                f"has {page.ids[0]}: the page was cut short",
                reason="bad_response",
                attempts=1,
                url=url,
            )

    async def klines(
        self, venue_symbol: str, interval: str, start_ms: int, end_ms: int
    ) -> list[Kline]:
        """Candles opening in [start_ms, end_ms), ascending, ``CANDLES_LIMIT`` per request.

        Buckets without trades have no candle (``kline_rules.omits_empty``).
        """
        product = self._product(venue_symbol)
        if interval not in GRANULARITY_S:
            raise ValidationError(
                f"{VENUE} has no {interval!r} candles: expected one of {', '.join(self.intervals)}"
            )
        if end_ms <= start_ms:
            raise ValidationError(f"candles range {start_ms}..{end_ms} is inverted or empty")
        g = GRANULARITY_S[interval]
        step = g * 1000
        out: list[Kline] = []
        cursor = start_ms - start_ms % step
        while cursor < end_ms:
            last = min(cursor + (CANDLES_LIMIT - 1) * step, end_ms - 1)
            last -= last % step  # the last bucket's open: start..end are both included
            request = (
                f"/products/{product}/candles?granularity={g}"
                f"&start={iso_s(cursor)}&end={iso_s(last)}"
            )

            def decode(body: bytes, g: int = g) -> list[Kline]:
                return decode_candles(body, g)

            page = await self._get(request, decode, f"product {product}")
            out.extend(k for k in page if cursor <= k.open_time_ms <= last)
            cursor = last + step
        return [k for k in out if start_ms <= k.open_time_ms < end_ms]

    async def symbols(self) -> list[str]:
        """The product ids that are online and trading, sorted (from ``/products``)."""
        return await self._get("/products", _decode_products)

    async def server_time(self) -> int:
        """The venue's clock, UTC epoch ms (``/time``'s ``iso``, exact)."""
        return await self._get("/time", _decode_time)
