"""UTC times given by users: ISO-8601 text or epoch milliseconds, parsed exactly."""

from __future__ import annotations

import datetime as dt
import re

from buff_dataplane.core.errors import ValidationError
from buff_dataplane.core.events import MAX_TS_MS, MIN_TS_MS

_MS_RE = re.compile(r"\d{1,13}", re.ASCII)


def parse_utc_ms(text: str, *, what: str = "time") -> int:
    """``2024-08-08T23:55:00Z`` (a zone is required unless it is a bare date) or epoch ms."""
    value = text.strip()
    if _MS_RE.fullmatch(value):
        ms = int(value)
    else:
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError(
                f"{what} {text!r} is not ISO-8601 UTC (2024-08-08T23:55:00Z) or epoch ms"
            ) from None
        if parsed.tzinfo is None:
            if len(value) != 10:  # a bare date is midnight UTC; a bare time is ambiguous
                raise ValidationError(f"{what} {text!r} has no time zone: add Z for UTC")
            parsed = parsed.replace(tzinfo=dt.UTC)
        delta = parsed - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        ms = (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    if not MIN_TS_MS <= ms <= MAX_TS_MS:
        raise ValidationError(f"{what} {text!r} is outside 2000..2100")
    return ms


def format_utc_ms(ms: int) -> str:
    stamp = dt.datetime.fromtimestamp(ms // 1000, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{ms % 1000:03d}Z"
