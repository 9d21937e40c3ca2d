"""REST machinery shared by every venue: bounded retries, weight budget, canonical items.

Venue-neutral. A venue's ``rest.py`` says which paths it calls, what each costs in
request weight, how it reads a rejection, and how it decodes a body; a
:class:`RestSession` does the rest:

* **Bounded retries** (:class:`RestPolicy`): at most ``max_attempts`` requests per call,
  with exponential backoff and jitter between them (the :class:`~buff_dataplane.feeds.
  connection.Backoff` rule, on an injected ``random.Random`` and an injected async
  ``sleep``, so tests drive time instead of waiting for it).
* **What is retried**, by outcome::

    outcome                                   reason          retried   after the last attempt
    HTTP 429 (rate limited)                   rate_limited    yes (*)   RestError
    HTTP 418 (IP banned after ignoring 429)   banned          yes (*)   RestError
    a status the venue calls final (**)       as named        no        RestError
    HTTP 5xx                                  server_error    yes       RestError
    timeout, connect or network error         timeout         yes       RestError
    2xx body that is not JSON / wrong shape   bad_response    yes       RestError
    2xx body saying "throttled" (VenueBusy)   rate_limited    yes       RestError
    other 4xx with the venue's error body     -               no        ValidationError
    other 4xx without it (an HTML 404, ...)   bad_response    no        RestError
    1xx / 3xx (a redirect: not the API)       bad_response    no        RestError

  (*) ``Retry-After`` (seconds) is honoured: the wait is at least that long. A
  ``Retry-After`` longer than ``max_retry_after_s`` ends the call at once: a ban of
  hours is reported, not slept through. A 429 also marks the current minute's weight as
  spent, so the retry waits for the next minute rather than earning another 429.
  (**) The session's ``final_statuses`` (status -> reason): Bybit's 403 (IP limit
  breached, "stop for at least 10 minutes") is ``banned`` and never retried.
* **Proactive rate limiting**: the venue's used weight for the current minute is read
  from its header after every response (``X-MBX-USED-WEIGHT-1M`` on Binance); before a
  request, if used + the request's weight would exceed ``weight_limit * weight_headroom``,
  the session sleeps until the next minute boundary (on the injected ``now_ms`` clock)
  instead of earning a 429.
* :class:`RestStats` counts requests, retries, proactive waits and total seconds slept.

Errors cross the boundary as ours: :class:`RestError` (a :class:`FeedError`, exit 4) with
``.reason`` and ``.attempts``, whose one-line message names the URL, what came back and
the attempts; a request the venue refuses on its merits (bad symbol, bad parameter) is a
:class:`ValidationError` (exit 2), never retried.

:func:`compact_items` turns a JSON array body into its items, each re-serialized
canonically: the item's own JSON with insignificant whitespace removed, key order, string
escapes and number text kept exactly as the venue sent them. These are the bytes a
back-fill stores as ``payload_raw``. :class:`Kline` is a venue's OHLCV bar as sent (the
cross-check compares it with ours).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from typing import ClassVar, Final, TypeVar

import httpx
import msgspec

from buff_dataplane.core.errors import ConfigError, FeedError, ValidationError
from buff_dataplane.feeds.connection import Backoff

T = TypeVar("T")

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], int]
# A venue's reader of a rejection body: its error text, or None if it is not one.
Rejection = Callable[[bytes], str | None]

REASONS: Final = ("rate_limited", "banned", "server_error", "timeout", "bad_response")
MINUTE_MS: Final = 60_000
_SHOW_BODY: Final = 80


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class RestPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Retry and rate-limit settings of a REST session (ranges inclusive, checked).

    max_attempts: requests per call at most, the first included (1..50).
    base_backoff_s / max_backoff_s: the first retry waits about base_backoff_s, each next
    one twice as long, capped at max_backoff_s (jitter +- 20%).
    timeout_s: per request (connect, read, write, pool).
    weight_headroom: the fraction of the venue's per-minute weight limit a session uses
    before it waits for the next minute.
    max_retry_after_s: a 429/418 asking for a longer wait than this ends the call.
    """

    _ranges: ClassVar[dict[str, tuple[float, float]]] = {
        "max_attempts": (1, 50),
        "base_backoff_s": (0.0, 60.0),
        "max_backoff_s": (0.0, 3_600.0),
        "timeout_s": (0.1, 600.0),
        "weight_headroom": (0.05, 1.0),
        "max_retry_after_s": (0.0, 86_400.0),
    }

    max_attempts: int = 5
    base_backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    timeout_s: float = 10.0
    weight_headroom: float = 0.8
    max_retry_after_s: float = 300.0

    def __post_init__(self) -> None:
        for name, (low, high) in sorted(self._ranges.items()):
            value = getattr(self, name)
            ok_type = isinstance(value, int) if name == "max_attempts" else True
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not ok_type
                or not math.isfinite(value)
                or not low <= value <= high
            ):
                raise ConfigError(
                    f"config {name}={value!r} is out of range: expected {low:g}..{high:g}"
                )
        if self.base_backoff_s > self.max_backoff_s:
            raise ConfigError(
                f"config base_backoff_s={self.base_backoff_s!r} is above "
                f"max_backoff_s={self.max_backoff_s!r}"
            )


