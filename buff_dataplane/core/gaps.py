"""Gaps as facts: the ledger row, and detection as a pure function over what the log holds.

A gap is a stretch of a trade stream where trades may be missing. It is found from facts
only, never from a clock:

* ``trade_id``: a jump in a venue's contiguous trade ids (``a`` then ``a + k``, ``k > 1``);
  the missing ids are ``a + 1 .. a + k - 1`` and their trades lie between the
  neighbours' exchange times. The kind is refined from the control events inside that
  time span: ``restart`` (a capture stopped and started again), ``downtime`` (a
  connection dropped), ``overflow`` (the socket-to-log queue was full).
* ``downtime`` / ``restart`` without ids: on venues whose ids are not contiguous the
  control events' windows themselves are the gaps (a reconnect may have lost trades and
  nothing in the data can prove otherwise).
* ``edge``: when a range is asked for, the time before the first and after the last
  trade of the stream inside it.
* ``conflict``: a trade id whose WebSocket and REST contents differ (found by back-fill).

A gap's id is derived from its stream and range, so finding the same hole twice (live by
the capture, later by ``buff gaps`` over the log) names the same ledger row. Statuses:
``OPEN`` (found, not yet repaired), ``BACKFILLED`` (the missing trades were fetched and
appended, or the venue proved there were none), ``UNRESOLVED`` (attempts exhausted, too
old for the venue's retention, or a conflict); ``reason`` says why.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence

import msgspec

from buff_dataplane.core.errors import ValidationError

GAP_KINDS = ("trade_id", "restart", "downtime", "overflow", "edge", "conflict")
GAP_STATUSES = ("OPEN", "BACKFILLED", "UNRESOLVED")

# Control events that open a window in which the feed was not being recorded, and the
# ones that close it. ``capture_stopped`` .. ``capture_started`` is a restart; a crash
# leaves no ``capture_stopped``, so a ``capture_started`` after data is a restart too.
_DOWN = {"disconnected": "downtime", "capture_stopped": "restart"}
_UP = ("subscribed", "connected", "capture_started")


class Gap(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the gap ledger (the latest state of the gap ``gap_id``)."""

    gap_id: str
    stream_id: str
    kind: str
    id_from: int | None  # first missing trade id (inclusive), when known
    id_to: int | None  # last missing trade id (inclusive), when known
    ts_from_ms: int  # the missing trades lie in [ts_from_ms, ts_to_ms]
    ts_to_ms: int
    detected_at_ms: int
    status: str = "OPEN"
    attempts: int = 0
    filled: int = 0  # trades appended by back-fill
    reason: str = ""
    updated_at_ms: int = 0

    def __post_init__(self) -> None:
        if self.kind not in GAP_KINDS:
            raise ValidationError(f"gap kind {self.kind!r}: expected one of {GAP_KINDS}")
        if self.status not in GAP_STATUSES:
            raise ValidationError(f"gap status {self.status!r}: expected {GAP_STATUSES}")
        if self.ts_to_ms < self.ts_from_ms:
            raise ValidationError(
                f"gap {self.gap_id}: time range {self.ts_from_ms}..{self.ts_to_ms} is inverted"
            )
        if self.id_from is not None and self.id_to is not None and self.id_to < self.id_from:
            raise ValidationError(
                f"gap {self.gap_id}: id range {self.id_from}..{self.id_to} is inverted"
            )

    @property
    def open(self) -> bool:
        return self.status == "OPEN"


def gap_id(stream_id: str, *parts: object) -> str:
    """The deterministic id of a gap: the same hole always has the same id."""
    text = "|".join(str(p) for p in (stream_id, *parts))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def new_gap(
    stream_id: str,
    kind: str,
    *,
    id_from: int | None,
    id_to: int | None,
    ts_from_ms: int,
    ts_to_ms: int,
    detected_at_ms: int,
    key: tuple[object, ...] | None = None,
) -> Gap:
    """A new OPEN gap; its id is derived from ``key`` (default: the stream and range)."""
    return Gap(
        gap_id=gap_id(stream_id, *(key or (id_from, id_to, ts_from_ms, ts_to_ms))),
        stream_id=stream_id,
        kind=kind,
        id_from=id_from,
        id_to=id_to,
        ts_from_ms=ts_from_ms,
        ts_to_ms=ts_to_ms,
        detected_at_ms=detected_at_ms,
        updated_at_ms=detected_at_ms,
    )


class IdJump(msgspec.Struct, frozen=True):
    """Missing ids ``id_from..id_to`` between trades at ``ts_before`` and ``ts_after``."""

    id_from: int
    id_to: int
    ts_before: int
    ts_after: int


def id_jumps(ids: Sequence[int], ts_ms: Sequence[int]) -> list[IdJump]:
    """Jumps in a trade stream's ids; ``ids`` sorted ascending and unique, ``ts_ms`` aligned."""
    if len(ids) != len(ts_ms):
        raise ValueError("ids and ts_ms differ in length")
    out = []
    for (a, ta), (b, tb) in itertools.pairwise(zip(ids, ts_ms, strict=True)):
        if b <= a:
            raise ValueError(f"ids are not strictly increasing at {a}, {b}")
        if b > a + 1:
            out.append(IdJump(a + 1, b - 1, min(ta, tb), max(ta, tb)))
    return out


