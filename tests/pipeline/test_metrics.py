"""--metrics-port: the captures' counters as Prometheus text on 127.0.0.1, per venue."""

import httpx

from buff_dataplane.pipeline.metrics import serve_metrics


class StatusOf:
    """What serve_metrics reads of a capture: its status() snapshot."""

    def __init__(self, venue, messages, stream):
        self.venue, self.messages, self.stream = venue, messages, stream

    def status(self):
        return {
            "venue": self.venue,
            "messages": self.messages,
            "duplicates": 3,
            "conflicts": 1,
            "quarantined": {"not_json": 2},
            "queue": {"size": 5},
            "gaps": {"found": 3, "backfilled": 2, "unresolved": 1, "backfilled_trades": 57},
            "connections": [{"name": "market#0", "reconnects": 1}],
            "streams": {self.stream: {"events": 40, "last_message_age_ms": 120, "stale": False}},
        }


def scrape(captures):
    server = serve_metrics(captures, 0)
    try:
        return httpx.get(f"http://127.0.0.1:{server.server_port}/metrics", timeout=5).text
    finally:
        server.shutdown()


def test_metrics_endpoint_serves_the_capture_counters():
    body = scrape(StatusOf("binance-usdm", 42, "binance-usdm/trade/BTC-USDT-PERP"))
    assert 'buff_capture_messages_total{venue="binance-usdm"} 42.0' in body
    assert 'buff_capture_quarantined_total{reason="not_json",venue="binance-usdm"} 2.0' in body
    assert 'buff_stream_events_total{stream="binance-usdm/trade/BTC-USDT-PERP"} 40.0' in body
    assert 'buff_stream_stale{stream="binance-usdm/trade/BTC-USDT-PERP"} 0.0' in body
    assert 'buff_capture_queue_size{venue="binance-usdm"} 5.0' in body
    assert 'buff_capture_gaps_total{outcome="unresolved",venue="binance-usdm"} 1.0' in body
    assert 'buff_capture_backfilled_trades_total{venue="binance-usdm"} 57.0' in body


def test_one_process_recording_several_venues_labels_each():
    body = scrape(
        [
            StatusOf("binance-usdm", 42, "binance-usdm/trade/BTC-USDT-PERP"),
            StatusOf("binance-spot", 7, "binance-spot/trade/BTC-USDT"),
        ]
    )
    assert 'buff_capture_messages_total{venue="binance-usdm"} 42.0' in body
    assert 'buff_capture_messages_total{venue="binance-spot"} 7.0' in body
    assert 'buff_capture_reconnects_total{connection="market#0",venue="binance-spot"} 1.0' in body
    assert 'buff_stream_events_total{stream="binance-spot/trade/BTC-USDT"} 40.0' in body
