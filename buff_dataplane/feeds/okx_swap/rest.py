"""OKX v5 REST for perpetual swaps: trade history for back-fill, candles for cross-checks.

Endpoints (base ``https://www.okx.com``, public, no key; exchanges.md 4.6-4.8)::

    GET /api/v5/market/history-trades   instId, type=1 after=<tradeId> | type=2 after=<ms>,
                                        limit <= 100, newest first          20 req / 2 s
    GET /api/v5/market/candles          instId, bar, after/before=<ms>, limit <= 300,
                                        newest first, latest 1,440 rows     40 req / 2 s
    GET /api/v5/market/history-candles  the same, older rows                20 req / 2 s
    GET /api/v5/public/instruments      instType=SWAP                       20 req / 2 s
    GET /api/v5/public/time                                                 10 req / 2 s

Every answer is the envelope ``{"code":"0","msg":"","data":[...]}``; ``code != "0"`` is an
error, sent with HTTP 4xx or with HTTP 200. ``50011`` (rate limit) comes with HTTP 429 or
200; with 200, and for the system-busy codes (``50001``, ``50004``, ``50013``,
``50026``), the body is a ``bad_response`` and retried by the session; any other code is
the venue refusing the request on its merits (``51001`` unknown instrument): a
ValidationError naming it, not retried.

History (paging ``id``, feeds.history): ``after`` returns records *earlier* than a trade
id (or a time), newest first, at most 100; history goes back about three months. Trade
ids are consecutive integers per instrument, one per match: REST items are single
matches, where the WebSocket ``trades`` channel sends prints of ``count`` matches ending
at ``tradeId`` (core.venues ``covered``). The client answers ascending:

* ``trades(from_id=X)``: ``type=1&after=X+limit`` gives the ids ``X..X+limit-1`` in one
  request; ids below ``X`` (if the venue's ids had a hole) are dropped;
* ``trades(start_ms=S, end_ms=E)``: ``type=2&after=S&limit=1`` finds the last trade
  before ``S`` (id ``K``), then ``from_id=K+1`` as above, kept to ``[S, E]``; if nothing
  precedes ``S`` (the start of the history) the cursor walks down from ``E`` instead;
* ``trades()``: the latest page.

Each item is re-serialized compactly (key order and text as sent) and must pass the
okx-swap parser as a ``history_trade`` of the instrument asked for, with ids strictly
decreasing, before the cursor, as sent; else ``bad_response``.

Rate limits are per endpoint per 2 s and no usage header is sent: a pacer keeps each
endpoint under its documented limit on the injected clock. The shared session's
per-minute weight budget (:class:`~buff_dataplane.feeds.rest_common.RestSession`) counts
one per request against a budget the pacer never reaches; a 429 makes that session wait
for the next minute boundary (a Binance habit, longer than OKX's 2 s window needs).

Candles: rows ``[ts, o, h, l, c, vol, volCcy, volCcyQuote, confirm]``, ``vol`` in
contracts for swaps (as our sizes are), so ``volume`` compares. ``volCcyQuote`` is the
quote value of ``vol`` times the contract value ``ctVal``, while our quote volume is
price times contracts: not the same quantity, so ``quote_volume`` is None, as are the
trade count and taker volumes OKX does not report. Hour and day bars are asked for in
their UTC-aligned form (``6Hutc``, ``12Hutc``, ``1Dutc``; plain ``1D`` is aligned to
Hong Kong time). ``kline_rules``: the open is the bucket's first trade; OKX sends no
candle for a bucket without trades (``omits_empty``; [unconfirmed] in exchanges.md: a
venue candle of zero volume would still compare with our EMPTY bar).
"""

from __future__ import annotations

import itertools
import re
from collections import deque
from collections.abc import Callable, Mapping
from typing import ClassVar, Final, TypeVar

import msgspec
from msgspec import UNSET, Raw, UnsetType

