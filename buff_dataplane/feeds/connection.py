"""The WebSocket connection manager: one logical feed over a succession of connections.

Venue-neutral. A venue adapter gives the URL and what to send on connect; the manager
owns the socket's life:

* states ``DISCONNECTED -> CONNECTING -> CONNECTED -> RECONNECTING -> ...``;
* single-flight connect: concurrent callers of :meth:`ensure_connected` share one attempt;
* a **generation** id per connection: every frame is delivered with its generation, and
  frames of a retired generation are discarded (and counted), never passed on as current;
* close codes classified (:func:`classify_close`) with a backoff policy per category
  (exponential with jitter; longer when rate limited; a small attempt cap for auth
  failures, after which :class:`FeedError` ends the feed). Attempts count failures in a
  row: they reset only after a connection that stayed up ``stable_after_s``;
* a **silence timeout**: a connection that delivers nothing for that long is treated as
  half-open and replaced;
* **planned rotation** before the venue's connection lifetime: the new connection is
  opened and subscribed first, the old one closed after, so nothing is lost (the overlap
  is de-duplicated downstream by trade id);
* an optional **application-level keep-alive** (:class:`~buff_dataplane.feeds.ws_base.
  Keepalive`, e.g. Bybit's ``{"op":"ping"}``): its text is sent every interval while a
  connection is up. It never counts as traffic: a connection whose venue stops sending
  is still replaced after the silence timeout.

Every transition is reported through ``on_event(kind, fields)`` so the capture can write
control events: downtime windows are facts in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from buff_dataplane.core.errors import FeedError
from buff_dataplane.feeds.ws_base import Keepalive

AUTH_CODES = frozenset({1008, 4401, 4403})
RATE_LIMIT_CODES = frozenset({1013, 4429})
NORMAL_CODES = frozenset({1000, 1001, 1006})


def classify_close(code: int | None) -> str:
    """``auth``, ``rate_limited``, ``normal`` or ``unknown`` for a close code (None: no frame)."""
    if code is None:
        return "normal"
    if code in AUTH_CODES:
        return "auth"
    if code in RATE_LIMIT_CODES:
        return "rate_limited"
    if code in NORMAL_CODES:
        return "normal"
    return "unknown"


@dataclass(frozen=True)
class Backoff:
    initial_s: float
    max_s: float
    multiplier: float = 2.0
    jitter: float = 0.2  # +- this fraction
    max_attempts: int | None = None

    def delay(self, attempt: int, rng: random.Random) -> float:
        base = min(self.max_s, self.initial_s * self.multiplier ** max(0, attempt - 1))
        return max(0.0, base * (1 + rng.uniform(-self.jitter, self.jitter)))


DEFAULT_BACKOFF: dict[str, Backoff] = {
    "normal": Backoff(0.2, 10.0),
    "unknown": Backoff(0.5, 30.0),
    "rate_limited": Backoff(5.0, 300.0),
    "auth": Backoff(1.0, 10.0, max_attempts=3),
}


class Socket(Protocol):
    """What the manager needs of a client connection (websockets' ClientConnection)."""

    close_code: int | None
    close_reason: str | None

    async def send(self, message: str) -> None: ...
    async def recv(self) -> str | bytes: ...
    async def close(self, code: int = 1000, reason: str = "") -> None: ...


Connect = Callable[[str], Awaitable[Socket]]
OnMessage = Callable[[int, str | bytes, int], Awaitable[None]]
OnEvent = Callable[[str, dict[str, Any]], None]
OnConnected = Callable[[Socket, int], Awaitable[None]]


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


async def websockets_connect(url: str) -> Socket:
    from websockets.asyncio.client import connect

    ws: Any = await connect(
        url, ping_interval=20, ping_timeout=20, max_size=1 << 22, open_timeout=10
    )
    return ws  # type: ignore[no-any-return]


class ConnectionManager:
    def __init__(
        self,
        url: str,
        *,
        name: str,
        on_message: OnMessage,
        on_event: OnEvent,
        on_connected: OnConnected,
        connect: Connect = websockets_connect,
        backoff: dict[str, Backoff] | None = None,
        silence_timeout_s: float = 30.0,
        lifetime_s: float | None = None,
        stable_after_s: float = 30.0,
        overlap_s: float = 2.0,
        clock_ms: Callable[[], int] = _wall_ms,
        rng: random.Random | None = None,
        keepalive: Keepalive | None = None,
    ) -> None:
        self.url = url
        self.name = name
        self._on_message = on_message
        self._on_event = on_event
        self._on_connected = on_connected
        self._connect = connect
        self._backoff = backoff or DEFAULT_BACKOFF
        self.silence_timeout_s = silence_timeout_s
        self.lifetime_s = lifetime_s
        self.stable_after_s = stable_after_s
        self.overlap_s = overlap_s
        self.keepalive = keepalive
        self.keepalives_sent = 0
        self._clock = clock_ms
        self._rng = rng or random.Random(0)
        self.state = "DISCONNECTED"
        self.generation = 0
        self.live: set[int] = set()  # generations whose frames are current
        self.stale_frames = 0
        self.reconnects = 0
        self.attempts: dict[str, int] = {}
        self._connecting: asyncio.Future[tuple[Socket, int]] | None = None
        self._stopping = False
        self.last_message_ms = 0
        self.current: Socket | None = None

    # -- connecting ----------------------------------------------------------------------

    async def ensure_connected(self) -> tuple[Socket, int]:
        """Open a new connection; concurrent callers share the one attempt in flight."""
        if self._connecting is not None:
            return await asyncio.shield(self._connecting)
        loop = asyncio.get_running_loop()
        self._connecting = loop.create_future()
        try:
            result = await self._open()
        except BaseException as exc:
            self._connecting.set_exception(exc)
            self._connecting.exception()  # mark retrieved: the raise below reports it
            self._connecting = None
            raise
        self._connecting.set_result(result)
        self._connecting = None
        return result

    async def _open(self) -> tuple[Socket, int]:
        self.state = "CONNECTING" if self.generation == 0 else "RECONNECTING"
        self._on_event("connecting", {"url": self.url, "generation": self.generation + 1})
        ws = await self._connect(self.url)
        self.generation += 1
        gen = self.generation
        self.live.add(gen)
        self.current = ws
        self.state = "CONNECTED"
        self.last_message_ms = self._clock()
        self._on_event("connected", {"generation": gen})
        await self._on_connected(ws, gen)
        return ws, gen

    # -- running -------------------------------------------------------------------------

    async def run(self) -> None:
        """Keep the feed connected until :meth:`stop`; raise FeedError when auth keeps failing."""
        while not self._stopping:
            try:
                ws, gen = await self.ensure_connected()
            except (TimeoutError, OSError) as exc:
                await self._after_close(None, f"connect failed: {exc}", failed=True)
                continue
            except Exception as exc:  # handshake refused (HTTP status), invalid URI, ...
                code = getattr(getattr(exc, "response", None), "status_code", None)
                category = "auth" if code in (401, 403) else "rate_limited" if code == 429 else None
                await self._after_close(
                    None, f"connect failed: {exc}", failed=True, category=category
                )
                continue
            connected_at = self._clock()
            code, reason = await self._pump(ws, gen)
            if self._clock() - connected_at >= self.stable_after_s * 1000:
                self.attempts.clear()  # a connection that held counts as a success
            if self._stopping:
                break
            await self._after_close(code, reason, generation=self.generation)

    async def _pump(self, ws: Socket, gen: int) -> tuple[int | None, str]:
        """Read frames until the connection ends; rotate, ping or drop it when due."""
        rotate_at = (
            self._clock() + int(self.lifetime_s * 1000) if self.lifetime_s is not None else None
        )
        # Silence and keep-alive run on the loop's monotonic clock: only received frames
        # move the silence deadline, so pinging a half-open socket does not hide it.
        loop = asyncio.get_running_loop()
        silent_at = loop.time() + self.silence_timeout_s
        ping_at = loop.time() + self.keepalive.interval_s if self.keepalive else None
        while not self._stopping:
            if ping_at is not None and loop.time() >= ping_at:  # before recv: a busy feed
                ping_at = await self._ping(ws)  # may never let recv() time out
            timeout = silent_at - loop.time()
            if rotate_at is not None:
                timeout = min(timeout, (rotate_at - self._clock()) / 1000)
            if ping_at is not None:
                timeout = min(timeout, ping_at - loop.time())
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                # that races with a completed recv(), and a busy feed then never stops.
                async with asyncio.timeout(max(0.0, timeout)):
                    message = await ws.recv()
            except TimeoutError:
                if rotate_at is not None and self._clock() >= rotate_at:
                    ws, gen = await self._rotate(ws, gen)
                    rotate_at = self._clock() + int((self.lifetime_s or 0) * 1000)
                    silent_at = loop.time() + self.silence_timeout_s
                    if self.keepalive is not None:
                        ping_at = loop.time() + self.keepalive.interval_s
                    continue
                if loop.time() < silent_at:
                    continue  # a keep-alive is due (or the rotation's clock is not there yet)
                self._retire(gen)
                with contextlib.suppress(Exception):
                    await ws.close(4000, "silence timeout")
                return 4000, f"no message for {self.silence_timeout_s:g}s (half-open?)"
            except Exception:
                self._retire(gen)
                return ws.close_code, ws.close_reason or "connection closed"
            self.last_message_ms = self._clock()
            silent_at = loop.time() + self.silence_timeout_s
            await self.deliver(gen, message)
        return None, "stopped"

    async def _ping(self, ws: Socket) -> float:
        """Send the keep-alive text; the time the next one is due."""
        assert self.keepalive is not None
        with contextlib.suppress(Exception):  # a dead socket: its recv() says so next
            await ws.send(self.keepalive.message)
            self.keepalives_sent += 1
        return asyncio.get_running_loop().time() + self.keepalive.interval_s

    async def deliver(self, gen: int, message: str | bytes) -> None:
        """Pass a frame on if its generation is live; count and drop it otherwise."""
        if gen not in self.live:
            self.stale_frames += 1
            return
        await self._on_message(gen, message, self._clock())

    async def _rotate(self, old: Socket, old_gen: int) -> tuple[Socket, int]:
        """Open and subscribe the next connection, then retire the old one."""
        self._on_event("rotation", {"from_generation": old_gen})
        new, gen = await self.ensure_connected()
        # Keep reading the old connection for the overlap, while the new one (already
        # subscribed) buffers: the two overlap, so nothing falls between them, and the
        # duplicates of the overlap are removed downstream by trade id.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.overlap_s):
                while True:
                    message = await old.recv()
                    await self.deliver(old_gen, message)
        self._retire(old_gen)
        with contextlib.suppress(Exception):
            await old.close(1000, "rotation")
        self._on_event("rotated", {"from_generation": old_gen, "generation": gen})
        return new, gen

    def _retire(self, gen: int) -> None:
        self.live.discard(gen)

    async def _after_close(
        self,
        code: int | None,
        reason: str,
        *,
        failed: bool = False,
        category: str | None = None,
        generation: int | None = None,
    ) -> None:
        category = category or classify_close(code)
        self.state = "DISCONNECTED"
        attempt = self.attempts[category] = self.attempts.get(category, 0) + 1
        policy = self._backoff[category]
        delay = policy.delay(attempt, self._rng)
        self._on_event(
            "disconnected",
            {
                "code": code,
                "reason": reason[:200],
                "category": category,
                "attempt": attempt,
                "backoff_s": round(delay, 3),
                "connect_failed": failed,
                "generation": generation,
                "last_message_ms": self.last_message_ms or None,
            },
        )
        if policy.max_attempts is not None and attempt >= policy.max_attempts:
            self._stopping = True
            raise FeedError(
                f"{self.name}: {category} failure {attempt} times in a row "
                f"(last: {code} {reason}); giving up"
            )
        self.reconnects += 1
        await asyncio.sleep(delay)

    def stop(self) -> None:
        self._stopping = True

    async def close(self) -> None:
        """Stop and close the current connection cleanly (code 1000)."""
        self._stopping = True
        ws, self.current = self.current, None
        if ws is not None:
            self.live.clear()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(1000, "capture stopping"), timeout=2)
        self.state = "DISCONNECTED"
