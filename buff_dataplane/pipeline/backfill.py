"""Back-fill: repair a gap from the venue's REST trade history, or say why it cannot be.

For one ledger gap, :meth:`Backfiller.fill`:

1. refuses without a request when the gap is older than the venue's REST retention
   (``UNRESOLVED``, reason ``retention``);
2. pages through the history: by ``fromId`` when the first missing id is known, else by
   time windows shorter than the venue's limit until the first trade is found, then by
   id; each page must continue exactly where the previous one stopped (ids contiguous);
3. de-duplicates every item against what the log already holds (sealed segments, plus
   what the capture has in memory) and appends only the missing trades, page by page, to
   the same stream with ``source = rest_backfill``, the item as payload and the request
   as ``origin``. An id the log holds with different content is a **conflict**: the REST
   item goes to quarantine (``backfill_conflict``) and a ``conflict`` row is recorded;
   nothing is overwritten;
4. records the outcome: ``BACKFILLED`` (with the count appended, zero when the venue
   confirms nothing was missing), ``OPEN`` with one more attempt after a failure, or
   ``UNRESOLVED`` once ``max_attempts`` are spent (the reason names the last failure).

Retries of single requests (429/418 with ``Retry-After``, 5xx, timeouts) happen inside
the REST client; an *attempt* here is one whole pass over the gap, so a gap survives a
venue outage of several minutes before it is given up. Re-running is idempotent: what a
previous pass appended is found in the log and not appended again.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import msgspec

from buff_dataplane.core.config import _Config
from buff_dataplane.core.errors import FeedError, PayloadRejected, ValidationError
from buff_dataplane.core.gaps import Gap, new_gap
from buff_dataplane.core.ids import StreamId, validate_symbol
from buff_dataplane.core.trades import COVERED, Trade, content_digest
from buff_dataplane.core.venues import trade_ids
from buff_dataplane.feeds.base import single_trade
from buff_dataplane.feeds.history import HistoryPage, TradeHistory
from buff_dataplane.feeds.registry import parser_for
from buff_dataplane.pipeline.executors import check_executor, map_partitions
from buff_dataplane.pipeline.log_facts import scan_gaps, trade_index
from buff_dataplane.storage.gap_ledger import GapLedger, ledger_for
from buff_dataplane.storage.log import RawLog, open_log
from buff_dataplane.storage.objstore import LocalStore, ObjectStore, task_store


class BackfillConfig(_Config, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Back-fill settings: attempts per gap, and the pause between attempts."""

    _ranges: ClassVar[dict[str, tuple[int, int]]] = {
        "max_attempts": (1, 100),
        "retry_pause_ms": (0, 600_000),
        "grace_ms": (0, 600_000),
    }

    max_attempts: int = 3
    retry_pause_ms: int = 2_000  # doubled after each failed attempt, with jitter
    grace_ms: int = 1_000  # capture: wait after a jump, so late frames can close it


class _Incomplete(Exception):
    """The venue's answer did not cover the gap (a failed attempt, retried)."""

    reason = "incomplete"


class _Unfillable(Exception):
    """The venue's history cannot fill the gap (no retry helps)."""


@dataclass
class FillOutcome:
    gap: Gap
    appended: int = 0
    duplicates: int = 0
    conflicts: list[Gap] = field(default_factory=list)
    requests: int = 0


Known = Callable[[StreamId, int], int | None]  # trade id -> content digest, if held


