"""Bars built per UTC day of exchange time, combined into the whole-stream build.

A stream's trades are split by the UTC day of their exchange time; every timeframe
divides a day, so no bucket spans two days. A day's build (the engines' ``build_day_*``)
returns a :class:`DayPart` per timeframe: its bars over its own first..last traded bucket,
and what the combine needs from the neighbouring days. :func:`combine_days` joins the
parts of every day, in day order, into exactly the bars, late list, duplicate count and
conflicts of the whole-stream build (``core.bars.build_bars`` is the specification):

* A traded bar depends only on its own bucket's trades, so a day builds it exactly, as
  long as the day sees every version of each of its trade ids (see below).
* The schedule is the first..last traded bucket over all days, or the requested range.
* Empty buckets (between days, or at a day's edges) repeat the last close before them,
  however many days back; a day knows only its own.
* Statuses are recomputed: ``CONFLICT`` as the day found it, then a trade-id jump or the
  observed window (``GAP_UNRESOLVED``), else ``COMPLETE`` / ``EMPTY``. A jump is between
  neighbours in trade-id order over the whole stream; each day returns its ids as *runs*
  (maximal stretches without a jump, in id order: first and last id, their covered ends
  and exchange times), and the jumps of the stream are those between consecutive runs.
* Late candidates come in ``(ingest_seq, index in message)`` order over all days.

When the combine cannot be exact it returns None and the caller builds the stream whole:

* two days' id runs overlap: an id is in two days (one id, two exchange times: a conflict
  whose versions a day alone cannot see, so its trade would be used) or the ids of two
  days interleave so that a day's runs are not the stream's;
* a trade was read by no day: a message's trades are filed by its earliest trade time
  (the segment's manifest range), so a batch can put a trade in a day its segment's
  range does not reach (``orphans``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import msgspec

from buff_dataplane.core.bars import (
    Bar,
    BuildResult,
    TradeEvent,
    empty_bar,
    is_late,
    timeframe_ms,
)
from buff_dataplane.core.venues import TradeIds, id_span

DAY_MS = 86_400_000

# (first id, its covered lo, its exchange time, last id, its covered hi, its exchange time)
IdRun = tuple[int, int, int, int, int, int]


class DayPart(msgspec.Struct, frozen=True, kw_only=True):
    """One timeframe's build of one UTC day of a stream (its trades only)."""

    day_ms: int
    result: BuildResult  # bars over the day's own traded span (no requested range)
    runs: list[IdRun]  # the day's used trade ids as runs without a jump, in id order
    late_index: list[int]  # index in message of each of result.late
    orphans: int  # trades read whose day's build does not read their segment


def day_of(ts_ms: int) -> int:
    return ts_ms - ts_ms % DAY_MS


def segment_days(lo: int, hi: int) -> range:
    """The days a segment of exchange times ``lo..hi`` (its manifest range) is read for."""
    return range(day_of(lo), day_of(hi) + 1, DAY_MS)


def is_orphan(ts_ms: int, segment_range: tuple[int, int]) -> bool:
    """A trade at ``ts_ms`` whose day is not one its segment is read for."""
    lo, hi = segment_range
    return not day_of(lo) <= day_of(ts_ms) <= day_of(hi)


def id_runs(events: Sequence[TradeEvent], mode: TradeIds) -> list[IdRun]:
    """Runs of the events' trade ids (first version of each, by ingest order) that hold no
    jump, as build_bars looks for them: a jump is ``lo(next) > hi(previous) + 1``."""
    first: dict[int, TradeEvent] = {}
    for ev in sorted(events, key=lambda e: (e.ingest_seq, e.index)):
        first.setdefault(ev.trade.trade_id, ev)
    runs: list[IdRun] = []
    for tid in sorted(first):
        t = first[tid].trade
        lo, hi = id_span(t, mode if mode == "covered" else "contiguous")
        if runs and lo <= runs[-1][4] + 1:
            runs[-1] = (*runs[-1][:3], tid, hi, t.ts_ms)
        else:
            runs.append((tid, lo, t.ts_ms, tid, hi, t.ts_ms))
    return runs


