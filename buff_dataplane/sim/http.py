"""HTTP answers of the simulator (served by the WebSocket server's request hook)."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Response


def respond(
    ws: ServerConnection,
    status: int,
    body: str,
    ctype: str,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """An HTTP response with ``ctype`` and then ``headers``, in that order."""
    response = ws.respond(HTTPStatus(status), body)
    out = Headers(response.headers)
    del out["Content-Type"]  # Headers is a multi-dict: assignment would add a value
    out["Content-Type"] = ctype
    for name, value in (headers or {}).items():
        out[name] = value
    response.headers = out
    return response
