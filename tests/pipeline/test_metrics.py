"""--metrics-port: the capture's counters as Prometheus text on 127.0.0.1."""

import httpx

from buff_dataplane.pipeline.metrics import serve_metrics


class FakeCapture:
    def status(self):
        return {
            "messages": 42,
            "duplicates": 3,
            "conflicts": 1,
            "quarantined": {"not_json": 2},
            "queue": {"size": 5},
            "gaps": {"found": 3, "backfilled": 2, "unresolved": 1, "backfilled_trades": 57},
            "connections": [{"name": "binance-usdm market#0", "reconnects": 1}],
            "streams": {
                "binance-usdm/trade/BTC-USDT-PERP": {
                    "events": 40,
                    "last_message_age_ms": 120,
                    "stale": False,
                },
            },
        }


def test_metrics_endpoint_serves_the_capture_counters():
    server = serve_metrics(FakeCapture(), 0)
    try:
        port = server.server_port
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        server.shutdown()
    assert "buff_capture_messages_total 42.0" in body
    assert 'buff_capture_quarantined_total{reason="not_json"} 2.0' in body
    assert 'buff_stream_events_total{stream="binance-usdm/trade/BTC-USDT-PERP"} 40.0' in body
    assert 'buff_stream_stale{stream="binance-usdm/trade/BTC-USDT-PERP"} 0.0' in body
    assert "buff_capture_queue_size 5.0" in body
    assert 'buff_capture_gaps_total{outcome="unresolved"} 1.0' in body
    assert "buff_capture_backfilled_trades_total 57.0" in body
