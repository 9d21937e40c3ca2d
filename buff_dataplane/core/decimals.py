"""Exact decimal helpers: money never passes through float.

Venue payloads carry prices and sizes as decimal text (``"61800.30"``) or, for some
venues, as JSON numbers; both are parsed from their text. :func:`canonical_decimal`
gives the one string form used in digests: no exponent, no trailing zeros after the
point, no lone point, ``0`` for every zero (``"-0.00"`` -> ``"0"``).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from buff_dataplane.core.errors import ValidationError

_DECIMAL_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_MAX_DECIMAL_TEXT = 64


def parse_decimal(text: str | bytes, *, field: str = "value") -> Decimal:
    """Parse decimal ``text`` exactly; refuse NaN, infinities, floats-as-objects and junk."""
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            raise ValidationError(f"{field}: not an ASCII decimal: {text[:40]!r}") from None
    if not isinstance(text, str):
        raise ValidationError(f"{field}: expected decimal text, got {type(text).__name__}")
    if len(text) > _MAX_DECIMAL_TEXT or not _DECIMAL_RE.fullmatch(text):
        raise ValidationError(f"{field}: not a finite decimal: {text[:40]!r}")
    try:
        return Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only valid forms
        raise ValidationError(f"{field}: not a finite decimal: {text!r}") from exc


def canonical_decimal(value: Decimal | str) -> str:
    """The canonical text of a decimal: plain notation, no trailing zeros, ``0`` for zero."""
    dec = parse_decimal(value) if isinstance(value, str) else value
    if not dec.is_finite():
        raise ValidationError(f"not a finite decimal: {dec!r}")
    if dec.is_zero():
        return "0"
    text = format(dec, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text
