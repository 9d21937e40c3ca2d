"""``buff capture``: record a venue's WebSocket feeds into the raw log.

Venue-neutral: the venue's WebSocket adapter (:func:`~buff_dataplane.feeds.ws_registry.
ws_adapter_for`) plans the connections and says what to send on each; its parser reads
the frames. Tasks, all owned by one ``asyncio.TaskGroup``: one connection manager per
planned connection (reading frames into a bounded queue), one writer (draining the queue in
bursts: parse, de-duplicate, quarantine, ``append_batch``), one committer (time-based
group commits), one status publisher. The queue never drops: when it is full the socket
readers wait (backpressure) and an ``overflow`` control event is written, so the stall is
a fact in the log. Connection transitions are written as ``control`` events on every
symbol the connection carries, so downtime windows can be derived from the log alone.

De-duplication by trade id uses a TTL cache (``cachetools``): an exact duplicate (same
id, same parsed trade fields) is counted and skipped; the same id with
different content is quarantined as ``duplicate_conflict`` and the stream is flagged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from cachetools import TTLCache

from buff_dataplane.core.config import _Config
from buff_dataplane.core.errors import FeedError, PayloadRejected, StorageError, ValidationError
from buff_dataplane.core.gaps import Gap, new_gap
from buff_dataplane.core.ids import StreamId, validate_symbol
from buff_dataplane.core.trades import COVERED, Trade, content_digest
from buff_dataplane.core.venues import id_span, trade_ids
from buff_dataplane.feeds.connection import ConnectionManager, Socket, websockets_connect
from buff_dataplane.feeds.history import TradeHistory
from buff_dataplane.feeds.registry import parser_for
from buff_dataplane.feeds.ws_registry import ws_adapter_for
from buff_dataplane.pipeline.backfill import BackfillConfig, Backfiller, open_gaps
from buff_dataplane.pipeline.log_facts import last_trade
from buff_dataplane.storage.gap_ledger import ledger_for
from buff_dataplane.storage.layout import write_file_atomic
from buff_dataplane.storage.log import RawLog


class CaptureConfig(_Config, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Capture settings (validated ranges; the digest goes into the status file)."""

    _ranges: ClassVar[dict[str, tuple[int, int]]] = {
        "silence_timeout_s": (1, 3_600),
        "queue_size": (10, 5_000_000),
        "dedup_ttl_s": (1, 86_400),
        "dedup_entries": (1_000, 50_000_000),  # per trade stream
        "status_interval_ms": (100, 60_000),
        "rotate_after_s": (5, 86_400),
        "stale_after_s": (1, 86_400),
        "connect_grace_s": (1, 600),
        "backfill_drain_s": (0, 3_600),
    }

    silence_timeout_s: int = 30
    queue_size: int = 100_000
    # Per trade stream. A resend burst or a rotation overlap is seconds long; 200k trades
    # for 5 min covers it. Entries are (id, 64-bit content hash): 200k parsed trade tuples held
    # about 165 MB, which alone took half the soak's 300 MB budget.
    dedup_ttl_s: int = 300
    dedup_entries: int = 200_000
    status_interval_ms: int = 2_000
    rotate_after_s: int = 86_400  # at most: the venue adapter's rotate_after_s when shorter
    stale_after_s: int = 10
    connect_grace_s: int = 15
    expected_silence: tuple[str, ...] = ()  # stream ids allowed to be quiet (no alarm)
    backfill_drain_s: int = 30  # on stop, how long running back-fills may take to finish
    backfill: BackfillConfig = BackfillConfig()


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class StreamHealth:
    events: int = 0
    last_ms: int = 0
    duplicates: int = 0
    conflicts: int = 0
    backfilled: int = 0

    def to_dict(self, now: int, stale_ms: int, quiet_ok: bool) -> dict[str, Any]:
        age = None if not self.last_ms else now - self.last_ms
        stale = not quiet_ok and (age is None or age > stale_ms)
        return {
            "events": self.events,
            "last_message_age_ms": age,
            "stale": stale,
            "duplicates": self.duplicates,
            "conflicts": self.conflicts,
            "backfilled": self.backfilled,
            "expected_silence": quiet_ok,
        }


@dataclass
class CaptureStats:
    messages: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    conflicts: int = 0
    overflows: int = 0
    control_events: int = 0
    stale_frames: int = 0
    reconnects: int = 0
    quarantine_upload_errors: int = 0  # store logs: uploads retried later, not lost


