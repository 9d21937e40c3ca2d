"""buff_dataplane: an immutable raw event log and deterministic bars for market data."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from buff_dataplane.api import Store


def open_store(path: Any) -> Store:
    """Open a data directory for reading bars: ``open_store("data").bars(...)``."""
    from buff_dataplane.api import open_store as _open

    return _open(path)


__all__ = ["__version__", "open_store"]
