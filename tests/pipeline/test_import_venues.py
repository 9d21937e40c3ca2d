"""buff import for Bybit, OKX, Coinbase and Kraken: cryptofeed v3 framing, connections of
other products, control messages, and the real recordings (every trade, exact values)."""

import json
from decimal import Decimal

import pytest
import zstandard

from buff_dataplane.cli import main
from buff_dataplane.feeds.registry import parser_for
from buff_dataplane.storage.log import open_log
from buff_dataplane.storage.quarantine import read_quarantine
from buff_dataplane.storage.reader import to_table

LINEAR = "wss://stream.bybit.com/v5/public/linear"
SPOT = "wss://stream.bybit.com/v5/public/spot"
TRADE = (
    '{"topic":"publicTrade.%s","type":"snapshot","ts":1786310819681,"data":[{"T":1786310819680,'
    '"s":"%s","S":"Sell","v":"0.004","p":"65114.20","L":"MinusTick",'
    '"i":"a9188a0a-82bc-50de-be60-03eedbe3cdd7","BT":false,"RPI":false,"seq":753843954913}]}'
)
ACK = (
    '{"success":true,"ret_msg":"","conn_id":"d8bu1olkndm7crnfs1e0-j6akw","req_id":"",'
    '"op":"subscribe"}'
)


def _v3(tmp_path, records, name="cap.jsonl.zst", compress=True):
    """A cryptofeed v3 file of ``records`` (dicts, or lines written as given)."""
    text = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records).encode()
    path = tmp_path / name
    path.write_bytes(zstandard.ZstdCompressor().compress(text) if compress else text)
    return path


def _connect(conn, addr, ts=1786310818.2235148):
    return {"t": "connect", "conn": conn, "ts": ts, "addr": addr}


def _recv(conn, data, ts=1786310819.965676):
    return {"t": "recv", "conn": conn, "ts": ts, "data": data}


def _import(path, data, venue, fmt="cryptofeed-v3", *extra):
    argv = ["import", str(path), "--venue", venue, "--format", fmt, "--data", str(data)]
    return main([*argv, *extra])


def _json_import(capsys, path, data, venue, fmt="cryptofeed-v3", *extra):
    capsys.readouterr()
    assert _import(path, data, venue, fmt, "--json", *extra) == 0
    [report] = json.loads(capsys.readouterr().out)["imports"]
    return report


def _rows(data, stream):
    return to_table(open_log(data, readonly=True), [stream]).to_pylist()


def _quarantined(data):
    return list(read_quarantine(data / "quarantine")) if (data / "quarantine").exists() else []


# -- framing and routing ---------------------------------------------------------------


def test_v3_records_become_events_with_exact_receive_times(tmp_path, capsys):
    data = tmp_path / "data"
    path = _v3(
        tmp_path,
        [
            {"t": "header", "format": 2, "exchange": "BYBIT"},
            {
                "t": "http",
                "conn": "BYBIT.http.1",
                "ts": 1786310817.6,
                "url": "https://x",
                "data": "{}",
            },
            _connect("BYBIT.ws.2", LINEAR),
            {"t": "send", "conn": "BYBIT.ws.2", "ts": 1786310818.3, "data": '{"op":"subscribe"}'},
            # a float would read 1786310819.9999999 as 1786310820.0
            json.dumps(_recv("BYBIT.ws.2", TRADE % ("BTCUSDT", "BTCUSDT"), ts=1.5)).replace(
                "1.5", "1786310819.9999999"
            ),
        ],
    )
    report = _json_import(capsys, path, data, "bybit-linear")
    assert report["skipped"] == {"http": 1, "sent": 1}
    assert (report["messages"], report["connections"], report["quarantined"]) == (1, 1, {})
    [row] = _rows(data, "bybit-linear/trade/BTC-USDT-PERP")
    assert row["payload_raw"] == (TRADE % ("BTCUSDT", "BTCUSDT")).encode()
    assert row["event_ts_ingest_ms"] == 1786310819999  # floored, never rounded up by a float
    assert row["event_ts_exchange_ms"] == 1786310819680


