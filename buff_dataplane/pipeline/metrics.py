"""Prometheus metrics of a running capture, served on 127.0.0.1 (prometheus-client).

Values are read from the capture's own counters at scrape time, so the hot path pays
nothing for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


class _CaptureCollector:
    def __init__(self, capture: Any) -> None:
        self.capture = capture

    def collect(self) -> Iterator[Any]:
        status = self.capture.status()
        msgs = CounterMetricFamily("buff_capture_messages", "Frames received", labels=[])
        msgs.add_metric([], status["messages"])
        yield msgs
        for name, key, help_text in (
            ("buff_capture_duplicates", "duplicates", "Exact duplicate trades skipped"),
            ("buff_capture_conflicts", "conflicts", "Same trade id with other content"),
        ):
            c = CounterMetricFamily(name, help_text, labels=[])
            c.add_metric([], status[key])
            yield c
        q = CounterMetricFamily("buff_capture_quarantined", "Refused frames", labels=["reason"])
        for reason, n in status["quarantined"].items():
            q.add_metric([reason], n)
        yield q
        queue = GaugeMetricFamily("buff_capture_queue_size", "Frames waiting", labels=[])
        queue.add_metric([], status["queue"]["size"])
        yield queue
        rec = CounterMetricFamily("buff_capture_reconnects", "Reconnects", labels=["connection"])
        for c in status["connections"]:
            rec.add_metric([c["name"]], c["reconnects"])
        yield rec
        events = CounterMetricFamily("buff_stream_events", "Events written", labels=["stream"])
        age = GaugeMetricFamily("buff_stream_last_message_age_ms", "Age", labels=["stream"])
        stale = GaugeMetricFamily("buff_stream_stale", "1 if stale", labels=["stream"])
        for sid, h in status["streams"].items():
            events.add_metric([sid], h["events"])
            age.add_metric([sid], h["last_message_age_ms"] or 0)
            stale.add_metric([sid], 1 if h["stale"] else 0)
        yield events
        yield age
        yield stale
        gaps = CounterMetricFamily(
            "buff_capture_gaps",
            "Gaps by outcome (found, backfilled, unresolved, ...)",
            labels=["outcome"],
        )
        for outcome, n in status.get("gaps", {}).items():
            if outcome != "backfilled_trades":
                gaps.add_metric([outcome], n)
        yield gaps
        filled = CounterMetricFamily(
            "buff_capture_backfilled_trades", "Trades appended from REST", labels=[]
        )
        filled.add_metric([], status.get("gaps", {}).get("backfilled_trades", 0))
        yield filled


def serve_metrics(capture: Any, port: int) -> Any:
    registry = CollectorRegistry()
    registry.register(_CaptureCollector(capture))
    server, _thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    return server
