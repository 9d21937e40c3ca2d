"""Kraken spot REST: trade history by time for back-fill, OHLC for cross-checks.

Endpoints (base ``https://api.kraken.com``, public, no key; exchanges.md 6.3)::

    GET /0/public/Trades      pair, since (ns, or s), count <= 1000    ascending; cursor `last`
    GET /0/public/OHLC        pair, interval (minutes), since (s)       at most 720 rows
    GET /0/public/AssetPairs                                            the pairs, keyed
    GET /0/public/Time                                                  {"unixtime": s}

Every answer is ``{"error": [...], "result": {...}}``, errors in an HTTP 200 (the
envelope): ``EQuery:Unknown asset pair`` and ``EGeneral:Invalid arguments`` are refusals
(ValidationError, not retried); ``EGeneral:Too many requests`` / ``EAPI:Rate limit
exceeded`` are throttling (:class:`~buff_dataplane.feeds.rest_common.VenueBusy`, retried
as ``rate_limited``); ``EService:*`` is the venue down (retried as ``server_error``); any
other error text is a ``bad_response``. HTTP 429/5xx are retried by the session as well.

Pairs have three names, mapped by table, never by string tricks: the v2 WebSocket name
(``BTC/USD``, the parser's venue symbol), the REST name sent as ``pair`` (``XBTUSD``) and
the key the result is filed under (``XXBTZUSD``). :data:`REST_PAIRS` holds the main
pairs; any other is learned once from AssetPairs (its ``wsname``, read through the
parser's symbol table, its ``altname`` and its key).

Trades (paging ``time``, feeds.history): ``trades(start_ms=S, end_ms=E)`` asks
``since = S * 10**6 - 1`` ns, so that the trades of millisecond S come whether ``since``
is inclusive or exclusive ([unconfirmed] in the docs), and keeps the rows with
``S <= time <= E`` (Kraken has no end parameter). A row is one trade, the exact item the
parser reads as ``rest_trade``; rows must come in ascending id and time order, for the
pair asked. ``from_id`` is refused: Kraken pages by time only.

Rate limits: about one public request per second per IP, and per pair on Trades and OHLC
([doc - support article]). The client keeps its requests ``min_interval_s`` apart (1 s)
and counts 60 per minute on the session's budget; a throttling answer is retried with
backoff. OHLC serves only the 720 most recent rows of an interval, the last one still
open, and no row for an interval without trades (:data:`KLINE_RULES`; observed:
freqtrade#3392 "missing data fillup" on Kraken 15m candles).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import re
from collections.abc import Callable, Mapping
from typing import ClassVar, Final, TypeVar

import httpx
import msgspec
from msgspec import UNSET, Raw, UnsetType

from buff_dataplane.core.bars import TIMEFRAMES
from buff_dataplane.core.errors import PayloadRejected, ValidationError
from buff_dataplane.feeds.base import single_trade
from buff_dataplane.feeds.history import Paging
from buff_dataplane.feeds.kraken.parse import PARSER, VENUE
from buff_dataplane.feeds.rest_common import (
    BadResponse,
    Clock,
    Kline,
    KlineRules,
    RestClient,
    RestPolicy,
    Sleep,
    VenueBusy,
    wall_ms,
)

T = TypeVar("T")

__all__ = ["KLINE_RULES", "REST_PAIRS", "KrakenRest", "TradesPage"]

# v2 name -> (REST pair name, result key). The legacy X/Z prefixes are Kraken's own.
REST_PAIRS: Final[Mapping[str, tuple[str, str]]] = {
    "BTC/USD": ("XBTUSD", "XXBTZUSD"),
    "BTC/EUR": ("XBTEUR", "XXBTZEUR"),
    "BTC/GBP": ("XBTGBP", "XXBTZGBP"),
    "BTC/CAD": ("XBTCAD", "XXBTZCAD"),
    "BTC/JPY": ("XBTJPY", "XXBTZJPY"),
    "BTC/USDT": ("XBTUSDT", "XBTUSDT"),
    "BTC/USDC": ("XBTUSDC", "XBTUSDC"),
    "ETH/USD": ("ETHUSD", "XETHZUSD"),
    "ETH/EUR": ("ETHEUR", "XETHZEUR"),
    "ETH/BTC": ("ETHXBT", "XETHXXBT"),
    "ETH/USDT": ("ETHUSDT", "ETHUSDT"),
    "LTC/USD": ("LTCUSD", "XLTCZUSD"),
    "XRP/USD": ("XRPUSD", "XXRPZUSD"),
    "DOGE/USD": ("XDGUSD", "XDGUSD"),
    "SOL/USD": ("SOLUSD", "SOLUSD"),
    "USDT/USD": ("USDTUSD", "USDTZUSD"),
}
# Our timeframe -> Kraken's OHLC interval in minutes (it also has 15 days, 21600).
OHLC_INTERVALS: Final[Mapping[str, int]] = {
    "1m": 1, "5m": 5, "15m": 15, "30m": 30, "1h": 60, "4h": 240, "1d": 1440,
}  # fmt: skip
OHLC_ROWS: Final = 720
KLINE_RULES: Final = KlineRules(omits_empty=True)
# The venue keeps every trade since listing (``since=0`` works): a century stands for it.
FULL_HISTORY_MS: Final = 100 * 365 * 86_400_000
_RATE_LIMITED: Final = ("EGeneral:Too many requests", "EAPI:Rate limit exceeded")
_REFUSED: Final = ("EQuery:", "EGeneral:Invalid arguments")
_DIGITS_RE: Final = re.compile(r"[0-9]{1,20}")
_PAIR_NAME_RE: Final = re.compile(r"[A-Z0-9.]{2,24}")


class TradesPage(msgspec.Struct, frozen=True, kw_only=True):
    """One Trades response, as the history contract's page (feeds.history)."""

    request: str  # path + query exactly as sent
    items: tuple[bytes, ...]  # each row's compact JSON (the back-fill's payload_raw)
    ids: tuple[int, ...]  # trade_id, ascending
    ts_ms: tuple[int, ...]  # trade times, epoch ms (floored)
    last_ns: int  # the venue's cursor `last` (ns): where its next page would start


