"""The gap ledger: ``<root>/gaps/ledger.jsonl``, an append-only history of gap states.

Each line is one :class:`~buff_dataplane.core.gaps.Gap` as canonical JSON (sorted keys):
the full state of that gap after a change. The current ledger is the last line of each
``gap_id``; earlier lines stay as the gap's history (found, attempts, repaired). Lines are
appended under an exclusive ``flock`` on the file and fsynced, so a capture and a
``buff backfill`` may both record; a torn last line (a crash mid-write) is skipped on
read and counted in :attr:`GapLedger.torn`; the next append first ends it with a newline
and a fence line (``{"fence":"torn"}``), so it stays as evidence and is told apart from a
corrupt line, which is an IntegrityError. Nothing is ever rewritten.

Over an object store (:meth:`GapLedger.over`, chosen by :func:`ledger_for` when the log's
sealed data is not in its root) the ledger is the chain ``gaps/ledger``: one entry is one
line of the local file, newline included, so the entries concatenated are that file byte
for byte. There is no flock: :meth:`GapLedger.record` appends at the positions after what
it read, and when another writer took one first (ObjectExists) it re-reads and decides
again, up to :data:`MAX_RACES` times. A PUT is atomic, so no line can be torn there; a
corrupt entry or a missing position is an IntegrityError naming the object.

Allowed transitions: a new gap is ``OPEN`` (or directly ``UNRESOLVED`` / ``BACKFILLED``
when found already decided); ``OPEN`` -> ``OPEN`` (an attempt failed), ``BACKFILLED`` or
``UNRESOLVED``; ``UNRESOLVED`` -> ``OPEN`` (a retry asked for by the user);
``BACKFILLED`` is final.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from buff_dataplane.core.errors import IntegrityError, StorageError
from buff_dataplane.core.gaps import Gap
from buff_dataplane.storage.objstore import (
    LocalStore,
    ObjectExists,
    ObjectStore,
    chain_entry_key,
)

if TYPE_CHECKING:
    from buff_dataplane.storage.log import RawLog

LEDGER_DIR = "gaps"
LEDGER = "ledger.jsonl"
LEDGER_CHAIN = "gaps/ledger"  # a LocalStore keeps it as gaps/ledger.jsonl, today's file
MAX_RACES = 8  # appends lost to another writer before record() gives up

_ALLOWED = {
    "OPEN": {"OPEN", "BACKFILLED", "UNRESOLVED"},
    "UNRESOLVED": {"UNRESOLVED", "OPEN"},
    "BACKFILLED": {"BACKFILLED"},
}
FENCE = b'{"fence":"torn"}'
_decoder = msgspec.json.Decoder(Gap)


def ledger_path(root: Path) -> Path:
    return root / LEDGER_DIR / LEDGER


def ledger_for(log: RawLog) -> GapLedger:
    """The log's gap ledger: the local file for a local log, the store's chain otherwise."""
    return GapLedger(log.root) if log.store_is_root else GapLedger.over(log.store)


class GapLedger:
    """The ledger in ``<root>/gaps/ledger.jsonl``; :meth:`over` gives one in a store."""

    def __init__(self, root: Path) -> None:
        self.path = ledger_path(root)
        self.torn = 0

    @staticmethod
    def over(store: ObjectStore) -> GapLedger:
        """The ledger kept in ``store`` as the chain ``gaps/ledger``."""
        return StoreGapLedger(store)

    @property
    def where(self) -> str:
        """Where the ledger lives, for messages."""
        return str(self.path)

    def _lines(self) -> Iterator[Gap]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageError(f"cannot read gap ledger {self.path}: {exc.strerror}") from exc
        lines = data.split(b"\n")
        self.torn = 0
        for n, line in enumerate(lines, 1):
            if not line or line == FENCE:
                continue
            try:
                yield _decoder.decode(line)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                fenced = n < len(lines) and lines[n] == FENCE
                if n == len(lines) or fenced:  # a torn append: unterminated, or fenced off
                    self.torn += 1
                    continue
                raise IntegrityError(f"gap ledger {self.path} line {n}: {exc}") from exc

    def history(self) -> list[Gap]:
        """Every recorded state, in the order written."""
        return list(self._lines())

    def current(self) -> dict[str, Gap]:
        """The latest state of every gap, by gap id."""
        out: dict[str, Gap] = {}
        for gap in self._lines():
            out[gap.gap_id] = gap
        return out

    def rows(self, *, stream_id: str | None = None, status: str | None = None) -> list[Gap]:
        """Current gaps, sorted by stream, time and id; optionally filtered."""
        rows = [
            g
            for g in self.current().values()
            if (stream_id is None or g.stream_id == stream_id)
            and (status is None or g.status == status)
        ]
        return sorted(rows, key=lambda g: (g.stream_id, g.ts_from_ms, g.ts_to_ms, g.gap_id))

    def record(self, gaps: Iterable[Gap], *, only_new: bool = False) -> list[Gap]:
        """Append new states; a gap whose state did not change is not written again.

        Returns what was written. An illegal transition (e.g. reopening a back-filled gap)
        raises IntegrityError and writes nothing. ``only_new`` records only gaps the
        ledger does not hold yet (decided under the lock, or against the chain as read).
        """
        gaps = list(gaps)
        if not gaps:
            return []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            raise StorageError(f"cannot open gap ledger {self.path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            now = self.current()  # re-read under the lock: another process may have written
            out = _decide(now, gaps, only_new=only_new)
            if out:
                size = os.fstat(fd).st_size
                head = b""
                if size:
                    os.lseek(fd, size - 1, os.SEEK_SET)
                    if os.read(fd, 1) != b"\n":
                        head = b"\n" + FENCE + b"\n"  # fence off a torn line
                body = b"".join(_encode(g) + b"\n" for g in out)
                os.write(fd, head + body)
                os.fsync(fd)
            return out
        except OSError as exc:
            raise StorageError(f"cannot write gap ledger {self.path}: {exc.strerror}") from exc
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def add_found(self, gaps: Iterable[Gap]) -> list[Gap]:
        """Record gaps not in the ledger yet (a hole found twice is one row); return them."""
        return self.record(gaps, only_new=True)


def _decide(now: dict[str, Gap], gaps: list[Gap], *, only_new: bool) -> list[Gap]:
    """The states of ``gaps`` to append to a ledger whose latest states are ``now``.

    Updates ``now``; IntegrityError on an illegal transition (the caller writes nothing).
    """
    out: list[Gap] = []
    for gap in gaps:
        before = now.get(gap.gap_id)
        if before is not None:
            if only_new or _same(before, gap):
                continue
            if gap.status not in _ALLOWED[before.status]:
                raise IntegrityError(
                    f"gap {gap.gap_id}: {before.status} -> {gap.status} is not allowed"
                )
        now[gap.gap_id] = gap
        out.append(gap)
    return out


def _encode(gap: Gap) -> bytes:
    return msgspec.json.encode(gap, order="sorted")


class StoreGapLedger(GapLedger):
    """The ledger as the chain ``gaps/ledger`` of an object store (see the module doc)."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.torn = 0

    @property
    def where(self) -> str:
        return self.store.url(LEDGER_CHAIN)

    def _lines(self) -> Iterator[Gap]:
        yield from self._read()[0]

    def _read(self) -> tuple[list[Gap], int]:
        """Every state in the chain, and its entry count (the next free position)."""
        store = self.store
        read = store.chain_read(LEDGER_CHAIN)
        if read.faults:
            raise IntegrityError(f"gap ledger {read.faults[0]}")
        self.torn = 1 if read.torn_tail else 0  # a LocalStore file cut mid-append
        out: list[Gap] = []
        for n, line in enumerate(read.lines(), 1):
            if line == FENCE:
                continue
            try:
                out.append(_decoder.decode(line))
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                where = (
                    f"{store.chain_path(LEDGER_CHAIN)} line {n}"
                    if isinstance(store, LocalStore)
                    else store.url(chain_entry_key(LEDGER_CHAIN, n - 1))
                )
                raise IntegrityError(f"gap ledger {where}: {exc}") from exc
        return out, read.count

    def record(self, gaps: Iterable[Gap], *, only_new: bool = False) -> list[Gap]:
        """As :meth:`GapLedger.record`, without a lock: append after what was read.

        An append lands only at the position right after the entries it was decided
        from, so every state written was a legal transition when written. On a lost race
        (ObjectExists) the chain is read again and what is left decided again; states
        already appended by this call stay. StorageError after :data:`MAX_RACES` losses.
        """
        todo = list(gaps)
        written: list[Gap] = []
        for _ in range(MAX_RACES if todo else 0):
            history, position = self._read()
            out = _decide({g.gap_id: g for g in history}, todo, only_new=only_new)
            appended = 0
            try:
                for gap in out:
                    self.store.chain_append(LEDGER_CHAIN, position + appended, _encode(gap))
                    appended += 1
            except ObjectExists:
                done = {id(g) for g in out[:appended]}
                written.extend(out[:appended])
                todo = [g for g in todo if id(g) not in done]
                continue
            return written + out
        if not todo:
            return []
        raise StorageError(
            f"gap ledger {self.where}: lost the append race to other writers {MAX_RACES} "
            "times in a row; the rest was not recorded"
        )


def _same(a: Gap, b: Gap) -> bool:
    return msgspec.structs.replace(a, updated_at_ms=0) == msgspec.structs.replace(
        b, updated_at_ms=0
    )
