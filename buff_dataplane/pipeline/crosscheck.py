"""``buff crosscheck``: our canonical bars against the venue's own klines, bar by bar.

The latest stored revision of (venue, symbol, timeframe) is read from the bar store; the
venue's klines for [from, to) are fetched over REST; every bucket whose open time lies in
[from, to) is compared on::

    open high low close volume quote_volume trade_count taker_buy_volume taker_buy_quote_volume

Decimals compare by exact numeric value (``Decimal("1.50") == Decimal("1.5")``: the
venue's text and our canonical text may differ in trailing zeros); a value that is not a
decimal (our empty prices before any trade) compares as text. A bucket on one side only
is a disagreement too, and says which side is missing. Our bar's status goes with every
difference, so a ``GAP_UNRESOLVED`` or ``CONFLICT`` bar explains itself.

:func:`compare_bars` is the pure comparison; :func:`crosscheck` the async runner over an
injected kline source; :func:`run_crosscheck` opens the venue's REST client and runs it.
Nothing is written: a cross-check is a report.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Protocol

from buff_dataplane.core.bars import Bar, timeframe_ms
from buff_dataplane.core.errors import ValidationError
from buff_dataplane.core.times import format_utc_ms
from buff_dataplane.feeds.registry import parser_for
from buff_dataplane.feeds.rest_common import Kline, KlineRules, RestPolicy, RestStats
from buff_dataplane.storage.bars_store import ArtifactKey, BarStore
from buff_dataplane.storage.objstore import ObjectStore

COMPARED_FIELDS: tuple[str, ...] = (
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "trade_count",
    "taker_buy_volume",
    "taker_buy_quote_volume",
)


class KlineSource(Protocol):
    """What the cross-check needs of a venue's REST client."""

    @property
    def intervals(self) -> tuple[str, ...]: ...

    @property
    def stats(self) -> RestStats: ...

    @property
    def kline_rules(self) -> KlineRules: ...

    async def klines(
        self, venue_symbol: str, interval: str, start_ms: int, end_ms: int
    ) -> list[Kline]: ...


@dataclass(frozen=True)
class FieldDiff:
    field: str
    ours: str
    venue: str


@dataclass(frozen=True)
class BarDiff:
    """One disagreeing bucket: differing fields, or a side that has no bar at all."""

    open_time_ms: int
    status: str | None  # our bar's status; None when we have no bar
    missing: str | None = None  # "ours" or "venue" when one side has no bar
    fields: tuple[FieldDiff, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "open_time_ms": self.open_time_ms,
            "open_time": format_utc_ms(self.open_time_ms),
            "status": self.status,
            "missing": self.missing,
            "fields": [{"field": f.field, "ours": f.ours, "venue": f.venue} for f in self.fields],
        }


