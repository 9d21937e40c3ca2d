"""The connection manager's rules: close categories, backoff, stale generations."""

import asyncio
import random

import pytest

from buff_dataplane.feeds.connection import (
    DEFAULT_BACKOFF,
    Backoff,
    ConnectionManager,
    classify_close,
)


@pytest.mark.parametrize(
    ("code", "category"),
    [
        (1008, "auth"),
        (4401, "auth"),
        (4403, "auth"),
        (1013, "rate_limited"),
        (4429, "rate_limited"),
        (1000, "normal"),
        (1001, "normal"),
        (1006, "normal"),
        (None, "normal"),
        (4000, "unknown"),
        (1011, "unknown"),
    ],
)
def test_close_codes_are_classified(code, category):
    assert classify_close(code) == category


def test_backoff_grows_caps_and_differs_by_category():
    rng = random.Random(1)
    normal = [DEFAULT_BACKOFF["normal"].delay(n, rng) for n in range(1, 12)]
    assert normal[0] < normal[3] < normal[6] and max(normal) <= 10.0 * 1.2
    rate = [DEFAULT_BACKOFF["rate_limited"].delay(n, rng) for n in (1, 2)]
    assert min(rate) >= 5.0 * 0.8 > max(normal[:2])
    assert DEFAULT_BACKOFF["auth"].max_attempts == 3
    assert DEFAULT_BACKOFF["normal"].max_attempts is None
    flat = Backoff(1.0, 1.0, jitter=0.0)
    assert [flat.delay(n, rng) for n in (1, 5)] == [1.0, 1.0]


def test_frames_of_a_retired_generation_are_counted_and_dropped():
    got = []

    async def on_message(gen, message, recv_ms):
        got.append((gen, message))

    async def noop(ws, gen):
        return None

    manager = ConnectionManager(
        "ws://unused",
        name="t",
        on_message=on_message,
        on_event=lambda k, f: None,
        on_connected=noop,
    )
    manager.live = {2}

    async def go():
        await manager.deliver(1, "late frame of the old connection")
        await manager.deliver(2, "current")

    asyncio.run(go())
    assert got == [(2, "current")]
    assert manager.stale_frames == 1