class Backfiller:
    """Fills ledger gaps of one venue; ``known`` / ``on_append`` hook a running capture in."""

    def __init__(
        self,
        history: TradeHistory,
        log: RawLog,
        ledger: GapLedger,
        *,
        now_ms: Callable[[], int],
        config: BackfillConfig | None = None,
        known: Known | None = None,
        on_append: Callable[[StreamId, Trade], None] | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.history = history
        self.venue = history.venue
        self.parser = parser_for(self.venue)
        self.log = log
        self.ledger = ledger
        self.now_ms = now_ms
        self.config = config or BackfillConfig()
        self._known = known
        self._on_append = on_append
        self._sleep = sleep
        self._rng = rng or random.Random()

    def _update(self, gap: Gap, **changes: Any) -> Gap:
        new = msgspec.structs.replace(gap, updated_at_ms=self.now_ms(), **changes)
        self.ledger.record([new])
        return new

    async def fill(self, gap: Gap) -> FillOutcome:
        """Run attempts on ``gap`` until it is decided or the attempts are spent."""
        out = FillOutcome(gap)
        if gap.kind == "conflict" or gap.status == "BACKFILLED":
            return out
        age = self.now_ms() - gap.ts_from_ms
        if age > self.history.retention_ms:
            if gap.status == "UNRESOLVED" and gap.reason.startswith("retention"):
                return out  # decided, and asking again cannot help
            hours = self.history.retention_ms / 3_600_000
            out.gap = self._update(
                gap,
                status="UNRESOLVED",
                reason=f"retention: {age // 3_600_000} h old, past {self.venue}'s "
                f"REST history of {hours:g} h",
            )
            return out
        if gap.status == "UNRESOLVED":
            gap = self._update(gap, status="OPEN", attempts=0, reason="retry asked for")
        pause = self.config.retry_pause_ms / 1000
        while True:
            attempts = gap.attempts + 1
            try:
                await self._attempt(gap, out)
            except (_Unfillable, ValidationError) as exc:
                # The venue's history cannot fill it, or the venue refuses the request on
                # its merits (a delisted symbol): no retry helps, and a running capture
                # must go on recording.
                out.gap = self._update(
                    gap,
                    status="UNRESOLVED",
                    attempts=attempts,
                    filled=out.appended,
                    reason=f"unfillable: {exc}",
                )
                return out
            except (FeedError, _Incomplete) as exc:
                reason = getattr(exc, "reason", type(exc).__name__)
                if attempts >= self.config.max_attempts:
                    out.gap = self._update(
                        gap,
                        status="UNRESOLVED",
                        attempts=attempts,
                        filled=out.appended,
                        reason=f"{reason} after {attempts} attempts: {exc}",
                    )
                    return out
                gap = self._update(
                    gap, attempts=attempts, filled=out.appended, reason=f"{reason}: {exc}"
                )
                await self._sleep(pause * self._rng.uniform(0.5, 1.0))
                pause *= 2
                continue
            what = f"{out.appended} trades appended" if out.appended else "none missing"
            out.gap = self._update(
                gap,
                status="BACKFILLED",
                attempts=attempts,
                filled=out.appended,
                reason=f"{what} (venue REST history)",
            )
            return out

    # -- one pass ------------------------------------------------------------------------

    def _wanted(self, gap: Gap, trade_id: int, ts: int) -> bool:
        if gap.id_from is not None and trade_id < gap.id_from:
            return False
        if gap.id_to is not None and trade_id > gap.id_to:
            return False
        if gap.id_from is not None and gap.id_to is not None:
            return True  # an id gap: the ids say it all
        return gap.ts_from_ms <= ts <= gap.ts_to_ms

    def _done(self, gap: Gap, page: HistoryPage) -> bool:
        if gap.id_to is not None:
            return page.ids[-1] >= gap.id_to
        return page.ts_ms[-1] > gap.ts_to_ms

    async def _pages(self, gap: Gap, venue_symbol: str, out: FillOutcome) -> AsyncIterator[Any]:
        """The venue's history over the gap, page by page, as its paging allows."""
        if self.history.paging == "recent":
            async for page in self._recent(gap, venue_symbol, out):
                yield page
            return
        next_id = gap.id_from if self.history.paging == "id" else None
        if next_id is None:  # walk by time: to the first trade (id paging), or throughout
            async for page in self._by_time(gap, venue_symbol, out):
                yield page
                if self.history.paging == "id":
                    next_id = page.ids[-1] + 1
                    break
            if next_id is None or self._done(gap, page):
                return
        async for page in self._by_id(gap, venue_symbol, next_id, out):
            yield page

    async def _by_id(
        self, gap: Gap, venue_symbol: str, next_id: int, out: FillOutcome
    ) -> AsyncIterator[Any]:
        h = self.history
        contiguous = trade_ids(self.venue) != "unordered"
        while True:
            out.requests += 1
            page = await h.trades(venue_symbol, from_id=next_id, limit=h.page_limit)
            if not page.ids:
                if gap.id_to is not None and next_id <= gap.id_to:
                    raise _Incomplete(
                        f"the venue's history ends at id {next_id - 1}, before {gap.id_to}"
                    )
                return
            if contiguous and page.ids[0] != next_id:
                raise _Unfillable(f"the venue's history has no ids {next_id}..{page.ids[0] - 1}")
            yield page
            if self._done(gap, page):
                return
            next_id = page.ids[-1] + 1

    async def _by_time(self, gap: Gap, venue_symbol: str, out: FillOutcome) -> AsyncIterator[Any]:
        """Windows from the gap's start; each page continues at its last trade's time (the
        trades of that millisecond come again and are de-duplicated). On a venue paged by
        time only, an id gap's ids must come without a hole, up to its last id."""
        h = self.history
        hole = (gap.id_from, gap.id_to) if h.paging == "time" else (None, None)
        expect, last_id = hole
        w = gap.ts_from_ms
        while w <= gap.ts_to_ms:
            end = min(w + h.max_window_ms, gap.ts_to_ms)
            out.requests += 1
            page = await h.trades(venue_symbol, start_ms=w, end_ms=end, limit=h.page_limit)
            if not page.ids:
                w = end + 1
                continue
            if expect is not None and last_id is not None:
                for i in page.ids:
                    if i > expect and expect <= last_id:
                        raise _Unfillable(f"the venue's history has no ids {expect}..{i - 1}")
                    expect = max(expect, i + 1)
            yield page
            if self._done(gap, page):
                return
            last = page.ts_ms[-1]
            if len(page.ids) < h.page_limit:
                w = end + 1  # the window is exhausted
            elif last > w:
                w = last  # a full page: its last millisecond may hold more, ask again
            else:
                raise _Unfillable(
                    f"{len(page.ids)} trades at {w} ms fill a page: paging by time cannot pass"
                )
        if last_id is not None:
            raise _Incomplete(f"the venue's history up to {gap.ts_to_ms} ms lacks id {gap.id_to}")

    async def _recent(self, gap: Gap, venue_symbol: str, out: FillOutcome) -> AsyncIterator[Any]:
        """The venue serves only its latest trades: a gap they do not reach is unfillable."""
        h = self.history
        out.requests += 1
        page = await h.trades(venue_symbol, limit=h.page_limit)
        whole = len(page.ids) < h.page_limit  # a short page is the venue's whole history
        if not page.ids or (page.ts_ms[0] > gap.ts_from_ms and not whole):
            since = f"from {page.ts_ms[0]} ms" if page.ids else "none"
            raise _Unfillable(
                f"{self.venue} REST serves only its latest {h.page_limit} trades ({since}); "
                f"the gap starts at {gap.ts_from_ms} ms, before them"
            )
        yield page

    async def _attempt(self, gap: Gap, out: FillOutcome) -> None:
        sid = StreamId.parse(gap.stream_id)
        venue_symbol = self.parser.to_venue(sid.symbol)
        writer = self.log.writer(sid)
        index: dict[int, int] = {}
        indexed: tuple[int, int] | None = None
        async for page in self._pages(gap, venue_symbol, out):
            lo, hi = min(page.ts_ms), max(page.ts_ms)
            if indexed is None or lo < indexed[0] or hi > indexed[1]:
                lo = lo if indexed is None else min(lo, indexed[0])
                hi = hi if indexed is None else max(hi, indexed[1])
                # Keep what this pass appended: the log's index may not hold it yet.
                index = {**trade_index(self.log, sid, lo, hi), **index}
                indexed = (lo, hi)
            payloads: list[bytes] = []
            ts_ex: list[int | None] = []
            new: list[Trade] = []
            for item in page.items:
                trade = self._trade(item, page.request)
                key = content_digest(trade)
                have = index.get(trade.trade_id)
                if have is None and self._known is not None:
                    have = self._known(sid, trade.trade_id)
                if have is not None:
                    # COVERED: inside a logged print of several matches, a duplicate.
                    if have not in (key, COVERED):
                        out.conflicts.append(self._conflict(sid, trade, item))
                    elif self._wanted(gap, trade.trade_id, trade.ts_ms):
                        out.duplicates += 1
                    continue
                if self._wanted(gap, trade.trade_id, trade.ts_ms):
                    payloads.append(item)
                    ts_ex.append(trade.ts_ms)
                    new.append(trade)
                    index[trade.trade_id] = key
            if payloads:
                now = self.now_ms()
                writer.append_batch(
                    payloads,
                    ts_ex,
                    [now] * len(payloads),
                    source="rest_backfill",
                    origin=f"rest:{page.request}",
                )
                out.appended += len(payloads)
                if self._on_append is not None:
                    for trade in new:
                        self._on_append(sid, trade)
        writer.commit()

    def _trade(self, item: bytes, request: str) -> Trade:
        try:
            trade = single_trade(self.parser.parse(item))
        except PayloadRejected as exc:
            raise _Unfillable(f"item of {request} refused by the parser: {exc}") from exc
        if trade is None:
            raise _Unfillable(f"item of {request} is not a trade")
        return trade

    def _conflict(self, sid: StreamId, trade: Trade, item: bytes) -> Gap:
        now = self.now_ms()
        detail = (
            f"trade id {trade.trade_id}: the log holds other content than REST's "
            f"{trade.taker_side} {trade.size}@{trade.price} T={trade.ts_ms}"
        )
        self.log.quarantine.add(
            venue=self.venue,
            payload=item,
            reason="backfill_conflict",
            detail=detail,
            received_ms=now,
            stream_id=str(sid),
        )
        self.log.quarantine.flush()
        row = new_gap(
            str(sid),
            "conflict",
            id_from=trade.trade_id,
            id_to=trade.trade_id,
            ts_from_ms=trade.ts_ms,
            ts_to_ms=trade.ts_ms,
            detected_at_ms=now,
        )
        row = msgspec.structs.replace(row, status="UNRESOLVED", reason=f"conflict: {detail}")
        self.ledger.add_found([row])
        return row


def open_gaps(ledger: GapLedger, streams: Mapping[str, object] | None = None) -> list[Gap]:
    """Gaps to work on: OPEN ones, sorted, optionally limited to ``streams``."""
    return [
        g
        for g in ledger.rows(status="OPEN")
        if (streams is None or g.stream_id in streams) and g.kind != "conflict"
    ]


@dataclass
class BackfillReport:
    found: list[Gap] = field(default_factory=list)  # new ledger rows from the scan
    outcomes: list[FillOutcome] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "found": len(self.found),
            "worked": len(self.outcomes),
            "appended": sum(o.appended for o in self.outcomes),
            "duplicates": sum(o.duplicates for o in self.outcomes),
            "requests": sum(o.requests for o in self.outcomes),
            "conflicts": [c.gap_id for o in self.outcomes for c in o.conflicts],
            "gaps": [
                {
                    "gap_id": o.gap.gap_id,
                    "stream_id": o.gap.stream_id,
                    "kind": o.gap.kind,
                    "status": o.gap.status,
                    "attempts": o.gap.attempts,
                    "appended": o.appended,
                    "reason": o.gap.reason,
                }
                for o in self.outcomes
            ],
        }