@dataclass(frozen=True)
class Comparison:
    compared: int  # buckets present on both sides
    agreeing: int
    differing: int
    ours_only: int
    venue_only: int
    diffs: tuple[BarDiff, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.diffs

    def counts(self) -> dict[str, int]:
        return {
            "compared": self.compared,
            "agreeing": self.agreeing,
            "differing": self.differing,
            "ours_only": self.ours_only,
            "venue_only": self.venue_only,
        }


def same_value(ours: str, venue: str) -> bool:
    """Equal as exact decimals; as text when either is not a decimal."""
    try:
        return Decimal(ours) == Decimal(venue)
    except (InvalidOperation, ValueError):
        return ours == venue


def _text(value: object) -> str:
    return str(value)


def compare_bars(
    ours: Sequence[Bar],
    venue: Sequence[Kline],
    *,
    start_ms: int,
    end_ms: int,
    rules: KlineRules = KlineRules(),
) -> Comparison:
    """Compare the bars of both sides whose open time lies in [start_ms, end_ms), under the
    venue's kline conventions (``rules``); a field the venue does not report is skipped."""
    mine = {b.open_time_ms: b for b in ours if start_ms <= b.open_time_ms < end_ms}
    theirs = {k.open_time_ms: k for k in venue if start_ms <= k.open_time_ms < end_ms}
    closes = {b.open_time_ms: b.close for b in ours}
    diffs: list[BarDiff] = []
    compared = agreeing = ours_only = venue_only = 0
    for t in sorted(mine.keys() | theirs.keys()):
        bar, kline = mine.get(t), theirs.get(t)
        if kline is None:
            assert bar is not None
            if rules.omits_empty and bar.status == "EMPTY":
                continue  # the venue has no kline where nothing traded
            ours_only += 1
            diffs.append(BarDiff(t, bar.status, missing="venue"))
            continue
        if bar is None:
            venue_only += 1
            diffs.append(BarDiff(t, None, missing="ours"))
            continue
        compared += 1
        pairs = [(name, getattr(bar, name), getattr(kline, name)) for name in COMPARED_FIELDS]
        if rules.open_is_previous_close:
            # Compared with our previous bar's close; without one (the first stored bar)
            # the venue's open says nothing we hold, and is not compared.
            prev = closes.get(t - timeframe_ms(bar.timeframe))
            pairs[0] = ("open", prev, kline.open if prev else None)
        fields = tuple(
            FieldDiff(name, _text(mine_v), _text(theirs_v))
            for name, mine_v, theirs_v in pairs
            if theirs_v is not None and not same_value(_text(mine_v), _text(theirs_v))
        )
        if fields:
            diffs.append(BarDiff(t, bar.status, fields=fields))
        else:
            agreeing += 1
    return Comparison(
        compared=compared,
        agreeing=agreeing,
        differing=compared - agreeing,
        ours_only=ours_only,
        venue_only=venue_only,
        diffs=tuple(diffs),
    )


@dataclass(frozen=True)
class CrosscheckReport:
    key: ArtifactKey
    revision: int
    start_ms: int
    end_ms: int
    endpoint: str
    comparison: Comparison
    rest: dict[str, float]

    @property
    def ok(self) -> bool:
        return self.comparison.ok

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "venue": self.key.venue,
            "symbol": self.key.symbol,
            "timeframe": self.key.timeframe,
            "revision": self.revision,
            "from_ms": self.start_ms,
            "to_ms": self.end_ms,
            "from": format_utc_ms(self.start_ms),
            "to": format_utc_ms(self.end_ms),
            "endpoint": self.endpoint,
            "counts": self.comparison.counts(),
            "differing_bars": [d.to_dict() for d in self.comparison.diffs],
            "rest": self.rest,
        }


def check_request(key: ArtifactKey, start_ms: int, end_ms: int, intervals: Sequence[str]) -> None:
    """Refuse what no venue could answer: an empty range, a timeframe it has no klines for."""
    if start_ms >= end_ms:
        raise ValidationError(
            f"inverted or empty range: from {format_utc_ms(start_ms)} is not before "
            f"to {format_utc_ms(end_ms)}"
        )
    if key.timeframe not in intervals:
        raise ValidationError(
            f"{key.venue} has no {key.timeframe} klines to cross-check against: "
            f"use one of {', '.join(t for t in intervals if t != '1M')}"
        )


def latest_bars(store: BarStore, key: ArtifactKey) -> tuple[int, list[Bar]]:
    revision = store.latest(key)
    if revision is None:
        raise ValidationError(
            f"no canonical bars for {key} in {store.root}: run `buff canonicalize` first"
        )
    return revision, store.read_bars(key, revision)


async def crosscheck(
    store: BarStore,
    key: ArtifactKey,
    start_ms: int,
    end_ms: int,
    source: KlineSource,
    *,
    endpoint: str = "",
) -> CrosscheckReport:
    """Compare the latest revision of ``key`` with ``source``'s klines over [start, end).

    Every check that needs no network (range, timeframe, symbol, stored bars) runs first.
    """
    check_request(key, start_ms, end_ms, source.intervals)
    venue_symbol = parser_for(key.venue).to_venue(key.symbol)
    revision, bars = latest_bars(store, key)
    klines = await source.klines(venue_symbol, key.timeframe, start_ms, end_ms)
    return CrosscheckReport(
        key=key,
        revision=revision,
        start_ms=start_ms,
        end_ms=end_ms,
        endpoint=endpoint,
        comparison=compare_bars(
            bars, klines, start_ms=start_ms, end_ms=end_ms, rules=source.kline_rules
        ),
        rest=source.stats.to_dict(),
    )


def run_crosscheck(
    root: Path | ObjectStore,
    key: ArtifactKey,
    start_ms: int,
    end_ms: int,
    *,
    endpoint: str | None = None,
    policy: RestPolicy | None = None,
) -> CrosscheckReport:
    """:func:`crosscheck` against the venue's REST API at ``endpoint`` (default: its own)."""
    from buff_dataplane.feeds.rest_registry import default_rest_endpoint, history_for

    base = endpoint or default_rest_endpoint(key.venue)
    store = BarStore.over(root) if isinstance(root, ObjectStore) else BarStore(root)

    async def go() -> CrosscheckReport:
        async with history_for(key.venue, base, policy) as rest:
            return await crosscheck(store, key, start_ms, end_ms, rest, endpoint=base)

    return asyncio.run(go())
