"""The connection manager's application-level keep-alive, against real sockets on loopback."""

import asyncio
import contextlib
import itertools

import pytest
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from buff_dataplane.core.errors import ConfigError
from buff_dataplane.feeds.connection import ConnectionManager
from buff_dataplane.feeds.ws_base import Keepalive


async def _server(answer):
    """A server recording (loop time, text) of what clients send; ``answer`` may reply."""
    received = []

    async def handle(ws):
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                received.append((asyncio.get_running_loop().time(), message))
                if answer is not None:
                    await ws.send(answer)

    server = await serve(handle, "127.0.0.1", 0)
    port = next(iter(server.sockets)).getsockname()[1]
    return server, f"ws://127.0.0.1:{port}", received


def _manager(url, events, messages, *, keepalive, silence_s):
    async def on_message(gen, message, recv_ms):
        messages.append(message)

    async def subscribe(ws, gen):
        await ws.send("subscribe")

    return ConnectionManager(
        url,
        name="t",
        on_message=on_message,
        on_event=lambda kind, fields: events.append((kind, fields)),
        on_connected=subscribe,
        silence_timeout_s=silence_s,
        keepalive=keepalive,
    )


async def _run_until(manager, done, limit_s):
    task = asyncio.create_task(manager.run())
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(limit_s):
            while not done():
                await asyncio.sleep(0.01)
    await manager.close()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def test_keepalive_text_is_sent_every_interval_and_does_not_hide_a_silent_venue():
    async def go():
        server, url, received = await _server(answer=None)
        events, messages = [], []
        manager = _manager(
            url, events, messages, keepalive=Keepalive(0.1, '{"op":"ping"}'), silence_s=0.75
        )
        async with server:
            await _run_until(
                manager, lambda: any(k == "disconnected" for k, _ in events), limit_s=5
            )
        return received, events, messages, manager

    received, events, messages, manager = asyncio.run(go())
    assert received[0][1] == "subscribe"
    pings = received[1:]
    assert {m for _, m in pings} == {'{"op":"ping"}'}
    # 0.75 s of silence at one ping per 0.1 s: about 7 pings, then the silence timeout.
    assert 5 <= len(pings) <= 8 and manager.keepalives_sent >= len(pings)
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(pings)]
    assert min(gaps) >= 0.09 and max(gaps) < 0.3
    [down] = [f for k, f in events if k == "disconnected"]
    assert down["code"] == 4000 and "no message for 0.75s" in down["reason"]
    assert messages == []


def test_keepalive_answers_keep_a_quiet_connection_up():
    async def go():
        server, url, received = await _server(answer="pong")
        events, messages = [], []
        manager = _manager(url, events, messages, keepalive=Keepalive(0.1, "ping"), silence_s=0.4)
        async with server:
            await _run_until(manager, lambda: False, limit_s=1.2)
        return received, events, messages

    received, events, messages = asyncio.run(go())
    assert [k for k, _ in events] == ["connecting", "connected"]  # never replaced
    assert messages.count("pong") >= 9 and set(messages) == {"pong"}
    assert [m for _, m in received].count("ping") >= 9


def test_no_keepalive_sends_nothing_but_the_subscription():
    async def go():
        server, url, received = await _server(answer=None)
        events, messages = [], []
        manager = _manager(url, events, messages, keepalive=None, silence_s=5)
        async with server:
            await _run_until(manager, lambda: False, limit_s=0.5)
        return received, manager

    received, manager = asyncio.run(go())
    assert [m for _, m in received] == ["subscribe"] and manager.keepalives_sent == 0


@pytest.mark.parametrize(("interval", "text"), [(0, "ping"), (-1.0, "ping"), (1.0, "")])
def test_a_keepalive_needs_a_positive_interval_and_a_text(interval, text):
    with pytest.raises(ConfigError, match="keepalive"):
        Keepalive(interval, text)