def test_plain_v3_lines_are_read_too(tmp_path):
    path = _v3(tmp_path, [_recv("c", TRADE % ("BTCUSDT", "BTCUSDT"))], compress=False)
    assert _import(path, tmp_path / "data", "bybit-linear") == 0


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"t": "disconnect", "conn": "c", "ts": 1786310819.9}, "unknown cryptofeed v3 record"),
        ({"t": "recv", "conn": "c", "data": "{}"}, "without a receive time"),
        ({"t": "recv", "conn": "c", "ts": "soon", "data": "{}"}, "without a receive time"),
        ({"t": "recv", "conn": "c", "ts": 1786310819.9}, "recv without data"),
        ({"t": "connect", "conn": "c", "ts": 1786310819.9}, "connect without addr"),
        ({"conn": "c"}, "not a cryptofeed v3 line"),
    ],
)
def test_broken_v3_framing_refuses_the_whole_file(tmp_path, capsys, record, message):
    data = tmp_path / "data"
    path = _v3(tmp_path, [_recv("c", TRADE % ("BTCUSDT", "BTCUSDT")), record])
    assert _import(path, data, "bybit-linear") == 2
    assert message in capsys.readouterr().err
    assert not (data / "log").exists()


def test_a_broken_zstd_file_is_refused(tmp_path, capsys):
    path = _v3(tmp_path, [_recv("c", TRADE % ("BTCUSDT", "BTCUSDT"))] * 50)
    path.write_bytes(path.read_bytes()[:-20])
    assert _import(path, tmp_path / "data", "bybit-linear") == 2
    assert "cannot decompress" in capsys.readouterr().err


def test_a_connection_to_another_product_is_skipped_not_parsed(tmp_path, capsys):
    data = tmp_path / "data"
    path = _v3(
        tmp_path,
        [
            _connect("lin", LINEAR),
            _connect("spot", SPOT),
            _recv("lin", TRADE % ("BTCUSDT", "BTCUSDT")),
            _recv("spot", TRADE % ("ETHUSDT", "ETHUSDT")),  # would parse as a linear trade
        ],
    )
    report = _json_import(capsys, path, data, "bybit-linear")
    assert report["skipped"] == {"other_endpoint": 1}
    assert report["other_endpoints"] == {"spot": f"{SPOT} (Bybit spot)"}
    assert report["events"] == {"bybit-linear/trade/BTC-USDT-PERP": 1}
    assert _quarantined(data) == []


def test_a_file_of_another_products_connections_only_is_refused(tmp_path, capsys):
    data = tmp_path / "data"
    path = _v3(tmp_path, [_connect("spot", SPOT), _recv("spot", TRADE % ("BTCUSDT", "BTCUSDT"))])
    assert _import(path, data, "bybit-linear") == 2
    err = capsys.readouterr().err
    assert "which is Bybit spot, not bybit-linear" in err and err.count("\n") == 1
    assert not (data / "log").exists()


def test_a_control_message_goes_to_each_instrument_of_its_connection(tmp_path, capsys):
    data = tmp_path / "data"
    path = _v3(
        tmp_path,
        [
            _connect("lin", LINEAR),
            _recv("lin", ACK),
            _recv("lin", TRADE % ("BTCUSDT", "BTCUSDT")),
            _recv("lin", TRADE % ("ETHUSDT", "ETHUSDT")),
        ],
    )
    report = _json_import(capsys, path, data, "bybit-linear")
    assert report["events"] == {
        "bybit-linear/control/BTC-USDT-PERP": 1,
        "bybit-linear/control/ETH-USDT-PERP": 1,
        "bybit-linear/trade/BTC-USDT-PERP": 1,
        "bybit-linear/trade/ETH-USDT-PERP": 1,
    }
    [ack] = _rows(data, "bybit-linear/control/ETH-USDT-PERP")
    assert ack["payload_raw"] == ACK.encode() and ack["event_ts_exchange_ms"] is None


