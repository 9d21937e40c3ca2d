"""buff_dataplane: an immutable raw event log and deterministic bars for market data."""

__version__ = "0.1.0"
