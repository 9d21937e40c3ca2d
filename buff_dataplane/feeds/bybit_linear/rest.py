"""Bybit v5 linear REST: the latest trades for back-fill, klines for cross-checks.

Endpoints (base ``https://api.bybit.com``, public, no key; exchanges.md 3.4 to 3.6)::

    GET /v5/market/recent-trade      category=linear, symbol, limit <= 1000 (no id, no time)
    GET /v5/market/kline             category, symbol, interval, start, end, limit <= 1000
    GET /v5/market/instruments-info  category, limit, cursor (nextPageCursor)
    GET /v5/market/time              result.timeNano

History is paged ``recent`` (:mod:`buff_dataplane.feeds.history`): the venue serves only
its latest ``limit`` trades and takes no id or time parameter, so a gap older than that
page cannot be filled over REST (the venue points at daily archive files on its website).
A page is answered ascending by ``time`` (the venue's ``list`` is newest first; it is
reversed, then sorted stably by time). Each item is kept as its compact JSON, the bytes a
back-fill stores, and must parse as a ``recentTrade`` of the asked symbol, once per
``execId``::

    {"execId":"a9188a0a-82bc-50de-be60-03eedbe3cdd7","symbol":"BTCUSDT","price":"65114.20",
     "size":"0.004","side":"Sell","time":"1786310819680","isBlockTrade":false,
     "isRPITrade":false,"seq":"753843954913"}

Klines: ``list`` newest first, rows of text ``[start, open, high, low, close, volume,
turnover]`` (linear: volume in base coin, turnover in quote); the first row is the still
open candle. They come back as :class:`~buff_dataplane.feeds.rest_common.Kline` in open
time order, ``quote_volume`` = turnover, no trade count and no taker split (None: not
compared). The venue opens a candle at the previous candle's close
(``KlineRules(open_is_previous_close=True)``) and sends a flat candle for a minute without
trades. A range of more than ``klines_limit`` candles is walked backwards from its end.

Errors: every answer is the envelope ``{"retCode", "retMsg", "result", "retExtInfo",
"time"}`` and ``retCode != 0`` is an error even in an HTTP 200: ``10006`` (too many
visits) and ``10016`` (server error) are retried like a 429 / 5xx
(:class:`~buff_dataplane.feeds.rest_common.VenueBusy`); any other code (``10001`` params
error, ``10029`` symbol invalid) is the venue refusing the request on its merits, a
ValidationError. HTTP 403 is the IP limit breached ("stop for at least 10 minutes"):
``banned``, never retried. HTTP 429 is retried (``Retry-After`` honoured when sent). The
IP limit is 600 requests per 5 s; the session's per-minute budget is set to 600 requests,
so no 5-s window can pass it. The per-UID ``X-Bapi-Limit*`` headers are not read.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Annotated, ClassVar, Final, TypeVar
from urllib.parse import quote

import msgspec
from msgspec import UNSET, Meta, Raw, UnsetType

from buff_dataplane.core.bars import TIMEFRAMES
from buff_dataplane.core.errors import PayloadRejected, ValidationError
from buff_dataplane.feeds.base import single_trade
from buff_dataplane.feeds.bybit_linear.parse import PARSER, VENUE
from buff_dataplane.feeds.common import PLAIN_DECIMAL, IntText
from buff_dataplane.feeds.history import Paging
from buff_dataplane.feeds.rest_common import (
    BadResponse,
    Kline,
    KlineRules,
    RestClient,
    VenueBusy,
    compact_items,
)
from buff_dataplane.feeds.symbols import check_concatenated

_T = TypeVar("_T")

# Our timeframe names -> the venue's interval codes (``1M`` has no fixed length).
INTERVALS: Final[dict[str, str]] = {
    "1m": "1", "3m": "3", "5m": "5", "15m": "15", "30m": "30", "1h": "60", "2h": "120",
    "4h": "240", "6h": "360", "12h": "720", "1d": "D", "1w": "W", "1M": "M",
}  # fmt: skip
# retCodes that mean "not now" rather than "not this": retried (VenueBusy).
BUSY_CODES: Final[dict[int, str]] = {10006: "rate_limited", 10016: "server_error"}
# The venue keeps no trade history over REST beyond the latest page: there is no age
# past which a request is pointless; the page itself decides (a century stands for it).
NO_RETENTION_LIMIT_MS: Final = 100 * 365 * 86_400_000

PlainDec = Annotated[str, Meta(pattern=f"^{PLAIN_DECIMAL}$")]
_KlineRow = tuple[IntText, PlainDec, PlainDec, PlainDec, PlainDec, PlainDec, PlainDec]

__all__ = ["BybitLinearRest", "RecentTradesPage", "rejection_message"]


class RecentTradesPage(msgspec.Struct, frozen=True, kw_only=True):
    """One ``recent-trade`` answer, ascending by time."""

    request: str  # path + query exactly as sent
    items: tuple[bytes, ...]  # each item's compact JSON (the back-fill's payload_raw)
    ids: tuple[int, ...]  # execId as its UUID's 128-bit value
    ts_ms: tuple[int, ...]  # trade times, epoch ms


class _Envelope(msgspec.Struct, frozen=True):
    retCode: int
    retMsg: str
    result: Raw = Raw(b"{}")
    time: int | UnsetType = UNSET


class _Trades(msgspec.Struct, frozen=True):
    rows: Raw = msgspec.field(name="list")


class _Klines(msgspec.Struct, frozen=True):
    rows: list[_KlineRow] = msgspec.field(name="list")


class _Instrument(msgspec.Struct, frozen=True):
    symbol: str
    status: str


class _Instruments(msgspec.Struct, frozen=True):
    rows: list[_Instrument] = msgspec.field(name="list")
    nextPageCursor: str = ""


class _Time(msgspec.Struct, frozen=True):
    timeNano: IntText


_ENVELOPE: Final = msgspec.json.Decoder(_Envelope)
_TRADES: Final = msgspec.json.Decoder(_Trades)
_KLINES: Final = msgspec.json.Decoder(_Klines)
_INSTRUMENTS: Final = msgspec.json.Decoder(_Instruments)
_TIME: Final = msgspec.json.Decoder(_Time)


def rejection_message(body: bytes) -> str | None:
    """``10001 params error: ...`` for the venue's envelope with an error; else None."""
    try:
        env = _ENVELOPE.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return None
    return None if env.retCode == 0 else f"{env.retCode} {env.retMsg}"


