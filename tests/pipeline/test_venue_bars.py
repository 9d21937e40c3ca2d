"""Bars for every venue: batches of trades, OKX prints covering several matches, Bybit
UUID ids, and the real captures imported, canonicalized and verified by replay."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from buff_dataplane.cli import main
from buff_dataplane.core.config import LogConfig
from buff_dataplane.core.venues import id_rules
from buff_dataplane.pipeline.bars_ref import build_bars_ref
from buff_dataplane.pipeline.bars_sql import build_bars_sql
from buff_dataplane.storage.bars_store import BarStore
from buff_dataplane.storage.log import open_log
from tests.pipeline.bars_helpers import segments

T0 = 1_700_000_040_000  # a minute boundary


def okx(prints: list[tuple[int, int, str, int]]) -> bytes:
    """One OKX ``trades`` push of prints (tradeId, count, size, ts offset)."""
    data = [
        {
            "instId": "BTC-USDT-SWAP",
            "tradeId": str(tid),
            "px": "42000.5",
            "sz": size,
            "side": "buy",
            "ts": str(T0 + dt),
            "count": str(count),
        }
        for tid, count, size, dt in prints
    ]
    msg = {"arg": {"channel": "trades", "instId": "BTC-USDT-SWAP"}, "data": data}
    return json.dumps(msg, separators=(",", ":")).encode()


def bybit(items: list[tuple[str, str, int]]) -> bytes:
    """One Bybit ``publicTrade`` push of trades (uuid, size, ts offset)."""
    data = [
        {"T": T0 + dt, "s": "BTCUSDT", "S": "Buy", "v": size, "p": "65000.1", "L": "PlusTick",
         "i": uuid, "BT": False, "RPI": False, "seq": 1}
        for uuid, size, dt in items
    ]  # fmt: skip
    msg = {"topic": "publicTrade.BTCUSDT", "type": "snapshot", "ts": T0, "data": data}
    return json.dumps(msg, separators=(",", ":")).encode()


def write(root, stream, payloads):
    with open_log(root, LogConfig(fsync=False)) as log:
        ts = [T0] * len(payloads)
        log.writer(stream).append_batch(payloads, ts, [T0 + 1_000] * len(payloads), source="ws")
    return segments(root)


def build(engine, files, venue, symbol):
    [result] = engine(
        files,
        venue=venue,
        symbol=symbol,
        timeframes=["1m"],
        allowed_lateness_ms=5_000,
        apply_late=False,
        window=(T0 - 60_000, T0 + 120_000),
        **id_rules(venue)._asdict(),
    ).values()
    return result


@pytest.mark.parametrize("engine", [build_bars_ref, build_bars_sql])
def test_okx_prints_covering_consecutive_matches_leave_no_gap(tmp_path, engine):
    # 8..10, 11..12 in one push, 13 alone in the next: every match accounted for.
    files = write(
        tmp_path, "okx-swap/trade/BTC-USDT-PERP", [okx([(10, 3, "1", 0), (12, 2, "2", 5)]),
                                                   okx([(13, 1, "4", 9)])]
    )  # fmt: skip
    [bar] = build(engine, files, "okx-swap", "BTC-USDT-PERP").bars
    assert (bar.status, bar.trade_count, bar.volume, bar.event_count) == ("COMPLETE", 6, "7", 2)
    assert (bar.first_trade_id, bar.last_trade_id) == (10, 13)


@pytest.mark.parametrize("engine", [build_bars_ref, build_bars_sql])
def test_okx_matches_missing_between_prints_are_a_gap(tmp_path, engine):
    # 8..10 then 14..15: matches 11..13 were never seen.
    files = write(
        tmp_path, "okx-swap/trade/BTC-USDT-PERP", [okx([(10, 3, "1", 0), (15, 2, "2", 5)])]
    )
    [bar] = build(engine, files, "okx-swap", "BTC-USDT-PERP").bars
    assert bar.status == "GAP_UNRESOLVED"


def test_both_engines_agree_on_a_batch_in_one_event(tmp_path):
    files = write(
        tmp_path,
        "okx-swap/trade/BTC-USDT-PERP",
        [okx([(10, 1, "1", 7), (11, 1, "2", 3), (12, 1, "3", 3)]), okx([(13, 1, "5", 3)])],
    )
    ref = build(build_bars_ref, files, "okx-swap", "BTC-USDT-PERP")
    sql = build(build_bars_sql, files, "okx-swap", "BTC-USDT-PERP")
    assert ref == sql
    [bar] = ref.bars
    # Time order first (ts 3: 11, 12 of the first event, then 13), the index breaks the tie.
    assert (bar.open, bar.close, bar.volume, bar.event_count) == ("42000.5", "42000.5", "11", 2)


def test_bybit_uuid_ids_dedup_but_give_no_id_range_and_no_proof_of_completeness(tmp_path):
    a, b = "a9188a0a-82bc-50de-be60-03eedbe3cdd7", "0b3c4d5e-82bc-50de-be60-03eedbe3cdd7"
    files = write(
        tmp_path,
        "bybit-linear/trade/BTC-USDT-PERP",
        [bybit([(a, "0.5", 1), (b, "0.25", 2)]), bybit([(a, "0.5", 1)])],  # a resent
    )
    result = build(build_bars_ref, files, "bybit-linear", "BTC-USDT-PERP")
    [bar] = result.bars
    assert (bar.volume, bar.trade_count, result.duplicates) == ("0.75", 2, 1)
    assert (bar.first_trade_id, bar.last_trade_id) == (None, None)
    assert bar.status == "COMPLETE"  # inside the observed window, trades present


def test_the_sql_engine_refuses_uuid_ids_with_a_clear_error(tmp_path):
    files = write(
        tmp_path,
        "bybit-linear/trade/BTC-USDT-PERP",
        [bybit([("a9188a0a-82bc-50de-be60-03eedbe3cdd7", "1", 1)])],
    )
    with pytest.raises(Exception, match="does not fit 64 bits"):
        build(build_bars_sql, files, "bybit-linear", "BTC-USDT-PERP")


# -- the real captures, end to end ---------------------------------------------------------

REAL = [
    ("bybit-linear", "cryptofeed-v3", "cryptofeed/v3/BYBIT.jsonl.zst", ()),
    ("okx-swap", "cryptofeed", "cryptofeed/OKX.ws.1.0", ()),
    ("coinbase", "cryptofeed", "cryptofeed/COINBASE.ws.28.0", ()),
    (
        "coinbase",
        "cryptofeed-v3",
        "cryptofeed/v3/COINBASE.jsonl.zst",
        ("--max-payload-bytes", "8388608"),
    ),
]


def _volume(data, venue):
    """Sum of trade sizes per symbol in the raw log, through the parser (independent of bars)."""
    from buff_dataplane.feeds.registry import parser_for
    from buff_dataplane.storage.reader import to_table

    parser = parser_for(venue)
    out: dict[str, Decimal] = {}
    log = open_log(data, readonly=True)
    streams = [s for s in log.stream_ids() if s.channel == "trade"]
    for row in to_table(log, streams).to_pylist():
        for t in parser.parse(row["payload_raw"]).trades:
            sym = row["stream_id"].split("/")[2]
            out[sym] = out.get(sym, Decimal(0)) + t.size
    return out


@pytest.mark.real_fixtures
@pytest.mark.parametrize(("venue", "fmt", "rel", "extra"), REAL, ids=[r[2] for r in REAL])
def test_real_capture_imports_canonicalizes_and_replays(
    tmp_path, real_fixtures, capsys, venue, fmt, rel, extra
):
    data = tmp_path / "data"
    argv = ["import", str(real_fixtures / rel), "--venue", venue, "--format", fmt]
    assert main([*argv, "--data", str(data), *extra]) == 0
    assert main(["verify-log", "--data", str(data)]) == 0
    want = _volume(data, venue)
    assert want  # the capture holds trades of this venue
    digests = {}  # late trades applied: every trade of the log then lands in one bar
    for engine in ("reference", "sql"):
        out = tmp_path / engine
        assert main(["import", str(real_fixtures / rel), "--venue", venue, "--format", fmt,
                     "--data", str(out), *extra]) == 0  # fmt: skip
        assert main(["canonicalize", "--data", str(out), "--engine", engine, "--apply-late"]) == 0
        assert main(["replay", "--verify", "--data", str(out)]) == 0
        store = BarStore(out)
        got: dict[str, Decimal] = {}
        rows = []
        for key in store.artifacts():
            if key.timeframe != "1m":
                continue
            bars = store.read_bars(key, store.latest(key))
            rows.extend(bars)
            got[key.symbol] = sum((Decimal(b.volume) for b in bars), Decimal(0))
        assert got == want  # every trade of the log is in exactly one 1m bar
        digests[engine] = rows
    assert digests["reference"] == digests["sql"]


def test_okx_gap_facts_run_over_the_matches_prints_cover(tmp_path):
    from buff_dataplane.core.ids import StreamId
    from buff_dataplane.core.trades import COVERED
    from buff_dataplane.pipeline.log_facts import id_times, scan_gaps, trade_index

    prints = [(10, 3, "1", 0), (15, 2, "2", 5), (16, 1, "4", 7)]
    write(tmp_path, "okx-swap/trade/BTC-USDT-PERP", [okx(prints)])
    sid = StreamId.parse("okx-swap/trade/BTC-USDT-PERP")
    log = open_log(tmp_path, readonly=True)
    assert id_times(log, sid)[0] == [8, 9, 10, 14, 15, 16]
    [gap] = scan_gaps(log, sid, detected_at_ms=T0 + 60_000)
    assert (gap.id_from, gap.id_to) == (11, 13)
    index = trade_index(log, sid, T0, T0 + 10)
    # A REST item is one match: it cannot equal a print of several, even the one whose
    # tradeId it shares, so every id of such a print is COVERED; a one-match print is not.
    assert [index[i] == COVERED for i in (8, 9, 10, 14, 15, 16)] == [True] * 5 + [False]


def test_venue_control_messages_in_the_control_stream_are_not_gap_facts(tmp_path):
    from buff_dataplane.core.gaps import ControlFact
    from buff_dataplane.pipeline.log_facts import controls

    ours = b'{"event":"disconnected","ts_ms":1700000000000,"venue":"okx-swap"}'
    ack = b'{"event":"subscribe","arg":{"channel":"trades","instId":"BTC-USDT-SWAP"}}'
    write(tmp_path, "okx-swap/control/BTC-USDT-PERP", [b"pong", ack, ours])
    facts = controls(open_log(tmp_path, readonly=True), "okx-swap", "BTC-USDT-PERP")
    assert facts == [ControlFact(1_700_000_000_000, "disconnected")]