def test_a_control_message_of_a_connection_without_instruments_is_quarantined(tmp_path):
    data = tmp_path / "data"
    assert (
        _import(_v3(tmp_path, [_connect("lin", LINEAR), _recv("lin", ACK)]), data, "bybit-linear")
        == 0
    )
    [record] = _quarantined(data)
    assert record.reason == "no_symbol"


def test_cryptofeed_text_sent_lines_are_skipped(tmp_path, capsys):
    data = tmp_path / "data"
    path = tmp_path / "OKX.ws.1.0"
    trade = (
        '{"arg":{"channel":"trades","instId":"UNI-USD-SWAP"},"data":[{"instId":"UNI-USD-SWAP",'
        '"tradeId":"12883020","px":"5.123","sz":"100","side":"sell","ts":"1652459215150"}]}'
    )
    path.write_text(
        "wss://ws.okx.com:8443/ws/v5/public <-> 1652459224.5300605\n"
        'wss://ws.okx.com:8443/ws/v5/public <- 1652459225.2987883: {"op":"subscribe","args":[]}\n'
        f"1652459225.507172: {trade}\n"
    )
    report = _json_import(capsys, path, data, "okx-swap", "cryptofeed")
    assert report["skipped"] == {"sent": 1}
    assert report["events"] == {"okx-swap/trade/UNI-USD-PERP": 1}


# -- real recordings -----------------------------------------------------------------------


def _trades(data, venue):
    """Every trade in the venue's trade streams: (stream symbol, row exchange time, trade)."""
    log, parser = open_log(data, readonly=True), parser_for(venue)
    out = []
    for sid in log.stream_ids():
        if sid.channel == "trade":
            for row in to_table(log, [sid]).to_pylist():
                parsed = parser.parse(row["payload_raw"])
                assert row["event_ts_exchange_ms"] == min(t.ts_ms for t in parsed.trades)
                out += [(sid.symbol, row["event_ts_exchange_ms"], t) for t in parsed.trades]
    return out


def _by_id(trades):
    return {(symbol, t.trade_id): t for symbol, _, t in trades}


def _check(trade, price, size, side, ts_ms):
    assert (trade.price, trade.size, trade.taker_side, trade.ts_ms) == (
        Decimal(price), Decimal(size), side, ts_ms,
    )  # fmt: skip
    assert (str(trade.price), str(trade.size)) == (price, size)  # the exact text


def _v3_recv(path):
    raw = zstandard.ZstdDecompressor().stream_reader(path.read_bytes()).read()
    records = [json.loads(line) for line in raw.splitlines()]
    addr = {r["conn"]: r["addr"] for r in records if r["t"] == "connect"}
    return [(addr.get(r["conn"]), r["data"]) for r in records if r["t"] == "recv"]