def trade_streams(log: RawLog, venue: str, symbols: Sequence[str] | None) -> list[StreamId]:
    """The venue's trade streams in the log (all, or those of ``symbols``), sorted."""
    have = [s for s in log.stream_ids() if s.venue == venue and s.channel == "trade"]
    if symbols is None:
        return have
    wanted = {validate_symbol(s) for s in symbols}
    missing = sorted(wanted - {s.symbol for s in have})
    if missing:
        raise ValidationError(
            f"no trade stream for {', '.join(missing)} on {venue} "
            f"(have: {', '.join(s.symbol for s in have) or 'none'})"
        )
    return [s for s in have if s.symbol in wanted]


def scan_ledger(
    log: RawLog,
    ledger: GapLedger,
    streams: Sequence[StreamId],
    *,
    now_ms: int,
    range_ms: tuple[int, int] | None = None,
    executor: str = "serial",
    workers: int | None = None,
    address: str | None = None,
) -> list[Gap]:
    """Detect the gaps the log shows now and record the ones the ledger lacks.

    The planning is a partition task per stream (pipeline.executors) over what is sealed;
    the gaps are recorded here, stream by stream in the given order, whatever ran them.
    """
    check_executor(executor, workers)
    if executor == "serial" and address is None:
        per_stream = [
            scan_gaps(log, sid, detected_at_ms=now_ms, range_ms=range_ms) for sid in streams
        ]
    else:
        for w in log.writers():
            w.seal()  # a task reads what is sealed: seal what this process holds first
        tasks = [_ScanTask(log.url, str(sid), now_ms, range_ms) for sid in streams]
        per_stream = map_partitions(
            _scan_task, tasks, executor=executor, workers=workers, address=address
        )
    found: list[Gap] = []
    for gaps in per_stream:
        found += ledger.add_found(gaps)
    return found