class _Envelope(msgspec.Struct, frozen=True):
    error: list[str]
    result: Raw | UnsetType = UNSET


class _Pair(msgspec.Struct, frozen=True):
    altname: str
    wsname: str | UnsetType = UNSET
    status: str | UnsetType = UNSET  # "online", "cancel_only", ...; absent on old answers


class _Time(msgspec.Struct, frozen=True):
    unixtime: int


_ENVELOPE: Final = msgspec.json.Decoder(_Envelope)
_RESULT: Final = msgspec.json.Decoder(dict[str, Raw])
_PAIRS: Final = msgspec.json.Decoder(dict[str, _Pair])
_TIME: Final = msgspec.json.Decoder(_Time)
_ROWS: Final = msgspec.json.Decoder(list[Raw])
_OhlcRow = tuple[int, str, str, str, str, str, str, int]
_OHLC_ROWS: Final = msgspec.json.Decoder(list[_OhlcRow])


def rejection_message(body: bytes) -> str | None:
    """``EQuery:Unknown asset pair`` for Kraken's error body; None for anything else."""
    try:
        env = _ENVELOPE.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return None
    return "; ".join(env.error) if env.error else None


def result_of(body: bytes, subject: str = "") -> Raw:
    """The ``result`` of an envelope; the venue's errors as what they mean (module doc)."""
    try:
        env = _ENVELOPE.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise BadResponse(f"not Kraken's {{error, result}} envelope ({exc})") from exc
    if env.error:
        text = "; ".join(env.error)
        if any(e.startswith(_RATE_LIMITED) for e in env.error):
            raise VenueBusy(text, reason="rate_limited")
        if any(e.startswith("EService:") for e in env.error):
            raise VenueBusy(text, reason="server_error")
        if any(e.startswith(_REFUSED) for e in env.error):
            about = f" {subject}" if subject else ""
            raise ValidationError(f"{VENUE} rejected{about}: {text}")
        raise BadResponse(f"the venue's error {text!r}")
    if env.result is UNSET:
        raise BadResponse("an envelope without errors and without `result`")
    return env.result