class ControlFact(msgspec.Struct, frozen=True):
    """A control event as gap detection needs it: when, and what happened."""

    ts_ms: int
    event: str


def down_windows(controls: Sequence[ControlFact]) -> list[tuple[int, int, str]]:
    """Windows ``(from, to, kind)`` in which a feed was not recorded, from control events.

    ``controls`` in log order. A window opens at a disconnect or a capture stop and closes
    at the next subscribe / connect / capture start; a capture start with no stop before
    it (a crash) opens and closes a restart window at the previous fact. A window still
    open at the end runs to the last fact.
    """
    out: list[tuple[int, int, str]] = []
    opened: tuple[int, str] | None = None
    last_ts: int | None = None
    for c in controls:
        if c.event in _DOWN:
            if opened is None:
                opened = (c.ts_ms, _DOWN[c.event])
            elif _DOWN[c.event] == "restart":
                opened = (opened[0], "restart")
        elif c.event in _UP:
            if opened is not None:
                kind = "restart" if c.event == "capture_started" else opened[1]
                out.append((opened[0], c.ts_ms, kind))
                opened = None
            elif c.event == "capture_started" and last_ts is not None:
                out.append((last_ts, c.ts_ms, "restart"))  # killed: no stop was written
        last_ts = c.ts_ms
    if opened is not None and last_ts is not None:
        out.append((opened[0], last_ts, opened[1]))
    return out


def _refine(jump: IdJump, windows: Sequence[tuple[int, int, str]], overflows: Sequence[int]) -> str:
    for lo, hi, kind in windows:
        if lo <= jump.ts_after and hi >= jump.ts_before and kind == "restart":
            return "restart"
    for lo, hi, kind in windows:
        if lo <= jump.ts_after and hi >= jump.ts_before:
            return kind
    if any(jump.ts_before <= t <= jump.ts_after for t in overflows):
        return "overflow"
    return "trade_id"


def detect(
    stream_id: str,
    ids: Sequence[int],
    ts_ms: Sequence[int],
    controls: Sequence[ControlFact],
    *,
    ids_contiguous: bool,
    detected_at_ms: int,
    range_ms: tuple[int, int] | None = None,
    stated: Sequence[tuple[int, int]] = (),
) -> list[Gap]:
    """Every gap of one trade stream, sorted by time then id; pure.

    ``ids`` / ``ts_ms``: the stream's distinct trade ids ascending with their exchange
    times; ``controls``: the symbol's control events in log order; ``range_ms``: a
    requested ``[from, to)`` whose uncovered edges are gaps too; ``stated``: the venue's
    own ``(exchange time, latest trade id)`` statements (Coinbase heartbeats). A stated id
    past the last id logged is a loss no later trade showed: a gap up to that id.
    """
    gaps: list[Gap] = []
    windows = down_windows(controls)
    overflows = [c.ts_ms for c in controls if c.event == "overflow"]

    def add(
        kind: str,
        id_from: int | None,
        id_to: int | None,
        lo: int,
        hi: int,
        key: tuple[object, ...] | None = None,
    ) -> None:
        gaps.append(
            new_gap(
                stream_id,
                kind,
                id_from=id_from,
                id_to=id_to,
                ts_from_ms=lo,
                ts_to_ms=hi,
                detected_at_ms=detected_at_ms,
                key=key,
            )
        )

    if ids_contiguous:
        for j in id_jumps(ids, ts_ms):
            add(_refine(j, windows, overflows), j.id_from, j.id_to, j.ts_before, j.ts_after)
        if ids and stated:
            said_ts, said_id = max(stated, key=lambda s: (s[1], s[0]))
            if said_id > ids[-1]:
                last_ts = ts_ms[-1]
                j = IdJump(ids[-1] + 1, said_id, min(last_ts, said_ts), max(last_ts, said_ts))
                add(_refine(j, windows, overflows), j.id_from, j.id_to, j.ts_before, j.ts_after)
    else:
        for lo, hi, kind in windows:
            add(kind, None, None, lo, hi)
    if range_ms is not None:
        # An edge is named by the range asked for, not by the data: after a back-fill the
        # stream's first trade may still lie inside the range (the venue had none
        # earlier), and asking again must find the same, already decided, edge.
        lo, hi = range_ms
        if hi <= lo:
            raise ValidationError(f"range {lo}..{hi} is empty or inverted")
        if not ids:
            add("edge", None, None, lo, hi - 1, ("edge", lo, hi))
        else:
            first_ts, last_ts = min(ts_ms), max(ts_ms)
            if first_ts > lo:
                id_to = ids[0] - 1 if ids_contiguous else None
                add("edge", None, id_to, lo, min(first_ts, hi - 1), ("edge-head", lo, hi))
            if last_ts < hi - 1:
                id_from = ids[-1] + 1 if ids_contiguous else None
                add("edge", id_from, None, max(last_ts, lo), hi - 1, ("edge-tail", lo, hi))
    gaps.sort(key=lambda g: (g.ts_from_ms, g.ts_to_ms, g.id_from or -1, g.gap_id))
    return gaps