@dataclass(frozen=True)
class _ScanTask:
    data: str  # the store's URL: the task opens its own (a client does not cross processes)
    stream_id: str
    now_ms: int
    range_ms: tuple[int, int] | None


def _scan_task(task: _ScanTask) -> list[Gap]:
    """One stream's gap scan, a pure partition task over the sealed log."""
    store = task_store(task.data)
    source: Path | ObjectStore = store.root if isinstance(store, LocalStore) else store
    with open_log(source, readonly=True) as log:
        return scan_gaps(
            log, StreamId.parse(task.stream_id), detected_at_ms=task.now_ms, range_ms=task.range_ms
        )


async def backfill_log(
    log: RawLog,
    history: TradeHistory,
    *,
    symbols: Sequence[str] | None = None,
    now_ms: Callable[[], int],
    config: BackfillConfig | None = None,
    range_ms: tuple[int, int] | None = None,
    retry_unresolved: bool = False,
    progress: Callable[[Gap], None] | None = None,
    sleep: Callable[[float], Any] = asyncio.sleep,
    executor: str = "serial",
    workers: int | None = None,
    address: str | None = None,
) -> BackfillReport:
    """``buff backfill``: scan the log for gaps (the planning: a partition task per
    stream, run by ``executor``), then work every open one (sorted)."""
    ledger = ledger_for(log)
    streams = trade_streams(log, history.venue, symbols)
    # Ask the venue's clock first: an endpoint that is not the venue's API fails here,
    # before any gap is touched. And what has happened is the venue's business, not ours.
    venue_now = await history.server_time()
    if range_ms is not None and range_ms[1] > venue_now:
        raise ValidationError(
            f"--to is after the venue's time now ({venue_now} ms): "
            "trades not yet made cannot be back-filled"
        )
    report = BackfillReport(
        found=scan_ledger(
            log,
            ledger,
            streams,
            now_ms=now_ms(),
            range_ms=range_ms,
            executor=executor,
            workers=workers,
            address=address,
        )
    )
    wanted = {str(s) for s in streams}
    todo = [
        g
        for g in ledger.rows()
        if g.stream_id in wanted
        and g.kind != "conflict"
        and (g.status == "OPEN" or (retry_unresolved and g.status == "UNRESOLVED"))
    ]
    filler = Backfiller(history, log, ledger, now_ms=now_ms, config=config, sleep=sleep)
    for gap in todo:
        report.outcomes.append(await filler.fill(gap))
        if progress is not None:
            progress(gap)
    for sid in streams:
        log.writer(sid).seal()
    return report