class Capture:
    def __init__(
        self,
        log: RawLog,
        *,
        venue: str,
        symbols: list[str],
        channels: list[str],
        endpoint: str,
        config: CaptureConfig | None = None,
        clock_ms: Callable[[], int] = wall_ms,
        connect: Callable[[str], Any] = websockets_connect,
        history: TradeHistory | None = None,
    ) -> None:
        self.adapter = ws_adapter_for(venue)
        self.log = log
        self.venue = venue
        self.parser = parser_for(venue)
        self._ids = trade_ids(venue)
        self.symbols = sorted({validate_symbol(s) for s in symbols})
        if not self.symbols:
            raise ValidationError("no symbols to capture")
        self.venue_symbols = {self.parser.to_venue(s): s for s in self.symbols}
        self.channels = sorted(set(channels))
        self.plans = list(self.adapter.plan_connections(sorted(self.venue_symbols), self.channels))
        self.endpoint = endpoint
        self.config = config or CaptureConfig()
        self.clock = clock_ms
        self._connect = connect
        self.queue: asyncio.Queue[tuple[int, int, str | bytes, int]] = asyncio.Queue(
            self.config.queue_size
        )
        self.stats = CaptureStats()
        self.health: dict[str, StreamHealth] = {}
        # Per trade stream: trade id -> 64-bit content digest, for a TTL.
        self._seen: dict[str, TTLCache[int, int]] = {}
        self.managers: list[ConnectionManager] = []
        self._overflowing = False
        self._stop = asyncio.Event()
        self._connected_once = asyncio.Event()
        self.flagged: set[str] = set()
        # Receive-to-durable latency: (last seq of a batch, its first receive time) per
        # stream until a commit covers it; samples are an upper bound (the committer's tick).
        self._awaiting: dict[str, deque[tuple[int, int]]] = {}
        self.latency_samples: deque[int] = deque(maxlen=200_000)
        self.quarantine_error: str | None = None  # the last failed quarantine upload
        # Gaps: the highest trade id seen per trade stream, why the next jump happened
        # (restart / downtime / overflow), and jumps waiting out the grace period.
        self.ledger = ledger_for(log)
        self.history = history
        self._last: dict[str, tuple[int, int]] = {}
        self._cause: dict[str, str] = {}
        self._jumps: asyncio.Queue[tuple[float, Gap]] = asyncio.Queue()
        self._filling = 0
        self.gap_stats: Counter[str] = Counter()

    # -- control events ---------------------------------------------------------------------

    def _control(self, plan_index: int, kind: str, fields: dict[str, Any]) -> None:
        now = self.clock()
        plan = self.plans[plan_index] if plan_index >= 0 else None
        body = {"event": kind, "venue": self.venue, "ts_ms": now, **fields}
        if plan is not None:
            body["connection"] = plan.name
        payload = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        symbols = self._plan_symbols(plan_index)
        for sym in symbols:
            self.log.writer(StreamId(self.venue, "control", sym)).append(
                payload, None, now, source="ws", conn_id=fields.get("generation")
            )
        self.stats.control_events += 1
        if kind == "connected":
            self._connected_once.set()
        if kind in ("disconnected", "overflow"):
            for sym in symbols:
                sid = str(StreamId(self.venue, "trade", sym))
                self._cause.setdefault(sid, "downtime" if kind == "disconnected" else kind)

    def _plan_symbols(self, plan_index: int) -> list[str]:
        """The instruments of a planned connection (every symbol for -1: the capture's)."""
        if plan_index < 0:
            return self.symbols
        return sorted({self.venue_symbols[s] for s in self.plans[plan_index].venue_symbols})

    # -- reading ----------------------------------------------------------------------------

    def _manager(self, index: int) -> ConnectionManager:
        plan = self.plans[index]

        async def on_message(gen: int, message: str | bytes, recv_ms: int) -> None:
            if self.queue.full() and not self._overflowing:
                self._overflowing = True
                self.stats.overflows += 1
                self._control(index, "overflow", {"queue_size": self.config.queue_size})
            await self.queue.put((index, gen, message, recv_ms))

        async def on_connected(ws: Socket, gen: int) -> None:
            messages = plan.subscribe(gen)
            for message in messages:
                await ws.send(message)
            if not messages:  # the URL subscribed: data flows from the connection on
                self._control(index, "subscribed", {"generation": gen, "ack": None})

        lifetimes = [self.config.rotate_after_s, self.adapter.rotate_after_s]
        return ConnectionManager(
            plan.url(self.endpoint),
            name=f"{self.venue} {plan.name}",
            on_message=on_message,
            on_event=lambda kind, fields: self._control(index, kind, fields),
            on_connected=on_connected,
            connect=self._connect,
            silence_timeout_s=self.config.silence_timeout_s,
            lifetime_s=min(s for s in lifetimes if s is not None),
            clock_ms=self.clock,
            keepalive=self.adapter.keepalive,
        )

    # -- writing ----------------------------------------------------------------------------

    async def _writer(self) -> None:
        while True:
            first = await self.queue.get()
            batch = [first]
            while len(batch) < 10_000:
                try:
                    batch.append(self.queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            self._write_batch(batch)
            if self._overflowing and self.queue.qsize() < self.config.queue_size // 2:
                self._overflowing = False

    def _write_batch(self, batch: list[tuple[int, int, str | bytes, int]]) -> None:
        grouped: dict[tuple[StreamId, int], tuple[list[bytes], list[int | None], list[int]]] = {}
        for index, gen, message, recv_ms in batch:
            self.stats.messages += 1
            payload = message.encode() if isinstance(message, str) else message
            found = self._classify(index, gen, payload, recv_ms)
            if found is None:
                continue
            cols = grouped.setdefault((found[0], gen), ([], [], []))
            cols[0].append(payload)
            cols[1].append(found[1])
            cols[2].append(recv_ms)
        for (sid, gen), (payloads, ts_ex, ts_in) in sorted(
            grouped.items(), key=lambda kv: str(kv[0])
        ):
            last = self.log.writer(sid).append_batch(
                payloads, ts_ex, ts_in, source="ws", conn_id=gen
            )
            self._awaiting.setdefault(str(sid), deque()).append((last, min(ts_in)))
            health = self.health.setdefault(str(sid), StreamHealth())
            health.events += len(payloads)
            health.last_ms = max(health.last_ms, ts_in[-1])

    def _classify(
        self, index: int, gen: int, payload: bytes, recv_ms: int
    ) -> tuple[StreamId, int | None] | None:
        try:
            parsed = self.parser.parse(payload)
            if parsed.kind == "subscription_ack":
                self._control(index, "subscribed", {"generation": gen, "ack": payload.decode()})
                return None
            if parsed.kind == "error":
                raise PayloadRejected("venue_error", payload.decode(errors="replace")[:200])
            if parsed.channel == "control" and parsed.symbol is None:
                # The venue's own message for the whole connection (a pong, a heartbeat, a
                # status): kept as sent in the control stream of each instrument it carries.
                for sym in self._plan_symbols(index):
                    self.log.writer(StreamId(self.venue, "control", sym)).append(
                        payload, parsed.event_ts_exchange_ms, recv_ms, source="ws", conn_id=gen
                    )
                return None
            if parsed.symbol is None or parsed.symbol not in self.symbols:
                raise PayloadRejected("unexpected_symbol", f"{parsed.kind} for {parsed.symbol}")
            sid = StreamId(self.venue, parsed.channel, parsed.symbol)
            if parsed.trades:
                if self._duplicate(sid, parsed.trades):
                    return None
                for trade in parsed.trades:
                    self._track(str(sid), trade)
            if parsed.stated_last_trade_id is not None and parsed.event_ts_exchange_ms:
                trades_sid = StreamId(self.venue, "trade", parsed.symbol)
                self._stated(
                    str(trades_sid), parsed.stated_last_trade_id, parsed.event_ts_exchange_ms
                )
        except PayloadRejected as exc:
            self.log.quarantine.add(
                venue=self.venue,
                payload=payload,
                reason=exc.reason,
                detail=exc.detail,
                received_ms=recv_ms,
                origin=f"ws:{self.plans[index].name}:g{gen}",
            )
            self.stats.quarantined[exc.reason] += 1
            return None
        return sid, parsed.event_ts_exchange_ms

    def _recent(self, sid: str) -> TTLCache[int, int]:
        cache = self._seen.get(sid)
        if cache is None:
            cache = self._seen[sid] = TTLCache(
                maxsize=self.config.dedup_entries,
                ttl=self.config.dedup_ttl_s,
                timer=time.monotonic,
            )
        return cache

    def _duplicate(self, sid: StreamId, trades: tuple[Trade, ...]) -> bool:
        """True when every trade of the message was seen with the same content (skip it).

        A message is kept whole or not at all: one holding any new trade is kept (the bar
        builders count a trade id once), one holding a trade id seen with other content is
        quarantined whole, and only then are its new ids remembered, so a quarantined
        message never marks a trade as seen.
        """
        key = str(sid)
        recent = self._recent(key)
        new: dict[int, int] = {}
        for trade in trades:
            content = content_digest(trade)
            seen = recent.get(trade.trade_id)
            if seen is None:
                seen = new.get(trade.trade_id)
            if seen is None:
                new[trade.trade_id] = content
            elif seen != content:
                self.stats.conflicts += 1
                self.health.setdefault(key, StreamHealth()).conflicts += 1
                self.flagged.add(key)
                raise PayloadRejected(
                    "duplicate_conflict", f"trade id {trade.trade_id} seen with other content"
                )
        if not new:
            self.stats.duplicates += 1
            self.health.setdefault(key, StreamHealth()).duplicates += 1
            return True
        for trade_id, content in new.items():
            recent[trade_id] = content
        if self._ids == "covered":  # the other matches a print covers count as seen
            for trade in trades:
                lo, hi = id_span(trade, self._ids)
                for i in range(lo, hi + 1):
                    if i != trade.trade_id:
                        recent.setdefault(i, COVERED)
        return False

    # -- gaps -------------------------------------------------------------------------------

    def _track(self, sid: str, trade: Trade) -> None:
        """Note a new trade; a jump past the highest id seen so far is a gap candidate.

        Ids are the print's span in the venue's sequence (core.venues): an OKX print of
        ``count`` matches continues the sequence from its first covered id.
        """
        lo, hi = id_span(trade, self._ids)
        ts_ms = trade.ts_ms
        last = self._last.get(sid)
        if self._ids == "unordered":
            # Ids prove nothing: a downtime (or restart, overflow) is the fact. The trades
            # between the last one before it and this one may be missing: a time gap.
            self._last[sid] = (0, max(ts_ms, last[1] if last else ts_ms))
            kind = self._cause.pop(sid, None)
            if kind is not None and last is not None and ts_ms > last[1]:
                self._window(sid, kind, last[1], ts_ms)
            return
        if last is not None and hi <= last[0]:
            return  # a late or resent trade: not a new high
        self._last[sid] = (hi, ts_ms)
        if last is None:
            return
        kind = self._cause.pop(sid, "trade_id")  # whatever happened is now behind us
        if lo > last[0] + 1:
            self._candidate(sid, kind, last, lo - 1, ts_ms)

    def _stated(self, sid: str, said_id: int, ts_ms: int) -> None:
        """A heartbeat states the venue's latest trade id: past the highest seen, the ids
        between are a gap candidate now, not when (or if) a later trade shows the jump."""
        last = self._last.get(sid)
        if last is None or said_id <= last[0] or self._ids != "contiguous":
            return
        self._last[sid] = (said_id, max(last[1], ts_ms))
        self._candidate(sid, self._cause.pop(sid, "trade_id"), last, said_id, ts_ms)

    def _window(self, sid: str, kind: str, ts_from: int, ts_to: int) -> None:
        """A stretch of exchange time whose trades may be missing (no ids to tell)."""
        gap = new_gap(
            sid, kind, id_from=None, id_to=None, ts_from_ms=ts_from, ts_to_ms=ts_to,
            detected_at_ms=self.clock(),
        )  # fmt: skip
        self._enqueue(gap)

    def _candidate(self, sid: str, kind: str, last: tuple[int, int], id_to: int, ts: int) -> None:
        """Ids after ``last`` (id, time) up to ``id_to`` are missing as of exchange time
        ``ts``: a gap candidate, recorded if still missing after the grace period."""
        gap = new_gap(
            sid,
            kind,
            id_from=last[0] + 1,
            id_to=id_to,
            ts_from_ms=min(last[1], ts),
            ts_to_ms=max(last[1], ts),
            detected_at_ms=self.clock(),
        )
        self._enqueue(gap)

    def _enqueue(self, gap: Gap) -> None:
        """A gap candidate: recorded (and back-filled) once the grace period has passed."""
        self.gap_stats["found"] += 1
        due = time.monotonic() + self.config.backfill.grace_ms / 1000
        self._jumps.put_nowait((due, gap))

    def _still_missing(self, gap: Gap) -> bool:
        assert gap.id_from is not None and gap.id_to is not None
        recent = self._recent(gap.stream_id)
        return any(i not in recent for i in range(gap.id_from, gap.id_to + 1))

    async def _gap_worker(self) -> None:
        """Record each jump that outlives its grace period, and back-fill it if it can."""
        filler = None
        if self.history is not None:
            filler = Backfiller(
                self.history,
                self.log,
                self.ledger,
                now_ms=self.clock,
                config=self.config.backfill,
                known=self._known,
                on_append=self._backfilled,
            )
        while True:
            due, gap = await self._jumps.get()
            self._filling += 1  # pending from here (its grace, then its fill) until decided
            try:
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                if (
                    gap.id_from is not None
                    and gap.status == "OPEN"
                    and not self._still_missing(gap)
                ):
                    self.gap_stats["closed_by_late_frames"] += 1
                    continue
                self.ledger.add_found([gap])
                if filler is None:
                    continue
                outcome = await filler.fill(gap)
            finally:
                self._filling -= 1
            self.gap_stats[outcome.gap.status.lower()] += 1
            self.gap_stats["backfilled_trades"] += outcome.appended
            self.gap_stats["conflicts"] += len(outcome.conflicts)
            for c in outcome.conflicts:
                self.flagged.add(c.stream_id)

    def _known(self, sid: StreamId, trade_id: int) -> int | None:
        """The back-fill's view of the cache: the last id of a print of several matches
        (its id - 1 is covered by the same print) is COVERED for a REST match."""
        recent = self._recent(str(sid))
        have = recent.get(trade_id)
        if have is not None and self._ids == "covered" and recent.get(trade_id - 1) == COVERED:
            return COVERED
        return have

    def _backfilled(self, sid: StreamId, trade: Any) -> None:
        self._recent(str(sid))[trade.trade_id] = content_digest(trade)
        health = self.health.setdefault(str(sid), StreamHealth())
        health.backfilled += 1

    def _resume(self) -> None:
        """Before connecting: the last trade id of each stream (so the first live trade
        shows a restart's hole), and the ledger's OPEN gaps to work on again."""
        for sym in self.symbols:
            sid = StreamId(self.venue, "trade", sym)
            if "trade" in self.channels and sid in self.log.stream_ids():
                last = last_trade(self.log, sid)
                if last is not None:
                    self._last[str(sid)] = last
                    self._cause[str(sid)] = "restart"
        mine = {str(StreamId(self.venue, "trade", s)): s for s in self.symbols}
        for gap in open_gaps(self.ledger, mine):
            self._jumps.put_nowait((0.0, gap))

    async def _drain_gaps(self) -> None:
        """On stop: let gap candidates out-wait their grace and running back-fills finish,
        within ``backfill_drain_s`` (without a REST client: the grace only); what is still
        queued then is recorded OPEN, so no hole found is lost (the next run fills it)."""
        limit = self.config.backfill_drain_s if self.history is not None else 0
        deadline = time.monotonic() + limit + self.config.backfill.grace_ms / 1000
        while (self._filling or not self._jumps.empty()) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        while not self._jumps.empty():
            self.ledger.add_found([self._jumps.get_nowait()[1]])

    async def _committer(self) -> None:
        interval = self.log.config.group_commit_ms / 2000
        while True:
            await asyncio.sleep(interval)
            now = self.clock()
            for w in self._own_writers():
                durable = w.maybe_commit()
                waiting = self._awaiting.get(w.stream_id)
                while waiting and waiting[0][0] <= durable:
                    self.latency_samples.append(now - waiting.popleft()[1])
            try:
                self.log.quarantine.flush()
            except StorageError as exc:
                # Refused payloads are fsynced in the local state directory before their
                # upload; an unreachable store delays the upload (retried at the next
                # flush and at open), it does not stop the recording.
                self.stats.quarantine_upload_errors += 1
                self.quarantine_error = str(exc)

    # -- status -------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        now = self.clock()
        quiet = set(self.config.expected_silence)
        streams = {
            sid: h.to_dict(now, self.config.stale_after_s * 1000, sid in quiet)
            for sid, h in sorted(self.health.items())
        }
        return {
            "pid": os.getpid(),
            "venue": self.venue,
            "symbols": self.symbols,
            "channels": self.channels,
            "updated_ms": now,
            "config_digest": self.config.digest(),
            "connections": [
                {
                    "name": m.name,
                    "state": m.state,
                    "generation": m.generation,
                    "reconnects": m.reconnects,
                    "stale_frames": m.stale_frames,
                }
                for m in self.managers
            ],
            "queue": {
                "size": self.queue.qsize(),
                "capacity": self.config.queue_size,
                "overflows": self.stats.overflows,
            },
            "messages": self.stats.messages,
            "duplicates": self.stats.duplicates,
            "conflicts": self.stats.conflicts,
            "flagged_streams": sorted(self.flagged),
            "gaps": dict(sorted(self.gap_stats.items())),
            "quarantined": dict(sorted(self.stats.quarantined.items())),
            "quarantine_upload_errors": self.stats.quarantine_upload_errors,
            "quarantine_upload_error": self.quarantine_error,
            "receive_to_durable_ms": _percentiles(self.latency_samples),
            "streams": streams,
        }

    def _own_writers(self) -> list[Any]:
        """This venue's stream writers: another capture may share the log (capture_set)."""
        prefix = f"{self.venue}/"
        return [w for w in self.log.writers() if w.stream_id.startswith(prefix)]

    def _publish_status(self) -> None:
        path = status_path(self.log.root, self.venue)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        write_file_atomic(tmp, (json.dumps(self.status(), indent=1) + "\n").encode(), fsync=False)
        os.replace(tmp, path)  # the status file is a mutable snapshot, not log data

    async def _status_loop(self) -> None:
        while True:
            self._publish_status()
            await asyncio.sleep(self.config.status_interval_ms / 1000)

    # -- running -------------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    async def run(
        self, duration_s: float | None = None, handle_signals: bool = False
    ) -> CaptureStats:
        loop = asyncio.get_running_loop()
        if handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.stop)
        self._resume()
        self._control(-1, "capture_started", {"channels": self.channels, "pid": os.getpid()})
        self.managers = [self._manager(i) for i in range(len(self.plans))]
        try:
            async with asyncio.TaskGroup() as group:
                runners = [group.create_task(m.run()) for m in self.managers]
                helpers = [
                    group.create_task(self._writer()),
                    group.create_task(self._committer()),
                    group.create_task(self._status_loop()),
                    group.create_task(self._gap_worker()),
                ]
                watch = group.create_task(self._watch(duration_s, runners))
                await watch
                for task in runners:
                    task.cancel()
                for manager in self.managers:  # nobody reads the sockets any more
                    await manager.close()
                await self._drain_gaps()
                for task in helpers:
                    task.cancel()
        except* FeedError as eg:
            raise eg.exceptions[0] from None
        finally:
            for manager in self.managers:
                await manager.close()
            self._drain()
            self._control(-1, "capture_stopped", {"messages": self.stats.messages})
            for w in self._own_writers():
                w.seal()
            self.log.quarantine.flush()
            self.stats.stale_frames = sum(m.stale_frames for m in self.managers)
            self.stats.reconnects = sum(m.reconnects for m in self.managers)
            with contextlib.suppress(OSError):
                self._publish_status()
        return self.stats

    async def _watch(self, duration_s: float | None, runners: list[asyncio.Task[None]]) -> None:
        deadline = None if duration_s is None else time.monotonic() + duration_s
        grace = time.monotonic() + self.config.connect_grace_s
        while not self._stop.is_set():
            if any(t.done() for t in runners):
                for t in runners:
                    if t.done() and t.exception() is not None:
                        raise t.exception()  # type: ignore[misc]
            if not self._connected_once.is_set() and time.monotonic() > grace:
                raise FeedError(
                    f"cannot reach {self.endpoint}: no connection within "
                    f"{self.config.connect_grace_s}s"
                )
            if deadline is not None and time.monotonic() >= deadline:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.1):
                    await self._stop.wait()

    def _drain(self) -> None:
        rest = []
        while True:
            try:
                rest.append(self.queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        if rest:
            self._write_batch(rest)


def _percentiles(samples: deque[int]) -> dict[str, int | None]:
    if not samples:
        return {"p50": None, "p99": None, "samples": 0}
    ordered = sorted(samples)

    def pick(q: float) -> int:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50": pick(0.50), "p99": pick(0.99), "samples": len(ordered)}


def status_path(root: Path, venue: str) -> Path:
    """The status snapshot of the capture of ``venue`` (one file per venue)."""
    return root / "status" / f"capture-{venue}.json"


def status_paths(root: Path) -> list[Path]:
    """Every capture status snapshot under ``root``, sorted by venue."""
    return sorted((root / "status").glob("capture-*.json"))