from buff_dataplane.core.bars import TIMEFRAMES
from buff_dataplane.core.errors import PayloadRejected, ValidationError
from buff_dataplane.feeds.base import single_trade
from buff_dataplane.feeds.common import PLAIN_DECIMAL
from buff_dataplane.feeds.history import Paging
from buff_dataplane.feeds.okx_swap.parse import PARSER, VENUE
from buff_dataplane.feeds.rest_common import (
    BadResponse,
    Clock,
    Kline,
    KlineRules,
    RestClient,
    RestStats,
    Sleep,
    compact_items,
)

_T = TypeVar("_T")

TRADES_PATH: Final = "/api/v5/market/history-trades"
CANDLES_PATH: Final = "/api/v5/market/candles"
HISTORY_CANDLES_PATH: Final = "/api/v5/market/history-candles"
INSTRUMENTS_PATH: Final = "/api/v5/public/instruments"
TIME_PATH: Final = "/api/v5/public/time"
# Requests per 2 s per IP, by path (venue docs).
RATE_LIMITS_2S: Final[Mapping[str, int]] = {
    TRADES_PATH: 20,
    CANDLES_PATH: 40,
    HISTORY_CANDLES_PATH: 20,
    INSTRUMENTS_PATH: 20,
    TIME_PATH: 10,
}
WINDOW_MS: Final = 2_000
RETRIED_CODES: Final = frozenset(("50001", "50004", "50011", "50013", "50026"))
# Our timeframe -> OKX bar (UTC-aligned where OKX aligns to Hong Kong time by default).
BARS: Final[Mapping[str, str]] = {
    "1s": "1s",
    "1m": "1m",
    "3m": "3m",
    "5m": "5m",
    "15m": "15m",
    "30m": "30m",
    "1h": "1H",
    "2h": "2H",
    "4h": "4H",
    "6h": "6Hutc",
    "12h": "12Hutc",
    "1d": "1Dutc",
}
RETENTION_MS: Final = 90 * 86_400_000  # "last 3 months"
_INST_RE: Final = re.compile(r"[A-Z0-9]{1,16}-[A-Z0-9]{1,16}-SWAP")
_PLAIN_RE: Final = re.compile(PLAIN_DECIMAL)

__all__ = ["OkxSwapRest", "OkxTradesPage", "rejection_message"]


class OkxTradesPage(msgspec.Struct, frozen=True, kw_only=True):
    """One answer of :meth:`OkxSwapRest.trades`, ascending by trade id."""

    request: str  # path + query of the request that gave the items
    items: tuple[bytes, ...]  # each item's compact JSON (the back-fill's payload_raw)
    ids: tuple[int, ...]
    ts_ms: tuple[int, ...]


class _Envelope(msgspec.Struct, frozen=True):
    code: str
    msg: str = ""
    data: Raw | UnsetType = UNSET


class _Instrument(msgspec.Struct, frozen=True):
    instId: str
    state: str = ""


class _Time(msgspec.Struct, frozen=True):
    ts: str


_ENVELOPE: Final = msgspec.json.Decoder(_Envelope)
_INSTRUMENTS: Final = msgspec.json.Decoder(list[_Instrument])
_TIME: Final = msgspec.json.Decoder(list[_Time])
_CANDLES: Final = msgspec.json.Decoder(list[tuple[str, str, str, str, str, str, str, str, str]])


def rejection_message(body: bytes) -> str | None:
    """``51001 Instrument ID does not exist`` for OKX's error envelope; None otherwise."""
    try:
        env = _ENVELOPE.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return None
    return None if env.code == "0" else f"{env.code} {env.msg}".strip()


def _data(body: bytes, what: str) -> bytes:
    """The ``data`` of a successful envelope; an error code raises (see module doc)."""
    try:
        env = _ENVELOPE.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise BadResponse(f"not OKX's envelope: {exc}") from exc
    if env.code in RETRIED_CODES:
        raise BadResponse(f"the venue answered code {env.code} {env.msg!r}")
    if env.code != "0":
        raise ValidationError(f"{VENUE} rejected {what}: {env.code} {env.msg}")
    if env.data is UNSET:
        raise BadResponse("an envelope with code 0 and no data")
    return bytes(env.data)


