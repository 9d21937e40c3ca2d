"""The Python API: ``buff_dataplane.open_store(path).bars(...)``.

Bars that need gap-free data are refused by default: a range holding ``GAP_UNRESOLVED``
or ``CONFLICT`` bars raises :class:`IncompleteDataError` naming them, unless
``allow_incomplete=True``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from buff_dataplane.core.bars import Bar
from buff_dataplane.core.errors import IncompleteDataError, ValidationError
from buff_dataplane.core.times import format_utc_ms
from buff_dataplane.storage.bars_store import ArtifactKey, BarStore
from buff_dataplane.storage.objstore import LocalStore, ObjectStore, existing_store

if TYPE_CHECKING:
    import polars as pl

DECIMAL_COLUMNS = (
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "taker_buy_volume",
    "taker_buy_quote_volume",
)
INCOMPLETE = ("GAP_UNRESOLVED", "CONFLICT")


def select_bars(
    store: BarStore,
    key: ArtifactKey,
    *,
    start_ms: int | None,
    end_ms: int | None,
    revision: int | None,
    allow_incomplete: bool,
) -> tuple[int, list[Bar]]:
    """The bars of ``key`` in [start, end) from a revision (default: the latest)."""
    if start_ms is not None and end_ms is not None and start_ms >= end_ms:
        raise ValidationError(f"inverted or empty range: {start_ms} is not before {end_ms}")
    rev = revision if revision is not None else store.latest(key)
    if rev is None:
        raise ValidationError(f"no bars for {key} (run buff canonicalize)")
    bars = [
        b
        for b in store.read_bars(key, rev)
        if (start_ms is None or b.open_time_ms >= start_ms)
        and (end_ms is None or b.open_time_ms < end_ms)
    ]
    bad = [b for b in bars if b.status in INCOMPLETE]
    if bad and not allow_incomplete:
        shown = ", ".join(f"{format_utc_ms(b.open_time_ms)} {b.status}" for b in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        lo, hi = bad[0].open_time_ms, bad[-1].close_time_ms
        gaps = [
            f"{g['gap_id']} ({g['kind']}: {g['reason']})"
            for g in store.manifest(key, rev).get("gap_inputs", [])
            if g.get("status", "UNRESOLVED") == "UNRESOLVED"
            and g["ts_from_ms"] <= hi
            and g["ts_to_ms"] >= lo
        ]
        named = f"; ledger gaps: {', '.join(gaps)}" if gaps else ""
        raise IncompleteDataError(
            f"{key} rev {rev}: {len(bad)} incomplete bars in range: {shown}{more}{named}"
        )
    return rev, bars


class Store:
    """The bars of a data directory, or of an object store (``s3://bucket/prefix``)."""

    def __init__(self, root: Path | ObjectStore) -> None:
        self.root: Path | str = root if isinstance(root, Path) else root.url()
        self._bars = BarStore(root) if isinstance(root, Path) else BarStore.over(root)

    def artifacts(self) -> list[ArtifactKey]:
        return self._bars.artifacts()

    def revisions(self, venue: str, symbol: str, timeframe: str) -> list[int]:
        return self._bars.revisions(ArtifactKey(venue, symbol, timeframe))

    def bars(
        self,
        venue: str,
        symbol: str,
        timeframe: str,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        revision: int | None = None,
        allow_incomplete: bool = False,
    ) -> pl.DataFrame:
        """Bars as a Polars DataFrame; prices and volumes as exact Decimals."""
        import polars as pl

        _, bars = select_bars(
            self._bars,
            ArtifactKey(venue, symbol, timeframe),
            start_ms=start_ms,
            end_ms=end_ms,
            revision=revision,
            allow_incomplete=allow_incomplete,
        )
        frame = pl.DataFrame([{f: getattr(b, f) for f in b.__struct_fields__} for b in bars])
        if frame.is_empty():
            return frame
        return frame.with_columns(
            [
                pl.when(pl.col(c) == "")
                .then(None)
                .otherwise(pl.col(c))
                .str.to_decimal(scale=_exact_scale(frame[c].to_list()))
                .alias(c)
                for c in DECIMAL_COLUMNS
            ]
        )


def _exact_scale(values: list[str]) -> int:
    """The smallest scale that holds every value exactly (so nothing is rounded)."""
    scale, whole = 0, 1
    for text in values:
        head, _, frac = text.lstrip("-").partition(".")
        scale, whole = max(scale, len(frac)), max(whole, len(head))
    if whole + scale > 38:
        raise ValidationError(f"a bar value needs {whole + scale} digits, more than Decimal(38)")
    return scale


def open_store(path: str | os.PathLike[str]) -> Store:
    """The bars at ``path``: a data directory, or ``s3://bucket/prefix`` (AWS_* env)."""
    store = existing_store(path)
    return Store(store.root if isinstance(store, LocalStore) else store)
