"""buff import: framing checks, quarantine, once-only imports, and real recorded traffic."""

import gzip
import json

import pytest

from buff_dataplane.cli import main
from buff_dataplane.storage.log import open_log
from buff_dataplane.storage.quarantine import read_quarantine
from buff_dataplane.storage.reader import to_table

AGG = (
    '{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1723161256330,"a":%d,'
    '"s":"BTCUSDT","p":"61800.30","q":"0.006","f":5266583935,"l":5266583935,'
    '"T":1723161256322,"m":false}}'
)
SNAPSHOT = '{"lastUpdateId":5123107852948,"E":1723161256501,"T":1723161256493,"bids":[],"asks":[]}'


def _hft(tmp_path, messages, name="cap.gz"):
    path = tmp_path / name
    lines = [f"{1723161255030314667 + i * 1_000_000} {m}" for i, m in enumerate(messages)]
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return path


def _import(path, data, fmt="hftbacktest", venue="binance-usdm", *extra):
    return main(
        ["import", str(path), "--venue", venue, "--format", fmt, "--data", str(data), *extra]
    )


def _nothing_written(data):
    return not (data / "log").exists() and not (data / "imports.jsonl").exists()


def test_messages_land_in_their_streams_with_exchange_and_receive_times(tmp_path):
    data = tmp_path / "data"
    path = _hft(tmp_path, [SNAPSHOT, AGG % 1, AGG % 2])
    assert _import(path, data) == 0
    log = open_log(data, readonly=True)
    assert [str(s) for s in log.stream_ids()] == [
        "binance-usdm/depth/BTC-USDT-PERP",
        "binance-usdm/trade/BTC-USDT-PERP",
    ]
    trades = to_table(log, ["binance-usdm/trade/BTC-USDT-PERP"]).to_pylist()
    assert [t["payload_raw"] for t in trades] == [(AGG % 1).encode(), (AGG % 2).encode()]
    assert [t["event_ts_exchange_ms"] for t in trades] == [1723161256322, 1723161256322]
    assert [t["event_ts_ingest_ms"] for t in trades] == [1723161255031, 1723161255032]
    assert trades[0]["origin"].startswith("import:") and trades[0]["origin"].endswith(":cap.gz")
    # The snapshot names no symbol; the file holds one instrument, so it is that one's.
    [snap] = to_table(log, ["binance-usdm/depth/BTC-USDT-PERP"]).to_pylist()
    assert snap["event_ts_exchange_ms"] == 1723161256493


def test_refused_messages_are_quarantined_with_reason_and_the_rest_imported(tmp_path, capsys):
    data = tmp_path / "data"
    bad = AGG.replace('"p":"61800.30"', '"p":61800.3') % 3
    path = _hft(tmp_path, [AGG % 1, bad, "not json at all", AGG % 2])
    assert _import(path, data) == 0
    assert "2 quarantined" in capsys.readouterr().out
    records = list(read_quarantine(data / "quarantine"))
    assert [r.payload for r in records] == [bad.encode(), b"not json at all"]
    assert all(r.reason and r.detail.startswith("line ") for r in records)
    assert len(to_table(open_log(data, readonly=True))) == 2
    assert main(["log", "quarantine", "--data", str(data)]) == 0
    assert "2 quarantined payloads" in capsys.readouterr().out


def test_symbol_less_messages_in_a_multi_instrument_file_are_quarantined(tmp_path):
    data = tmp_path / "data"
    eth = AGG.replace("btcusdt", "ethusdt").replace("BTCUSDT", "ETHUSDT")
    path = _hft(tmp_path, [SNAPSHOT, AGG % 1, eth % 1])
    assert _import(path, data) == 0
    [record] = read_quarantine(data / "quarantine")
    assert record.reason == "no_symbol"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b"1723161255030314667 " + AGG.encode() % 1 + b"\n1723161255030314668 \xff\xfe{}\n",
            "cap.gz:2: not UTF-8",
        ),
        (
            b"1723161255030314667 " + AGG.encode() % 1 + b"\nhello world\n",
            "cap.gz:2: not an hftbacktest capture line",
        ),
        (b"17 " + AGG.encode() % 1 + b"\n", "cap.gz:1: not an hftbacktest capture line"),
        (b"9723161255030314667 " + AGG.encode() % 1 + b"\n", "out of range"),
        (b"1723161255030314667 " + b"x" * 2000 + b"\n", "exceeds the limit of 1024 bytes"),
    ],
)
def test_broken_framing_refuses_the_whole_file_and_writes_nothing(
    tmp_path, capsys, content, message
):
    data = tmp_path / "data"
    path = tmp_path / "cap.gz"
    path.write_bytes(gzip.compress(content))
    assert _import(path, data, "hftbacktest", "binance-usdm", "--max-payload-bytes", "1024") == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert _nothing_written(data)


def test_a_file_is_imported_once(tmp_path, capsys):
    data = tmp_path / "data"
    path = _hft(tmp_path, [AGG % 1])
    assert _import(path, data) == 0
    copy = tmp_path / "copy.gz"
    copy.write_bytes(path.read_bytes())
    assert _import(copy, data) == 2
    assert "already imported" in capsys.readouterr().err
    assert len(to_table(open_log(data, readonly=True))) == 1