def _decoded(decoder: msgspec.json.Decoder[_T], data: bytes, what: str) -> _T:
    try:
        return decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise BadResponse(f"not {what}: {exc}") from exc


def decode_trades(
    body: bytes, inst_id: str, *, before_id: int | None, before_ms: int | None, limit: int
) -> list[tuple[bytes, int, int]]:
    """A history-trades answer as (item, trade id, ms), newest first as sent, checked:
    each item a ``history_trade`` of ``inst_id``, ids strictly decreasing, all before the
    cursor (``after`` id or time), at most ``limit``."""
    items = compact_items(_data(body, f"instId {inst_id}"))
    if len(items) > limit:
        raise BadResponse(f"{len(items)} items for limit={limit}")
    out: list[tuple[bytes, int, int]] = []
    for i, item in enumerate(items):
        try:
            parsed = PARSER.parse(item)
            trade = single_trade(parsed)
        except PayloadRejected as exc:
            raise BadResponse(f"item {i} is not a history-trades item: {exc}") from exc
        if parsed.kind != "history_trade" or trade is None:
            raise BadResponse(f"item {i} is a {parsed.kind} message, not a history-trades item")
        if parsed.venue_symbol != inst_id:
            raise BadResponse(f"item {i} names {parsed.venue_symbol}, not {inst_id}")
        out.append((item, trade.trade_id, trade.ts_ms))
    for (_, a, _), (_, b, _) in itertools.pairwise(out):
        if b >= a:
            raise BadResponse(f"trade ids not newest first: {a} then {b}")
    if out and before_id is not None and out[0][1] >= before_id:
        raise BadResponse(f"trade id {out[0][1]} is not before after={before_id}")
    if out and before_ms is not None and max(t for _, _, t in out) >= before_ms:
        raise BadResponse(f"a trade at or after after={before_ms} ms")
    return out


def decode_candles(body: bytes, tf_ms: int) -> list[Kline]:
    """Candle rows, newest first as sent, as Klines (checked: digits, decimals, order)."""
    rows = _decoded(_CANDLES, _data(body, "the candles request"), "candle rows")
    out: list[Kline] = []
    for n, row in enumerate(rows):
        ts, o, h, low, c, vol = row[:6]
        if not ts.isdigit() or not all(_PLAIN_RE.fullmatch(v) for v in (o, h, low, c, vol)):
            raise BadResponse(f"candle {n} is not [ts, o, h, l, c, vol, ...] as text: {row!r}")
        start = int(ts)
        out.append(
            Kline(
                open_time_ms=start,
                open=o,
                high=h,
                low=low,
                close=c,
                volume=vol,
                close_time_ms=start + tf_ms - 1,
            )
        )
    for a, b in itertools.pairwise(out):
        if b.open_time_ms >= a.open_time_ms:
            raise BadResponse(f"candles not newest first: {a.open_time_ms} then {b.open_time_ms}")
    return out


class _Pacer:
    """At most ``limit`` requests per path in any ``WINDOW_MS`` (sliding), on ``now_ms``."""

    def __init__(self, sleep: Sleep, now_ms: Clock, stats: RestStats) -> None:
        self._sleep, self._now, self._stats = sleep, now_ms, stats
        self._sent: dict[str, deque[int]] = {}

    async def wait(self, path: str) -> None:
        limit = RATE_LIMITS_2S[path]
        sent = self._sent.setdefault(path, deque())
        while True:
            now = self._now()
            while sent and sent[0] <= now - WINDOW_MS:
                sent.popleft()
            if len(sent) < limit:
                sent.append(now)
                return
            pause = (sent[0] + WINDOW_MS - now) / 1000
            self._stats.waits += 1
            self._stats.sleep_s += pause
            await self._sleep(pause)


