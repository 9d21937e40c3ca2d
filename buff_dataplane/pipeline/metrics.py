"""Prometheus metrics of a running capture, served on 127.0.0.1 (prometheus-client).

Values are read from the capture's own counters at scrape time, so the hot path pays
nothing for them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


class _CaptureCollector:
    """Every metric carries the venue: one process may record several (capture_set)."""

    def __init__(self, captures: Sequence[Any]) -> None:
        self.captures = list(captures)

    def collect(self) -> Iterator[Any]:
        statuses = [c.status() for c in self.captures]
        msgs = CounterMetricFamily("buff_capture_messages", "Frames received", labels=["venue"])
        for st in statuses:
            msgs.add_metric([st["venue"]], st["messages"])
        yield msgs
        for name, key, help_text in (
            ("buff_capture_duplicates", "duplicates", "Exact duplicate trades skipped"),
            ("buff_capture_conflicts", "conflicts", "Same trade id with other content"),
        ):
            c = CounterMetricFamily(name, help_text, labels=["venue"])
            for st in statuses:
                c.add_metric([st["venue"]], st[key])
            yield c
        q = CounterMetricFamily(
            "buff_capture_quarantined", "Refused frames", labels=["venue", "reason"]
        )
        queue = GaugeMetricFamily("buff_capture_queue_size", "Frames waiting", labels=["venue"])
        rec = CounterMetricFamily(
            "buff_capture_reconnects", "Reconnects", labels=["venue", "connection"]
        )
        gaps = CounterMetricFamily(
            "buff_capture_gaps",
            "Gaps by outcome (found, backfilled, unresolved, ...)",
            labels=["venue", "outcome"],
        )
        filled = CounterMetricFamily(
            "buff_capture_backfilled_trades", "Trades appended from REST", labels=["venue"]
        )
        for st in statuses:
            venue = st["venue"]
            for reason, n in st["quarantined"].items():
                q.add_metric([venue, reason], n)
            queue.add_metric([venue], st["queue"]["size"])
            for c in st["connections"]:
                rec.add_metric([venue, c["name"]], c["reconnects"])
            for outcome, n in st.get("gaps", {}).items():
                if outcome != "backfilled_trades":
                    gaps.add_metric([venue, outcome], n)
            filled.add_metric([venue], st.get("gaps", {}).get("backfilled_trades", 0))
        yield q
        yield queue
        yield rec
        events = CounterMetricFamily("buff_stream_events", "Events written", labels=["stream"])
        age = GaugeMetricFamily("buff_stream_last_message_age_ms", "Age", labels=["stream"])
        stale = GaugeMetricFamily("buff_stream_stale", "1 if stale", labels=["stream"])
        for st in statuses:
            for sid, h in st["streams"].items():
                events.add_metric([sid], h["events"])
                age.add_metric([sid], h["last_message_age_ms"] or 0)
                stale.add_metric([sid], 1 if h["stale"] else 0)
        yield events
        yield age
        yield stale
        yield gaps
        yield filled


def serve_metrics(captures: Any, port: int) -> Any:
    """Serve the metrics of one capture or a list of them on 127.0.0.1:``port``."""
    registry = CollectorRegistry()
    many = captures if isinstance(captures, list | tuple) else [captures]
    registry.register(_CaptureCollector(many))
    server, _thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    return server