def test_a_capture_from_another_venue_is_refused(tmp_path, capsys):
    data = tmp_path / "data"
    path = tmp_path / "spot.ws"
    path.write_text(
        "wss://stream.binance.com:9443/stream?streams=btcusdt@aggTrade <-> 1626992740.17\n"
        f"1626992741.06217: {AGG % 1}\n"
    )
    assert _import(path, data, "cryptofeed") == 2
    assert "which is binance-spot, not binance-usdm" in capsys.readouterr().err
    assert _nothing_written(data)


@pytest.mark.parametrize(
    ("argv_tail", "message"),
    [
        (["--venue", "../x", "--format", "ndjson"], "invalid venue"),
        (["--venue", "binance-usdm", "--format", "pcap"], "unknown format"),
        (["--venue", "bybit-spot", "--format", "ndjson"], "unknown venue"),
    ],
)
def test_bad_options_are_refused(tmp_path, capsys, argv_tail, message):
    path = tmp_path / "c.ndjson"
    path.write_text(json.dumps({"recv_ms": 1723161256000, "raw": AGG % 1}) + "\n")
    data = tmp_path / "data"
    assert main(["import", str(path), *argv_tail, "--data", str(data)]) == 2
    assert message in capsys.readouterr().err
    assert _nothing_written(data)


def test_ndjson_format_round_trips_the_exact_bytes(tmp_path):
    data = tmp_path / "data"
    path = tmp_path / "c.ndjson"
    raw = AGG % 7
    path.write_text(json.dumps({"recv_ms": 1723161256000, "raw": raw}) + "\n\n")
    assert _import(path, data, "ndjson") == 0
    [row] = to_table(open_log(data, readonly=True)).to_pylist()
    assert row["payload_raw"] == raw.encode() and row["event_ts_ingest_ms"] == 1723161256000


# -- real recorded traffic -------------------------------------------------------------


def _expected_trades(lines):
    """Independently of the product: (stream symbol, T, payload) of each trade message."""
    out = []
    for payload in lines:
        msg = json.loads(payload)
        data = msg.get("data", msg)
        if isinstance(data, dict) and data.get("e") in ("aggTrade", "trade"):
            out.append((data["s"], data["T"], payload.encode()))
    return out


def _check_trades(data, venue, suffix, expected):
    log = open_log(data, readonly=True)
    got = []
    for sid in log.stream_ids():
        if sid.channel != "trade":
            continue
        for row in to_table(log, [sid]).to_pylist():
            got.append((sid.symbol, row["event_ts_exchange_ms"], row["payload_raw"]))
    want = [(s[:-4] + "-USDT" + suffix if s.endswith("USDT") else s, t, p) for s, t, p in expected]
    assert sorted(got) == sorted(want)
    assert len(got) == len(expected) > 0


@pytest.mark.real_fixtures
def test_real_usdm_captures_import_cleanly(tmp_path, real_fixtures, capsys):
    data = tmp_path / "data"
    hft = real_fixtures / "hftbacktest" / "usdm" / "btcusdt_20240808.gz"
    cf = real_fixtures / "cryptofeed" / "BINANCE_FUTURES.ws.1.0"
    assert _import(hft, data, "hftbacktest") == 0
    assert _import(cf, data, "cryptofeed") == 0
    assert main(["verify-log", "--data", str(data)]) == 0
    assert not (data / "quarantine").exists() or not list(read_quarantine(data / "quarantine"))
    hft_lines = [
        ln.split(" ", 1)[1] for ln in gzip.decompress(hft.read_bytes()).decode().splitlines()
    ]
    cf_lines = [ln.split(": ", 1)[1] for ln in cf.read_text().splitlines()[1:] if ln.strip()]
    expected = _expected_trades(hft_lines) + _expected_trades(cf_lines)
    assert len(_expected_trades(hft_lines)) == 21_313
    assert len(_expected_trades(cf_lines)) == 91
    _check_trades(data, "binance-usdm", "-PERP", expected)
    log = open_log(data, readonly=True)
    total = sum(e.rows for s in log.stream_ids() for e in log.manifest(s))
    assert total == len(hft_lines) + len(cf_lines)


@pytest.mark.real_fixtures
def test_real_spot_captures_import_cleanly(tmp_path, real_fixtures):
    data = tmp_path / "data"
    hft = real_fixtures / "hftbacktest" / "spot" / "btcusdt_20240808.gz"
    cf = real_fixtures / "cryptofeed" / "BINANCE.ws.1.0"
    assert _import(hft, data, "hftbacktest", "binance-spot") == 0
    assert _import(cf, data, "cryptofeed", "binance-spot") == 0
    assert main(["verify-log", "--data", str(data)]) == 0
    assert not list(read_quarantine(data / "quarantine"))
    hft_lines = [
        ln.split(" ", 1)[1] for ln in gzip.decompress(hft.read_bytes()).decode().splitlines()
    ]
    expected = _expected_trades(hft_lines)
    assert len(expected) == 9_757
    log = open_log(data, readonly=True)
    trades = to_table(log, ["binance-spot/trade/BTC-USDT"]).to_pylist()
    assert [(r["event_ts_exchange_ms"], r["payload_raw"]) for r in trades] == [
        (t, p) for _, t, p in expected
    ]
