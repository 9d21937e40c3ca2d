"""Fault plans for the exchange simulator: scriptable, reproducible, parsed from text.

A plan is a comma-separated list of faults; ``@N`` means "after the N-th trade message of
a connection" (counted per connection, from 1), and each WebSocket fault fires on the
first connection that reaches N unless ``*`` marks it as firing on every connection::

    close:1006@500        close the socket with code 1006 after 500 trade messages
    silence@800           stop sending (keep the socket open: a half-open connection)
    resend:50             after a reconnect, send the previous connection's last 50 again
    malformed@100         send one frame that is not JSON
    conflict@300          re-send trade 300 with a different quantity (same id)
    late:5@400            hold 5 trades back and deliver them after the next 5
    drop:20@300           after trade message 300, silently skip the next 20 trades (never
                          sent over WebSocket; they stay on the tape, so REST serves them:
                          a hole a back-fill can repair)
    rest429:3             answer the next 3 REST requests 429 with Retry-After: 1
    rest418:1             answer the next REST request 418 with Retry-After: 1
    rest5xx:2             answer the next 2 REST requests 503
    restslow:200          delay every REST answer by 200 ms
    resttruncate:2        cut the next 2 aggTrades pages short (half the rows)
    resthtml:1            answer the next REST request with an HTML page
    restconflict:3        REST aggTrades serves each symbol's 3rd tape trade (agg id
                          first_agg_id + 2) with its quantity + 0.001, every time; the
                          WebSocket sends the true one

Unknown fault names or malformed numbers are a ValidationError naming the token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from buff_dataplane.core.errors import ValidationError

WS_FAULTS = ("close", "silence", "resend", "malformed", "conflict", "late", "drop")
REST_FAULTS = (
    "rest429",
    "rest418",
    "rest5xx",
    "restslow",
    "resttruncate",
    "resthtml",
    "restconflict",
)
_NEEDS_AT = ("close", "silence", "malformed", "conflict", "late", "drop")
_NEEDS_ARG = ("resend", "late", "drop")
_TOKEN = re.compile(r"(?P<name>[a-z0-9]+)(?::(?P<arg>\d+))?(?:@(?P<at>\d+))?(?P<every>\*)?")


@dataclass
class WsFault:
    name: str
    arg: int | None
    at: int | None
    every: bool = False
    fired: bool = False


@dataclass
class FaultPlan:
    ws: list[WsFault] = field(default_factory=list)
    rest: dict[str, int] = field(default_factory=dict)  # name -> remaining count or value
    text: str = ""

    def take_rest(self, name: str) -> bool:
        """Consume one occurrence of a counted REST fault."""
        left = self.rest.get(name, 0)
        if left <= 0:
            return False
        self.rest[name] = left - 1
        return True


def parse_faults(text: str) -> FaultPlan:
    plan = FaultPlan(text=text)
    for token in (t.strip() for t in text.split(",") if t.strip()):
        m = _TOKEN.fullmatch(token)
        if m is None:
            raise ValidationError(f"fault {token!r} is not NAME[:N][@AT][*]")
        name = m.group("name")
        arg = int(m.group("arg")) if m.group("arg") else None
        at = int(m.group("at")) if m.group("at") else None
        if name in WS_FAULTS:
            if name in _NEEDS_AT and at is None:
                raise ValidationError(f"fault {token!r} needs @N (after which trade message)")
            if name in _NEEDS_ARG and arg is None:
                raise ValidationError(f"fault {token!r} needs :N (how many messages)")
            plan.ws.append(WsFault(name, arg, at, every=bool(m.group("every"))))
        elif name in REST_FAULTS:
            if arg is None:
                raise ValidationError(f"fault {token!r} needs :N")
            if name == "restconflict" and arg < 1:
                raise ValidationError(f"fault {token!r} needs :K >= 1 (the K-th trade)")
            plan.rest[name] = arg
        else:
            known = ", ".join(WS_FAULTS + REST_FAULTS)
            raise ValidationError(f"unknown fault {name!r} in {token!r}: expected one of {known}")
    return plan