def open_envelope(
    body: bytes, decoder: msgspec.json.Decoder[_T], request: str, subject: str = ""
) -> _T:
    """The ``result`` of a 2xx answer; VenueBusy / ValidationError for a ``retCode``."""
    try:
        env = _ENVELOPE.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise BadResponse(f"not the venue's envelope: {exc}") from exc
    if env.retCode in BUSY_CODES:
        raise VenueBusy(f"retCode {env.retCode} {env.retMsg}", reason=BUSY_CODES[env.retCode])
    if env.retCode != 0:
        about = f" {subject}" if subject else ""
        raise ValidationError(
            f"{VENUE} rejected{about}: {env.retCode} {env.retMsg} (GET {request})"
        )
    try:
        return decoder.decode(env.result)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BadResponse(f"result is not what {request.partition('?')[0]} returns: {exc}") from exc


def decode_recent_trades(body: bytes, request: str, symbol: str, limit: int) -> RecentTradesPage:
    """A ``recent-trade`` answer as a page, item by item with the parser, ascending."""
    raw = open_envelope(body, _TRADES, request, f"symbol {symbol}").rows
    items = compact_items(bytes(raw))
    if len(items) > limit:
        raise BadResponse(f"{len(items)} items for limit={limit}")
    rows: list[tuple[int, int, bytes]] = []
    for i, item in enumerate(items):
        try:
            parsed = PARSER.parse(item)
            trade = single_trade(parsed)
        except PayloadRejected as exc:
            raise BadResponse(f"item {i} is not a recent-trade item: {exc}") from exc
        if parsed.kind != "recentTrade" or trade is None:
            raise BadResponse(f"item {i} is a {parsed.kind} message, not a recent-trade item")
        if parsed.venue_symbol != symbol:
            raise BadResponse(f"item {i} is a trade of {parsed.venue_symbol}, not {symbol}")
        rows.append((trade.ts_ms, trade.trade_id, item))
    if rows and rows[0][0] > rows[-1][0]:
        rows.reverse()  # newest first, as the venue sends it
    rows.sort(key=lambda r: r[0])  # stable: the venue's order within a millisecond
    ids = [r[1] for r in rows]
    if len(set(ids)) != len(ids):
        raise BadResponse("an execId appears twice in one page")
    return RecentTradesPage(
        request=request,
        items=tuple(r[2] for r in rows),
        ids=tuple(ids),
        ts_ms=tuple(r[0] for r in rows),
    )


def decode_klines(body: bytes, request: str, symbol: str, tf_ms: int | None) -> list[Kline]:
    """The 7-column klines, newest first as sent, returned in open-time order."""
    rows = open_envelope(body, _KLINES, request, f"symbol {symbol}").rows
    starts = [int(r[0]) for r in rows]
    for a, b in itertools.pairwise(starts):
        if b >= a:
            raise BadResponse(f"klines not newest first: {a} then {b}")
    out = []
    for start, r in zip(reversed(starts), reversed(rows), strict=True):
        if tf_ms is not None and start % tf_ms:
            raise BadResponse(f"kline start {start} is not on a {tf_ms} ms boundary")
        out.append(
            Kline(
                open_time_ms=start,
                open=r[1],
                high=r[2],
                low=r[3],
                close=r[4],
                volume=r[5],
                quote_volume=r[6],
                close_time_ms=start + tf_ms - 1 if tf_ms is not None else None,
            )
        )
    return out