class OkxSwapRest(RestClient):
    """The okx-swap REST client: a :class:`~buff_dataplane.feeds.history.HistoryClient`."""

    venue: ClassVar[str] = VENUE
    default_base_url: ClassVar[str] = "https://www.okx.com"
    intervals: ClassVar[tuple[str, ...]] = tuple(BARS)
    kline_rules: ClassVar[KlineRules] = KlineRules(omits_empty=True)
    paging: ClassVar[Paging] = "id"
    retention_ms: ClassVar[int] = RETENTION_MS
    max_window_ms: ClassVar[int] = RETENTION_MS  # type=2 takes any window
    page_limit: ClassVar[int] = 100
    candles_limit: ClassVar[int] = 300
    weight_limit_1m: ClassVar[int] = 1_200  # one per request; the pacer is the real limit

    rejection = staticmethod(rejection_message)

    def _setup(self) -> None:
        self._pacer = _Pacer(self._sleep, self._now_ms, self.session.stats)

    async def _get(self, path: str, query: str, decode: Callable[[bytes], _T], subject: str) -> _T:
        await self._pacer.wait(path)
        request = f"{path}?{query}" if query else path
        return await self.session.get(request, weight=1, decode=decode, subject=subject)

    def _inst(self, value: str) -> str:
        if not isinstance(value, str) or not _INST_RE.fullmatch(value):
            raise ValidationError(
                f"{self.venue} instrument {value!r} is not a swap id like 'BTC-USDT-SWAP'"
            )
        return value

    # -- trade history ----------------------------------------------------------------------

    async def _page(
        self, inst: str, cursor: str, limit: int, *, before_id: int | None, before_ms: int | None
    ) -> tuple[str, list[tuple[bytes, int, int]]]:
        """One history-trades request (``cursor``: ``type=..&after=..`` or ""); newest first."""
        query = f"instId={inst}&{cursor + '&' if cursor else ''}limit={limit}"

        def decode(body: bytes) -> list[tuple[bytes, int, int]]:
            return decode_trades(body, inst, before_id=before_id, before_ms=before_ms, limit=limit)

        rows = await self._get(TRADES_PATH, query, decode, f"instId {inst}")
        return f"{TRADES_PATH}?{query}", rows

    async def trades(
        self,
        venue_symbol: str,
        *,
        from_id: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int | None = None,
    ) -> OkxTradesPage:
        """The history contract's page (feeds.history), ascending; see the module doc."""
        inst = self._inst(venue_symbol)
        n = self.page_limit if limit is None else limit
        if not 1 <= n <= self.page_limit:
            raise ValidationError(f"history-trades limit={n}: expected 1..{self.page_limit}")
        timed = start_ms is not None or end_ms is not None
        if from_id is not None and timed:
            raise ValidationError("history-trades: give from_id or start_ms/end_ms, not both")
        if from_id is not None:
            if from_id < 0:
                raise ValidationError(f"history-trades from_id={from_id}: expected >= 0")
            return await self._from_id(inst, from_id, n, None)
        if timed:
            if start_ms is None or end_ms is None:
                raise ValidationError("history-trades by time needs both start_ms and end_ms")
            if end_ms < start_ms:
                raise ValidationError(f"history-trades window {start_ms}..{end_ms} is inverted")
            return await self._window(inst, start_ms, end_ms, n)
        request, rows = await self._page(inst, "", n, before_id=None, before_ms=None)
        return _ascending(request, rows)

    async def _from_id(
        self, inst: str, from_id: int, n: int, window: tuple[int, int] | None
    ) -> OkxTradesPage:
        after = from_id + n
        request, rows = await self._page(
            inst, f"type=1&after={after}", n, before_id=after, before_ms=None
        )
        rows = [r for r in rows if r[1] >= from_id]
        if window is not None:
            rows = [r for r in rows if window[0] <= r[2] <= window[1]]
        return _ascending(request, rows)

    async def _window(self, inst: str, start: int, end: int, n: int) -> OkxTradesPage:
        """The earliest ``n`` trades in [start, end]: by id from the last trade before
        ``start``, or (no trade before it) by walking the cursor down from ``end``."""
        _, before = await self._page(
            inst, f"type=2&after={start}", 1, before_id=None, before_ms=start
        )
        if before:
            return await self._from_id(inst, before[0][1] + 1, n, (start, end))
        request, rows = await self._page(
            inst, f"type=2&after={end + 1}", self.page_limit, before_id=None, before_ms=end + 1
        )
        walked = list(rows)
        while len(rows) == self.page_limit and rows[-1][2] >= start:
            oldest = rows[-1][1]
            request, rows = await self._page(
                inst, f"type=1&after={oldest}", self.page_limit, before_id=oldest, before_ms=None
            )
            walked += rows
        inside = [r for r in walked if start <= r[2] <= end]
        return _ascending(request, inside[-n:])

    # -- candles, instruments, time -----------------------------------------------------------

    async def klines(
        self, venue_symbol: str, interval: str, start_ms: int, end_ms: int
    ) -> list[Kline]:
        """The candles opening in [start_ms, end_ms), ascending: ``candles`` walked down by
        its ``after`` cursor from ``end_ms``, then ``history-candles`` for older rows."""
        inst = self._inst(venue_symbol)
        if interval not in BARS:
            raise ValidationError(
                f"{self.venue} has no {interval!r} candles: expected one of "
                f"{', '.join(self.intervals)}"
            )
        if end_ms <= start_ms:
            raise ValidationError(f"candles range {start_ms}..{end_ms} is inverted or empty")
        tf = TIMEFRAMES[interval]
        out: list[Kline] = []
        cursor, path = end_ms, CANDLES_PATH
        while cursor > start_ms:
            query = (
                f"instId={inst}&bar={BARS[interval]}&after={cursor}&before={start_ms - 1}"
                f"&limit={self.candles_limit}"
            )
            page = await self._get(
                path, query, lambda body: decode_candles(body, tf), f"instId {inst}"
            )
            page = [k for k in page if start_ms <= k.open_time_ms < cursor]
            out += page
            if page:
                cursor = page[-1].open_time_ms
                if cursor - tf < start_ms:
                    break  # the range's first bucket is in
            if len(page) < self.candles_limit:
                if path == HISTORY_CANDLES_PATH:
                    break
                path = HISTORY_CANDLES_PATH  # older than candles' latest 1,440 rows
        return sorted(out, key=lambda k: k.open_time_ms)

    async def symbols(self) -> list[str]:
        """The live swap instruments, sorted."""

        def decode(body: bytes) -> list[str]:
            rows = _decoded(_INSTRUMENTS, _data(body, "instType SWAP"), "instruments")
            return sorted(r.instId for r in rows if r.state == "live")

        return await self._get(INSTRUMENTS_PATH, "instType=SWAP", decode, "instType SWAP")

    async def server_time(self) -> int:
        """The venue's clock, UTC epoch ms."""

        def decode(body: bytes) -> int:
            rows = _decoded(_TIME, _data(body, "the time request"), "a server time")
            if len(rows) != 1 or not rows[0].ts.isdigit():
                raise BadResponse(f"not one server time: {rows!r}")
            return int(rows[0].ts)

        return await self._get(TIME_PATH, "", decode, "")


def _ascending(request: str, rows: list[tuple[bytes, int, int]]) -> OkxTradesPage:
    ordered = sorted(rows, key=lambda r: r[1])
    return OkxTradesPage(
        request=request,
        items=tuple(r[0] for r in ordered),
        ids=tuple(r[1] for r in ordered),
        ts_ms=tuple(r[2] for r in ordered),
    )