class RestError(FeedError):
    """A REST call that failed after the retry policy gave up (or could not retry).

    ``reason`` is one of :data:`REASONS`; ``attempts`` counts the requests made.
    """

    def __init__(self, message: str, *, reason: str, attempts: int, url: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.attempts = attempts
        self.url = url


class BadResponse(Exception):
    """Raised by a body decoder: the body is not what the endpoint returns (retried)."""


class VenueBusy(BadResponse):
    """Raised by a body decoder: a 2xx body in which the venue says it is throttling
    (``reason="rate_limited"``) or unavailable (``"server_error"``): Kraken's
    ``{"error":["EGeneral:Too many requests"]}`` in an HTTP 200. Retried like the HTTP
    status it stands for (``retry_after`` seconds at least, when the venue says).
    """

    def __init__(
        self, message: str, *, reason: str = "rate_limited", retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after = retry_after


@dataclass
class RestStats:
    """What a session did: requests sent, retries, proactive weight waits, seconds slept."""

    requests: int = 0
    retries: int = 0
    waits: int = 0
    sleep_s: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


class Kline(msgspec.Struct, frozen=True, kw_only=True):
    """One venue kline (OHLCV bar); decimals are the venue's text, exactly as sent.

    A field the venue's klines do not carry is None and is not compared (Coinbase candles
    have no quote volume, Kraken's no taker split).
    """

    open_time_ms: int
    open: str
    high: str
    low: str
    close: str
    volume: str
    close_time_ms: int | None = None
    quote_volume: str | None = None
    trade_count: int | None = None  # the venue's count (Binance: raw trades, not aggregated)
    taker_buy_volume: str | None = None
    taker_buy_quote_volume: str | None = None


class KlineRules(msgspec.Struct, frozen=True, kw_only=True):
    """How a venue's klines differ from our bars by convention, not by data.

    ``open_is_previous_close``: the venue opens a bar at the previous bar's close (Bybit),
    so its open is compared with our previous bar's close. ``omits_empty``: the venue
    sends no kline for a bucket without trades (Coinbase), so our EMPTY bar there agrees.
    """

    open_is_previous_close: bool = False
    omits_empty: bool = False


def _show(data: bytes) -> str:
    text = data[:_SHOW_BODY].decode("utf-8", "replace")
    text = " ".join(text.split())
    return repr(text + ("..." if len(data) > _SHOW_BODY else ""))


def compact_items(body: bytes) -> list[bytes]:
    """The items of a JSON array body, each as compact canonical JSON.

    Only insignificant whitespace is removed: key order, string escapes and number text
    stay as sent. BadResponse if ``body`` is not one JSON array.
    """
    try:
        items = msgspec.json.decode(body, type=list[msgspec.Raw])
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise BadResponse(f"not a JSON array ({exc})") from exc
    return [msgspec.json.format(item, indent=-1) for item in items]


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None  # an HTTP-date: the backoff rule applies
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


class _Failure(Exception):
    """One failed attempt: the reason and what came back (internal to the loop)."""

    def __init__(
        self, reason: str, what: str, *, retry_after: float | None = None, final: bool = False
    ) -> None:
        super().__init__(what)
        self.reason = reason
        self.what = what
        self.retry_after = retry_after
        self.final = final  # not worth another attempt


class RestSession:
    """One venue's REST endpoint with bounded retries and a per-minute weight budget."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        policy: RestPolicy,
        *,
        venue: str,
        weight_limit_1m: int,
        weight_header: str | None,
        rejection: Rejection,
        sleep: Sleep,
        rng: random.Random | None = None,
        now_ms: Clock = wall_ms,
        final_statuses: Mapping[int, str] | None = None,
        minute_spent_on_429: bool = True,
    ) -> None:
        if weight_limit_1m < 1:
            raise ValidationError(f"{venue}: weight limit {weight_limit_1m} must be positive")
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.policy = policy
        self.venue = venue
        self.weight_limit_1m = weight_limit_1m
        self.weight_header = weight_header
        self.stats = RestStats()
        self._rejection = rejection
        self._final_statuses = dict(final_statuses or {})  # status -> reason, never retried
        # False for a venue limited per second (Coinbase): a 429 then costs a backoff, not
        # the rest of the minute.
        self._minute_spent_on_429 = minute_spent_on_429
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._now_ms = now_ms
        self._backoff = Backoff(policy.base_backoff_s, policy.max_backoff_s)
        self._used = 0  # the venue's used weight in minute self._minute
        self._minute = -1

    @property
    def used_weight(self) -> int:
        """The weight used in the current minute, as last reported (or estimated)."""
        return self._used if self._now_ms() // MINUTE_MS == self._minute else 0

    async def _nap(self, seconds: float) -> None:
        self.stats.sleep_s += seconds
        await self._sleep(seconds)

    async def _budget(self, weight: int) -> None:
        """Wait for the next minute if this request would pass the weight headroom."""
        allowed = self.weight_limit_1m * self.policy.weight_headroom
        if self.used_weight + weight <= allowed:
            return
        now = self._now_ms()
        self.stats.waits += 1
        await self._nap((MINUTE_MS - now % MINUTE_MS) / 1000)
        self._used, self._minute = 0, self._now_ms() // MINUTE_MS

    def _account(self, response: httpx.Response, weight: int) -> None:
        minute = self._now_ms() // MINUTE_MS
        reported = response.headers.get(self.weight_header) if self.weight_header else None
        if reported is not None and reported.strip().isdigit():
            self._used = int(reported)
        else:  # no header: count what we spent
            self._used = (self._used if minute == self._minute else 0) + weight
        self._minute = minute

    async def get(
        self,
        request: str,
        *,
        weight: int,
        decode: Callable[[bytes], T],
        subject: str = "",
    ) -> T:
        """GET ``base_url + request`` and decode the body, retrying by the policy.

        ``request`` is the path and query exactly as sent; ``decode`` raises BadResponse
        for a body of the wrong shape; ``subject`` (e.g. ``symbol BTCUSDT``) is named
        when the venue rejects the request.
        """
        url = self.base_url + request
        attempt = 0
        while True:
            attempt += 1
            await self._budget(weight)
            try:
                return await self._attempt(url, request, weight, decode, subject)
            except _Failure as failure:
                delay = self._backoff.delay(attempt, self._rng)
                if failure.retry_after is not None:
                    if failure.retry_after > self.policy.max_retry_after_s:
                        raise self._error(url, failure, attempt, "Retry-After too long") from None
                    delay = max(delay, failure.retry_after)
                if attempt >= self.policy.max_attempts or failure.final:
                    raise self._error(url, failure, attempt) from None
                self.stats.retries += 1
                await self._nap(delay)

    def _error(self, url: str, failure: _Failure, attempts: int, note: str = "") -> RestError:
        tail = f" ({note})" if note else ""
        plural = "s" if attempts != 1 else ""
        return RestError(
            f"GET {url}: {failure.what}{tail}; gave up after {attempts} attempt{plural}",
            reason=failure.reason,
            attempts=attempts,
            url=url,
        )

    async def _attempt(
        self,
        url: str,
        request: str,
        weight: int,
        decode: Callable[[bytes], T],
        subject: str,
    ) -> T:
        self.stats.requests += 1
        try:
            response = await self.client.get(url, timeout=self.policy.timeout_s)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise ValidationError(f"{self.venue} REST endpoint {url!r}: {exc}") from exc
        except httpx.TimeoutException as exc:
            raise _Failure("timeout", f"timed out ({type(exc).__name__})") from exc
        except httpx.RemoteProtocolError as exc:
            raise _Failure("bad_response", f"not HTTP ({exc})") from exc
        except httpx.TransportError as exc:
            raise _Failure("timeout", f"network error ({type(exc).__name__}: {exc})") from exc
        self._account(response, weight)
        status, body = response.status_code, response.content
        if status == 429:
            # The venue counts this minute's weight as spent, whatever our books say: the
            # retry waits for the next minute (after Retry-After) instead of earning more.
            if self._minute_spent_on_429:
                self._used = max(self._used, self.weight_limit_1m)
            after = _retry_after(response.headers)
            raise _Failure("rate_limited", f"HTTP 429 {_show(body)}", retry_after=after)
        if status == 418:
            after = _retry_after(response.headers)
            raise _Failure("banned", f"HTTP 418 (IP banned) {_show(body)}", retry_after=after)
        if status in self._final_statuses:
            reason = self._final_statuses[status]
            raise _Failure(reason, f"HTTP {status} ({reason}) {_show(body)}", final=True)
        if status >= 500:
            raise _Failure("server_error", f"HTTP {status} {_show(body)}")
        if 400 <= status < 500:
            message = self._rejection(body)
            if message is None:  # not the venue's error body: not the venue's API
                raise _Failure("bad_response", f"HTTP {status} {_show(body)}", final=True)
            about = f" {subject}" if subject else ""
            raise ValidationError(
                f"{self.venue} rejected{about}: {message} (GET {request}, HTTP {status})"
            )
        if not 200 <= status < 300:  # a redirect or stranger: not the venue's API
            raise _Failure("bad_response", f"HTTP {status} {_show(body)}", final=True)
        try:
            return decode(body)
        except VenueBusy as exc:
            what = f"HTTP {status} {_show(body)}: {exc}"
            raise _Failure(exc.reason, what, retry_after=exc.retry_after) from exc
        except BadResponse as exc:
            ctype = response.headers.get("content-type", "no content-type")
            raise _Failure("bad_response", f"HTTP {status} {ctype} {_show(body)}: {exc}") from exc


class RestClient:
    """What every venue's REST client shares: one :class:`RestSession` built from the
    class's facts, and its stats.

    A venue's client states ``venue``, ``weight_limit_1m`` (weight, or requests, a
    minute), ``weight_header`` (the response header of weight used; None when the venue
    reports none), ``final_statuses`` (statuses it means as "stop", never retried),
    ``minute_spent_on_429`` (False for a venue limited per second) and ``rejection`` (how
    it reads a 4xx body); per-venue state (a pacer, a token bucket) goes in :meth:`_setup`.
    """

    venue: ClassVar[str]
    weight_limit_1m: ClassVar[int]
    weight_header: ClassVar[str | None] = None
    final_statuses: ClassVar[Mapping[int, str]] = {}
    minute_spent_on_429: ClassVar[bool] = True

    @staticmethod
    def rejection(body: bytes) -> str | None:
        """The venue's error message in a 4xx body; None when it is not the venue's shape."""
        raise NotImplementedError

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        policy: RestPolicy = RestPolicy(),
        *,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        now_ms: Clock = wall_ms,
        weight_limit_1m: int | None = None,
    ) -> None:
        self.session = RestSession(
            client,
            base_url,
            policy,
            venue=self.venue,
            weight_limit_1m=weight_limit_1m or self.weight_limit_1m,
            weight_header=self.weight_header,
            rejection=type(self).rejection,
            sleep=sleep,
            rng=rng,
            now_ms=now_ms,
            final_statuses=self.final_statuses,
            minute_spent_on_429=self.minute_spent_on_429,
        )
        self._sleep = sleep
        self._now_ms = now_ms
        self._setup()

    def _setup(self) -> None:
        """Per-venue state built after the session (a pacer, a bucket); none by default."""

    @property
    def stats(self) -> RestStats:
        return self.session.stats