def decode_trades(
    body: bytes, request: str, key: str, window: tuple[int, int], limit: int, subject: str = ""
) -> TradesPage:
    """A Trades body as a page: rows of ``key`` in ``window`` (ms, inclusive), checked."""
    result = _decode(_RESULT, result_of(body, subject), "Trades result")
    if set(result) != {key, "last"}:
        raise BadResponse(f"Trades result keys {sorted(result)}: expected {key!r} and 'last'")
    last = _decode(msgspec.json.Decoder(str), result["last"], "Trades `last`")
    if _DIGITS_RE.fullmatch(last) is None:
        raise BadResponse(f"Trades cursor `last` {last!r} is not a ns timestamp")
    rows = _decode(_ROWS, result[key], f"Trades {key}")
    if len(rows) > limit:
        raise BadResponse(f"{len(rows)} rows for count={limit}")
    items: list[bytes] = []
    ids: list[int] = []
    times: list[int] = []
    lo, hi = window
    for i, row in enumerate(rows):
        item = msgspec.json.format(row, indent=-1)
        try:
            parsed = PARSER.parse(item)
            trade = single_trade(parsed)
        except PayloadRejected as exc:
            raise BadResponse(f"row {i} is not a Trades row: {exc}") from exc
        if parsed.kind != "rest_trade" or trade is None:
            raise BadResponse(f"row {i} is a {parsed.kind} message, not a Trades row")
        if trade.ts_ms < lo - 1:  # since is lo ms - 1 ns: one ms earlier at most
            raise BadResponse(f"row {i} at {trade.ts_ms} ms is before since ({lo} ms)")
        if lo <= trade.ts_ms <= hi:
            items.append(item)
            ids.append(trade.trade_id)
            times.append(trade.ts_ms)
    for (a, ta), (b, tb) in itertools.pairwise(zip(ids, times, strict=True)):
        if b <= a or tb < ta:
            raise BadResponse(f"rows out of order: id {a} at {ta} ms, then id {b} at {tb} ms")
    return TradesPage(
        request=request, items=tuple(items), ids=tuple(ids), ts_ms=tuple(times), last_ns=int(last)
    )


def decode_ohlc(body: bytes, key: str, tf_ms: int, subject: str = "") -> list[Kline]:
    """OHLC rows ``[time, open, high, low, close, vwap, volume, count]`` as klines."""
    result = _decode(_RESULT, result_of(body, subject), "OHLC result")
    if set(result) != {key, "last"}:
        raise BadResponse(f"OHLC result keys {sorted(result)}: expected {key!r} and 'last'")
    rows = _decode(_OHLC_ROWS, result[key], f"OHLC {key}")
    out = [
        Kline(
            open_time_ms=r[0] * 1000,
            open=r[1],
            high=r[2],
            low=r[3],
            close=r[4],
            volume=r[6],
            trade_count=r[7],
        )
        for r in rows
    ]
    for a, b in itertools.pairwise(out):
        if b.open_time_ms <= a.open_time_ms:
            raise BadResponse(f"OHLC rows out of order: {a.open_time_ms} then {b.open_time_ms}")
    if any(k.open_time_ms % tf_ms for k in out):
        raise BadResponse(f"an OHLC row is not aligned to its {tf_ms} ms interval")
    return out


def _decode(decoder: msgspec.json.Decoder[T], raw: bytes | Raw, what: str) -> T:
    try:
        return decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise BadResponse(f"{what}: {exc}") from exc


