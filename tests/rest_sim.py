"""A venue REST client against its simulator dialect on loopback, on a driven clock.

Time is driven, not waited for: the client sleeps on a fake clock it shares with the
simulator, so Retry-After, backoff and pacing cost nothing and are counted exactly.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from buff_dataplane.feeds.rest_common import RestPolicy
from buff_dataplane.sim.server import ExchangeSim, SimConfig


class Clock:
    """Milliseconds that move only when the client sleeps (every sleep is recorded)."""

    def __init__(self, ms: int) -> None:
        self.ms, self.slept = ms, []

    def now(self) -> int:
        return self.ms

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.ms += round(seconds * 1000)


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


async def with_rest(
    cls: type,
    cfg: SimConfig,
    body: Callable[[ExchangeSim, Any, Clock], Awaitable[Any]],
    *,
    policy: RestPolicy | None = None,
    shared_clock: bool = True,
    **kw: Any,
) -> Any:
    """``body(sim, client, clock)`` with the simulator of ``cfg`` and a ``cls`` client on
    it; the clock starts 7 s after the tape ends, so REST serves the whole tape. Without
    ``shared_clock`` the simulator keeps the wall clock (its weight window is real)."""
    clock = Clock(cfg.start_ms + int(cfg.duration_s * 1000) + 7_000)
    sim = ExchangeSim(cfg, clock=clock.now) if shared_clock else ExchangeSim(cfg)
    async with sim, httpx.AsyncClient() as client:
        rest = cls(
            client,
            sim.rest_url,
            policy or RestPolicy(),
            sleep=clock.sleep,
            rng=random.Random(7),
            now_ms=clock.now,
            **kw,
        )
        return await body(sim, rest, clock)