@pytest.mark.real_fixtures
def test_real_bybit_linear_capture_imports_cleanly(tmp_path, real_fixtures, capsys):
    data = tmp_path / "data"
    path = real_fixtures / "cryptofeed" / "v3" / "BYBIT.jsonl.zst"
    report = _json_import(capsys, path, data, "bybit-linear")
    assert main(["verify-log", "--data", str(data)]) == 0
    assert _quarantined(data) == [] and report["quarantined"] == {}
    assert report["messages"] == 2546
    assert report["skipped"] == {"http": 2, "other_endpoint": 681, "sent": 24}
    assert report["other_endpoints"] == {"BYBIT.ws.3": f"{SPOT} (Bybit spot)"}
    # 17 acks name no instrument: each goes to the 4 instruments' control streams
    assert sum(report["events"].values()) == 2546 - 17 + 17 * 4
    # every linear publicTrade message is a trade event of its symbol, byte for byte
    want = sorted(
        (json.loads(text)["topic"].split(".")[1][:-4] + "-USDT-PERP", text.encode())
        for addr, text in _v3_recv(path)
        if addr == LINEAR and json.loads(text).get("topic", "").startswith("publicTrade.")
    )
    log = open_log(data, readonly=True)
    got = sorted(
        (sid.symbol, row["payload_raw"])
        for sid in log.stream_ids()
        if sid.channel == "trade"
        for row in to_table(log, [sid]).to_pylist()
    )
    assert got == want and len(got) == 102
    trades = _trades(data, "bybit-linear")
    assert len(trades) == 327
    ids = _by_id(trades)
    uuid = lambda text: int(text.replace("-", ""), 16)  # noqa: E731
    _check(ids["BTC-USDT-PERP", uuid("a9188a0a-82bc-50de-be60-03eedbe3cdd7")],
           "65114.20", "0.004", "sell", 1786310819680)  # fmt: skip
    _check(ids["DOGE-USDT-PERP", uuid("f6f37bc9-6ffa-5533-a943-675fce2b3481")],
           "0.07054", "882", "buy", 1786310853023)  # fmt: skip
    _check(ids["DOGE-USDT-PERP", uuid("8f97de68-9750-5e27-9d0e-1535c1f4954c")],
           "0.07056", "8935", "buy", 1786310853023)  # 46th trade of one push  # fmt: skip
    _check(ids["DOGE-USDT-PERP", uuid("6386fc13-a599-567f-8293-07e6cd14ff1f")],
           "0.07056", "1705", "buy", 1786310861416)  # the file's last trade  # fmt: skip


@pytest.mark.real_fixtures
def test_real_bybit_legacy_capture_is_refused_as_inverse(tmp_path, real_fixtures, capsys):
    path = real_fixtures / "cryptofeed" / "BYBIT.ws.26.0"
    assert _import(path, tmp_path / "data", "bybit-linear", "cryptofeed") == 2
    err = capsys.readouterr().err
    assert "stream.bybit.com/realtime, which is Bybit inverse perpetuals, pre-v5 API" in err
    assert not (tmp_path / "data" / "log").exists()


@pytest.mark.real_fixtures
def test_real_okx_capture_imports_its_swap(tmp_path, real_fixtures, capsys):
    data = tmp_path / "data"
    path = real_fixtures / "cryptofeed" / "OKX.ws.1.0"
    report = _json_import(capsys, path, data, "okx-swap", "cryptofeed")
    assert main(["verify-log", "--data", str(data)]) == 0
    assert _quarantined(data) == [] and report["quarantined"] == {}
    # the spot pair BTC-USDT and the future BTC-USD-220527 are other OKX products
    assert report["skipped"] == {"other_product": 309, "sent": 3}
    assert report["events"] == {
        "okx-swap/book_ticker/UNI-USD-PERP": 1,
        "okx-swap/control/UNI-USD-PERP": 6,
        "okx-swap/depth/UNI-USD-PERP": 93,
        "okx-swap/trade/UNI-USD-PERP": 1,
    }
    [(symbol, ts, trade)] = _trades(data, "okx-swap")
    assert (symbol, ts, trade.trade_id) == ("UNI-USD-PERP", 1652459215150, 12883020)
    _check(trade, "5.123", "100", "sell", 1652459215150)


