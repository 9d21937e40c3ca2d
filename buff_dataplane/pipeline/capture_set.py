"""Several venues in one capture process: one :class:`Capture` per venue over one log.

Each venue keeps its own connections, queue, writer, de-duplication, gap worker and health
(its streams are its own: ``<venue>/...``), and publishes its own status file; they share
the raw log, its quarantine and the process. A venue is listed with its symbols and
channels and, optionally, its WebSocket and REST endpoints (:class:`VenuePlan`), from
repeated ``--venue`` options or a TOML file::

    [[venue]]
    name = "binance-usdm"
    symbols = ["BTC-USDT-PERP", "ETH-USDT-PERP"]
    channels = ["trade", "mark_price"]        # default ["trade"]

    [[venue]]
    name = "binance-spot"
    symbols = ["BTC-USDT"]
    endpoint = "ws://127.0.0.1:8766"           # default: the venue's own
    rest_endpoint = "http://127.0.0.1:8766"    # default: the venue's own unless endpoint is set

A signal or the duration stops every venue; a venue that fails (no connection within the
grace period, an authentication refusal) stops the others and its error ends the process,
so a supervisor restarts the whole recorder and the restart resumes every stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from buff_dataplane.core.errors import ConfigError, FeedError, ValidationError
from buff_dataplane.core.ids import validate_symbol, validate_venue
from buff_dataplane.pipeline.capture import Capture, CaptureStats

_KEYS = frozenset({"name", "symbols", "channels", "endpoint", "rest_endpoint"})


@dataclass(frozen=True)
class VenuePlan:
    """What to record of one venue, and where (None: the venue's own endpoints)."""

    venue: str
    symbols: tuple[str, ...]
    channels: tuple[str, ...] = ("trade",)
    endpoint: str | None = None
    rest_endpoint: str | None = None

    def __post_init__(self) -> None:
        validate_venue(self.venue)
        if not self.symbols:
            raise ValidationError(f"{self.venue}: no symbols to capture")
        for sym in self.symbols:
            validate_symbol(sym)
        if not self.channels:
            raise ValidationError(f"{self.venue}: no channels to capture")


def plans_from_toml(path: Path) -> list[VenuePlan]:
    """The venues of a capture config file; ConfigError naming the first problem."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read capture config {path}: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"capture config {path} is not valid TOML: {exc}") from exc
    unknown = sorted(set(doc) - {"venue"})
    if unknown:
        raise ConfigError(f"capture config {path}: unknown key {unknown[0]!r} (expected [[venue]])")
    tables = doc.get("venue")
    if not isinstance(tables, list) or not tables:
        raise ConfigError(f"capture config {path}: no [[venue]] tables")
    plans = []
    for i, table in enumerate(tables):
        where = f"capture config {path}, venue #{i + 1}"
        extra = sorted(set(table) - _KEYS)
        if extra:
            raise ConfigError(f"{where}: unknown key {extra[0]!r}")
        try:
            plans.append(
                VenuePlan(
                    venue=_text(table, "name", where),
                    symbols=_texts(table, "symbols", where),
                    channels=_texts(table, "channels", where, ("trade",)),
                    endpoint=_opt_text(table, "endpoint", where),
                    rest_endpoint=_opt_text(table, "rest_endpoint", where),
                )
            )
        except ValidationError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return check_distinct(plans)


def check_distinct(plans: Sequence[VenuePlan]) -> list[VenuePlan]:
    """Plans in the order given; a venue listed twice is refused (one capture per venue)."""
    seen: set[str] = set()
    for p in plans:
        if p.venue in seen:
            raise ValidationError(f"venue {p.venue} is listed twice: list its symbols once")
        seen.add(p.venue)
    return list(plans)


def _text(table: dict[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: {key!r} must be a non-empty string")
    return value


def _opt_text(table: dict[str, Any], key: str, where: str) -> str | None:
    return None if key not in table else _text(table, key, where)


def _texts(
    table: dict[str, Any], key: str, where: str, default: tuple[str, ...] | None = None
) -> tuple[str, ...]:
    if key not in table and default is not None:
        return default
    value = table.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: {key!r} must be a non-empty list of strings")
    return tuple(value)


async def run_captures(
    captures: Sequence[Capture], duration_s: float | None, *, handle_signals: bool = False
) -> list[CaptureStats]:
    """Run every capture until the duration, a signal, or the first failure (raised)."""
    loop = asyncio.get_running_loop()

    def stop_all() -> None:
        for c in captures:
            c.stop()

    if handle_signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop_all)
    tasks = [asyncio.create_task(c.run(duration_s=duration_s)) for c in captures]
    try:
        for done in asyncio.as_completed(tasks):
            try:
                await done
            except (FeedError, ValidationError):
                stop_all()
                raise
    finally:
        stop_all()
        for task in tasks:  # every capture seals its streams before the process ends
            with contextlib.suppress(Exception):
                await task
        if handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
    return [t.result() for t in tasks]