def day_summary(
    events: Sequence[TradeEvent],
    timeframe: str,
    *,
    allowed_lateness_ms: int,
    apply_late: bool,
    ids_cover: bool,
) -> tuple[list[IdRun], list[int]]:
    """The id runs of the used (not late) events and the message index of each late one,
    in build_bars' late order."""
    tf = timeframe_ms(timeframe)
    ordered = sorted(events, key=lambda e: (e.ingest_seq, e.index))
    late = [is_late(e, tf, allowed_lateness_ms, apply_late) for e in ordered]
    used = [e for e, x in zip(ordered, late, strict=True) if not x]
    index = [e.index for e, x in zip(ordered, late, strict=True) if x]
    return id_runs(used, "covered" if ids_cover else "contiguous"), index


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def combine_days(
    parts: Sequence[DayPart],
    *,
    venue: str,
    symbol: str,
    timeframe: str,
    window: tuple[int, int] | None,
    range_ms: tuple[int, int] | None,
    ids_contiguous: bool,
) -> BuildResult | None:
    """The whole-stream build from every day's part (any order), or None when the days
    cannot give it exactly (module docstring)."""
    tf = timeframe_ms(timeframe)
    if any(p.orphans for p in parts):
        return None
    runs = sorted(r for p in parts for r in p.runs)
    if any(b[0] <= a[3] for a, b in itertools.pairwise(runs)):
        return None
    spans: list[tuple[int, int]] = []
    if ids_contiguous:
        for a, b in itertools.pairwise(runs):
            if b[1] > a[4] + 1:
                lo, hi = sorted((a[5], b[2]))
                spans.append((lo - lo % tf, hi - hi % tf))
    spans = _merged(spans)

    keyed = [
        ((c.ingest_seq, i), c)
        for p in parts
        for c, i in zip(p.result.late, p.late_index, strict=True)
    ]
    late = [c for _, c in sorted(keyed, key=lambda kc: kc[0])]
    duplicates = sum(p.result.duplicates for p in parts)
    conflicts = sorted(i for p in parts for i in p.result.conflicts)

    local: dict[int, Bar] = {b.open_time_ms: b for p in parts for b in p.result.bars}
    if range_ms is not None:
        start, end = range_ms
    elif local:
        start, end = min(local), max(local) + tf
    else:
        return BuildResult(bars=[], late=late, duplicates=duplicates, conflicts=conflicts)
    prev_close = ""
    before = [t for t, b in local.items() if t < start and b.event_count > 0]
    if before:
        prev_close = local[max(before)].close
    bars: list[Bar] = []
    k = 0
    for open_time in range(start, end, tf):
        while k < len(spans) and spans[k][1] < open_time:
            k += 1
        gap = (k < len(spans) and spans[k][0] <= open_time) or (
            window is None or not (window[0] <= open_time and open_time + tf <= window[1])
        )
        bar = local.get(open_time)
        if bar is not None and bar.event_count > 0:
            status = (
                "CONFLICT"
                if bar.status == "CONFLICT"
                else ("GAP_UNRESOLVED" if gap else "COMPLETE")
            )
            if status != bar.status:
                bar = msgspec.structs.replace(bar, status=status)
        else:
            if bar is not None and bar.status == "CONFLICT":
                status = "CONFLICT"
            elif gap or not ids_contiguous:
                status = "GAP_UNRESOLVED"
            else:
                status = "EMPTY"
            bar = empty_bar(venue, symbol, timeframe, open_time, tf, status, prev_close)
        prev_close = bar.close
        bars.append(bar)
    return BuildResult(bars=bars, late=late, duplicates=duplicates, conflicts=conflicts)