@pytest.mark.real_fixtures
def test_real_coinbase_captures_import_cleanly(tmp_path, real_fixtures, capsys):
    data = tmp_path / "data"
    exchange = real_fixtures / "cryptofeed" / "COINBASE.ws.28.0"
    advanced = real_fixtures / "cryptofeed" / "v3" / "COINBASE.jsonl.zst"
    ex = _json_import(capsys, exchange, data, "coinbase", "cryptofeed")
    # Advanced Trade level2 snapshots run to 5 MB: past the 1 MiB default
    at = _json_import(
        capsys, advanced, data, "coinbase", "cryptofeed-v3", "--max-payload-bytes", str(8 << 20)
    )
    assert main(["verify-log", "--data", str(data)]) == 0
    assert _quarantined(data) == [] and ex["quarantined"] == at["quarantined"] == {}
    assert (ex["messages"], at["messages"]) == (9946, 1030)
    trades = _trades(data, "coinbase")
    assert len(trades) == 107 + 279
    ids = _by_id(trades)
    # Exchange: side "sell" is the maker's, the taker bought
    _check(ids["SKL-BTC", 280232], "0.00001305", "985", "buy", 1618677817089)
    _check(ids["BAND-GBP", 881613], "14.7775", "0.04", "buy", 1618677810244)  # last_match
    _check(ids["SKL-USD", 1568319], "0.7902", "18", "sell", 1618677846669)  # maker buy
    # Advanced Trade (same venue, same trade ids per product): side is the maker's too
    _check(ids["BTC-USD", 1068572091], "65083.67", "0.01034361", "buy", 1786309548167)
    _check(ids["BTC-USD", 1068572088], "65083.66", "0.00007299", "sell", 1786309538504)
    _check(ids["ETH-USD", 833140679], "1919.62", "1", "sell", 1786309486652)
    # every match / last_match / market_trades message became a trade event
    cf_lines = exchange.read_text().splitlines()[1:]
    n_exchange = sum('"type":"match"' in ln or '"type":"last_match"' in ln for ln in cf_lines)
    n_advanced = sum('"channel":"market_trades"' in t for _, t in _v3_recv(advanced))
    trade_events = sum(n for s, n in (ex["events"] | {}).items() if "/trade/" in s) + sum(
        n for s, n in at["events"].items() if "/trade/" in s
    )
    assert (n_exchange, n_advanced, trade_events) == (107, 59, 166)


@pytest.mark.real_fixtures
def test_real_coinbase_advanced_trade_needs_a_larger_payload_limit(tmp_path, real_fixtures, capsys):
    path = real_fixtures / "cryptofeed" / "v3" / "COINBASE.jsonl.zst"
    assert _import(path, tmp_path / "data", "coinbase") == 2
    assert "COINBASE.jsonl.zst:22: message of 5079379 bytes" in capsys.readouterr().err


@pytest.mark.real_fixtures
def test_real_kraken_v1_capture_imports_cleanly(tmp_path, real_fixtures, capsys):
    data = tmp_path / "data"
    path = real_fixtures / "cryptofeed" / "KRAKEN.ws.50.0"
    report = _json_import(capsys, path, data, "kraken", "cryptofeed")
    assert main(["verify-log", "--data", str(data)]) == 0
    assert _quarantined(data) == [] and report["quarantined"] == {}
    assert (report["messages"], report["skipped"]) == (4321, {"sent": 1})
    events = report["events"]
    assert not any("/trade/" in s for s in events)  # the recording holds book data only
    assert sum(n for s, n in events.items() if "/depth/" in s) == 4279
    # 10 subscription acks name their pair; 31 heartbeats and 1 system status go to all 10
    assert sum(n for s, n in events.items() if "/control/" in s) == 10 + 32 * 10
    assert events["kraken/depth/BTC-CHF"] == 290  # XBT/CHF, read as BTC


def test_concatenated_zstd_frames_are_read_to_the_end(tmp_path, capsys):
    lines = [json.dumps(_recv("c", TRADE % (s, s))) + "\n" for s in ("BTCUSDT", "ETHUSDT")]
    frames = b"".join(zstandard.ZstdCompressor().compress(x.encode()) for x in lines)
    path = tmp_path / "two.jsonl.zst"
    path.write_bytes(frames)
    assert _json_import(capsys, path, tmp_path / "data", "bybit-linear")["messages"] == 2
    path.write_bytes(frames[:-3])  # cut inside the second frame
    assert _import(path, tmp_path / "data2", "bybit-linear") == 2
    assert "ends inside a zstd frame" in capsys.readouterr().err