class BybitLinearRest(RestClient):
    """The REST endpoints this product uses on Bybit linear (see the module docstring).

    A :class:`~buff_dataplane.feeds.history.HistoryClient`. ``weight_limit_1m`` overrides
    the per-minute request budget (a test may run with a smaller one).
    """

    venue: ClassVar[str] = VENUE
    default_base_url: ClassVar[str] = "https://api.bybit.com"
    category: ClassVar[str] = "linear"
    paging: ClassVar[Paging] = "recent"
    page_limit: ClassVar[int] = 1000
    retention_ms: ClassVar[int] = NO_RETENTION_LIMIT_MS
    max_window_ms: ClassVar[int] = NO_RETENTION_LIMIT_MS  # no time parameters at all
    kline_rules: ClassVar[KlineRules] = KlineRules(open_is_previous_close=True)
    klines_limit: ClassVar[int] = 1000
    instruments_limit: ClassVar[int] = 1000
    intervals: ClassVar[tuple[str, ...]] = tuple(INTERVALS)
    weight_limit_1m: ClassVar[int] = 600  # requests; the venue's limit is 600 per 5 s
    final_statuses: ClassVar[Mapping[int, str]] = {403: "banned"}  # stop 10 min, never retry
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
    ) -> RecentTradesPage:
        """The latest ``limit`` trades (default :attr:`page_limit`), ascending.

        The venue takes no id and no time: asking for either is a ValidationError.
        """
        if from_id is not None or start_ms is not None or end_ms is not None:
            raise ValidationError(
                f"{self.venue} REST serves only its latest trades: recent-trade takes no "
                "trade id and no time (paging 'recent')"
            )
        symbol = self._venue_symbol(venue_symbol)
        limit = self.page_limit if limit is None else limit
        if not 1 <= limit <= self.page_limit:
            raise ValidationError(f"recent-trade limit={limit}: expected 1..{self.page_limit}")
        request = f"/v5/market/recent-trade?category={self.category}&symbol={symbol}&limit={limit}"

        def decode(body: bytes) -> RecentTradesPage:
            return decode_recent_trades(body, request, symbol, limit)

        return await self.session.get(request, weight=1, decode=decode, subject=f"symbol {symbol}")

    async def klines(
        self, venue_symbol: str, interval: str, start_ms: int, end_ms: int
    ) -> list[Kline]:
        """The klines opening in [start_ms, end_ms), in open-time order.

        The venue answers the newest ``limit`` candles of a range, so a longer range is
        walked backwards from its end. The last candle may be the still-open one.
        """
        symbol = self._venue_symbol(venue_symbol)
        code = INTERVALS.get(interval)
        if code is None:
            raise ValidationError(
                f"{self.venue} has no {interval!r} klines: expected one of "
                f"{', '.join(self.intervals)}"
            )
        if end_ms <= start_ms:
            raise ValidationError(f"klines range {start_ms}..{end_ms} is inverted or empty")
        tf_ms = TIMEFRAMES.get(interval)
        pages: list[list[Kline]] = []
        last = end_ms - 1
        while last >= start_ms:
            request = (
                f"/v5/market/kline?category={self.category}&symbol={symbol}&interval={code}"
                f"&start={start_ms}&end={last}&limit={self.klines_limit}"
            )

            def decode(body: bytes, request: str = request) -> list[Kline]:
                return decode_klines(body, request, symbol, tf_ms)

            page = await self.session.get(
                request, weight=1, decode=decode, subject=f"symbol {symbol}"
            )
            page = [k for k in page if start_ms <= k.open_time_ms <= last]
            pages.append(page)
            if len(page) < self.klines_limit:
                break
            last = page[0].open_time_ms - 1
        return [k for page in reversed(pages) for k in page]

    async def symbols(self) -> list[str]:
        """The venue symbols in status ``Trading``, sorted (instruments-info, every page)."""
        out: set[str] = set()
        cursor = ""
        for _ in range(1000):  # a cursor that never ends is the venue's bug, not a loop
            request = (
                f"/v5/market/instruments-info?category={self.category}"
                f"&limit={self.instruments_limit}"
            )
            if cursor:
                request += f"&cursor={quote(cursor, safe='')}"

            def decode(body: bytes, request: str = request) -> _Instruments:
                return open_envelope(body, _INSTRUMENTS, request)

            page = await self.session.get(request, weight=1, decode=decode)
            out.update(i.symbol for i in page.rows if i.status == "Trading")
            if not page.nextPageCursor or page.nextPageCursor == cursor:
                break
            cursor = page.nextPageCursor
        return sorted(out)

    async def server_time(self) -> int:
        """The venue's clock, UTC epoch ms (``result.timeNano`` floored)."""

        def decode(body: bytes) -> int:
            return int(open_envelope(body, _TIME, "/v5/market/time").timeNano) // 1_000_000

        return await self.session.get("/v5/market/time", weight=1, decode=decode)