class KrakenRest(RestClient):
    """Kraken's public REST endpoints this product uses (see the module docstring)."""

    venue: ClassVar[str] = VENUE
    default_base_url: ClassVar[str] = "https://api.kraken.com"
    retention_ms: ClassVar[int] = FULL_HISTORY_MS
    max_window_ms: ClassVar[int] = FULL_HISTORY_MS  # `since` has no end: no window limit
    page_limit: ClassVar[int] = 1000
    paging: ClassVar[Paging] = "time"
    kline_rules: ClassVar[KlineRules] = KLINE_RULES
    intervals: ClassVar[tuple[str, ...]] = tuple(OHLC_INTERVALS)
    weight_limit_1m: ClassVar[int] = 60  # about one request a second
    min_interval_s: ClassVar[float] = 1.0
    minute_spent_on_429: ClassVar[bool] = False  # limited per second: a 429 costs a backoff
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
        min_interval_s: float | None = None,
    ) -> None:
        super().__init__(client, base_url, policy, sleep=sleep, rng=rng, now_ms=now_ms)
        self._interval_ms = int(
            1000 * (self.min_interval_s if min_interval_s is None else min_interval_s)
        )
        self._next_ms: int | None = None
        self._learned: dict[str, tuple[str, str]] = {}  # from AssetPairs

    async def _get(self, request: str, decode: Callable[[bytes], T], subject: str = "") -> T:
        """One call, at least ``min_interval_s`` after the previous one began."""
        now = self._now_ms()
        if self._next_ms is not None and now < self._next_ms:
            wait = (self._next_ms - now) / 1000
            self.stats.waits += 1
            self.stats.sleep_s += wait
            await self._sleep(wait)
        self._next_ms = max(now, self._next_ms or now) + self._interval_ms
        return await self.session.get(request, weight=1, decode=decode, subject=subject)

    async def pair_names(self, venue_symbol: str) -> tuple[str, str]:
        """(REST pair name, result key) of a v2 name or its canonical key's v2 name."""
        try:
            v2 = PARSER.to_venue(PARSER.to_canonical(venue_symbol))
        except PayloadRejected as exc:
            raise ValidationError(f"{self.venue} symbol {venue_symbol!r}: {exc.detail}") from exc
        names = REST_PAIRS.get(v2) or self._learned.get(v2)
        if names is None:
            await self.symbols()
            names = self._learned.get(v2)
        if names is None:
            raise ValidationError(f"{self.venue} lists no pair {v2} (AssetPairs)")
        return names

    async def trades(
        self,
        venue_symbol: str,
        *,
        from_id: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int | None = None,
    ) -> TradesPage:
        """The earliest trades in [start_ms, end_ms], ascending (the latest without start)."""
        if from_id is not None:
            raise ValidationError(f"{self.venue} pages trades by time (since), not by id")
        count = self.page_limit if limit is None else limit
        if not 1 <= count <= self.page_limit:
            raise ValidationError(f"Trades count={count}: expected 1..{self.page_limit}")
        if start_ms is not None and end_ms is not None and end_ms < start_ms:
            raise ValidationError(f"Trades window {start_ms}..{end_ms} is inverted")
        pair, key = await self.pair_names(venue_symbol)
        query = [f"pair={pair}"]
        if start_ms is not None:
            query.append(f"since={max(0, start_ms * 1_000_000 - 1)}")
        query.append(f"count={count}")
        request = f"/0/public/Trades?{'&'.join(query)}"
        window = (start_ms or 0, 2**62 if end_ms is None else end_ms)

        def decode(body: bytes) -> TradesPage:
            return decode_trades(body, request, key, window, count, f"pair {pair}")

        return await self._get(request, decode, subject=f"pair {pair}")

    async def klines(
        self, venue_symbol: str, interval: str, start_ms: int, end_ms: int
    ) -> list[Kline]:
        """The OHLC rows opening in [start_ms, end_ms): one request, as many as the venue
        still serves (its latest 720; the last one may be the open interval)."""
        minutes = OHLC_INTERVALS.get(interval)
        if minutes is None:
            raise ValidationError(
                f"{self.venue} has no {interval!r} OHLC: expected one of "
                f"{', '.join(self.intervals)}"
            )
        if end_ms <= start_ms:
            raise ValidationError(f"klines range {start_ms}..{end_ms} is inverted or empty")
        pair, key = await self.pair_names(venue_symbol)
        since_s = max(0, start_ms // 1000 - 1)  # rows opening after `since`
        request = f"/0/public/OHLC?pair={pair}&interval={minutes}&since={since_s}"
        tf_ms = TIMEFRAMES[interval]

        def decode(body: bytes) -> list[Kline]:
            return decode_ohlc(body, key, tf_ms, f"pair {pair}")

        rows = await self._get(request, decode, subject=f"pair {pair}")
        return [k for k in rows if start_ms <= k.open_time_ms < end_ms]

    async def symbols(self) -> list[str]:
        """The v2 names of the pairs AssetPairs lists as online (or without a status),
        sorted; pairs the parser does not map are left out. Learns their REST names."""

        def decode(body: bytes) -> dict[str, _Pair]:
            return _decode(_PAIRS, result_of(body), "AssetPairs result")

        pairs = await self._get("/0/public/AssetPairs", decode)
        out: list[str] = []
        for key, p in sorted(pairs.items()):
            if p.wsname is UNSET or p.status not in (UNSET, "online"):
                continue
            try:
                v2 = PARSER.to_venue(PARSER.to_canonical(p.wsname))
            except (PayloadRejected, ValidationError):
                continue  # a pair this product does not map (an unknown quote, ...)
            if _PAIR_NAME_RE.fullmatch(p.altname) and _PAIR_NAME_RE.fullmatch(key):
                self._learned[v2] = (p.altname, key)
                out.append(v2)
        return sorted(out)

    async def server_time(self) -> int:
        """The venue's clock, UTC epoch ms (Kraken states whole seconds)."""

        def decode(body: bytes) -> int:
            return _decode(_TIME, result_of(body), "Time result").unixtime * 1000

        return await self._get("/0/public/Time", decode)
