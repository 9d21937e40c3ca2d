"""buff crosscheck: canonical bars built from a capture of the simulator's tape, against
the simulator's klines over real HTTP; the comparison itself on hand-made bars."""

import json

import pytest

from buff_dataplane.cli import main
from buff_dataplane.core.bars import Bar
from buff_dataplane.core.config import LogConfig
from buff_dataplane.feeds.rest_common import Kline, KlineRules
from buff_dataplane.pipeline.canonicalize import canonicalize
from buff_dataplane.pipeline.crosscheck import compare_bars, same_value
from buff_dataplane.sim.background import SimThread
from buff_dataplane.sim.binance_usdm import agg_trade_message
from buff_dataplane.sim.server import SimConfig
from buff_dataplane.storage.log import open_log

T0 = 1_723_161_600_000  # 2024-08-09T00:00Z; the tape is wholly in the past
MINUTES = 5
T1 = T0 + MINUTES * 60_000
CFG = SimConfig(start_ms=T0, duration_s=MINUTES * 60, rate=20)


def running(cfg):
    """The simulator on its own event loop in a thread (the CLI runs asyncio itself)."""
    return SimThread(cfg)


def tape(symbol="BTCUSDT"):
    """The simulator's tape of ``symbol`` (the same seed rule as ExchangeSim.start)."""
    with running(SimConfig(**{**CFG.__dict__, "symbols": (symbol,)})) as sim:
        return sim.tapes[symbol]


def build_bars(data, trades, symbol="BTC-USDT-PERP", minutes=MINUTES):
    """Log ``trades`` as WebSocket events captured 20 ms after they happened; build 1m bars."""
    with open_log(data, LogConfig(fsync=False)) as log:
        log.writer(f"binance-usdm/trade/{symbol}").append_batch(
            [agg_trade_message(t) for t in trades],
            [t.ts_ms for t in trades],
            [t.ts_ms + 20 for t in trades],
            source="ws",
        )
    log = open_log(data, readonly=True)
    try:
        [outcome] = canonicalize(log, venue="binance-usdm", timeframes=["1m"])
    finally:
        log.close()
    assert outcome.bars == minutes


def crosscheck(data, sim, *extra, symbol="BTC-USDT-PERP", start=T0, end=T1):
    argv = ["crosscheck", "--venue", "binance-usdm", "--symbol", symbol, "--timeframe", "1m"]
    argv += ["--from", str(start), "--to", str(end), "--data", str(data)]
    return main([*argv, "--rest-endpoint", sim.rest_url, *extra])


@pytest.fixture(scope="module")
def trades():
    return tape()


def test_bars_of_a_whole_capture_agree_with_the_venue(tmp_path, trades, capsys):
    data = tmp_path / "data"
    build_bars(data, trades)
    with running(CFG) as sim:
        assert [t.agg_id for t in sim.tapes["BTCUSDT"]] == [t.agg_id for t in trades]
        assert crosscheck(data, sim) == 0
        out = capsys.readouterr().out
        assert "bars compared 5, agreeing 5, differing 0, ours-only 0, venue-only 0" in out
        assert out.rstrip().endswith("crosscheck: all bars agree")
        assert crosscheck(data, sim, "--json", end=T0 + 3 * 60_000 + 1) == 0
        report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["differing_bars"] == []
    assert report["counts"] == {
        "compared": 4,
        "agreeing": 4,
        "differing": 0,
        "ours_only": 0,
        "venue_only": 0,
    }
    assert (report["revision"], report["endpoint"]) == (1, sim.rest_url)


def test_a_trade_left_out_of_the_capture_is_named_with_its_bar_and_fields(tmp_path, trades, capsys):
    data = tmp_path / "data"
    lost = trades[len(trades) // 2]
    bucket = lost.ts_ms - lost.ts_ms % 60_000
    build_bars(data, [t for t in trades if t is not lost])
    with running(CFG) as sim:
        assert crosscheck(data, sim) == 1
        out = capsys.readouterr().out
        assert crosscheck(data, sim, "--json") == 1
        report = json.loads(capsys.readouterr().out)
    assert "agreeing 4, differing 1" in out
    [line] = [x for x in out.splitlines() if x.startswith("  DIFFER")]
    assert "[GAP_UNRESOLVED]" in line and "volume ours=" in line and "trade_count ours=" in line
    assert out.rstrip().endswith("crosscheck: 1 bars disagree")
    [diff] = report["differing_bars"]
    assert (diff["open_time_ms"], diff["status"], diff["missing"]) == (
        bucket,
        "GAP_UNRESOLVED",
        None,
    )
    fields = {f["field"]: f for f in diff["fields"]}
    assert {"volume", "quote_volume", "trade_count"} <= set(fields)
    expected = int(fields["trade_count"]["venue"]) - (lost.last_id - lost.first_id + 1)
    assert int(fields["trade_count"]["ours"]) == expected


def test_a_minute_we_never_captured_is_missing_on_our_side(tmp_path, trades, capsys):
    data = tmp_path / "data"
    build_bars(data, [t for t in trades if t.ts_ms < T1 - 60_000], minutes=MINUTES - 1)
    with running(CFG) as sim:
        assert crosscheck(data, sim) == 1
    out = capsys.readouterr().out
    assert "bars compared 4, agreeing 4, differing 0, ours-only 0, venue-only 1" in out
    [line] = [x for x in out.splitlines() if x.startswith("  MISSING")]
    assert line == "  MISSING 2024-08-09T00:04:00.000Z: we have no bar (the venue has a kline)"


def test_an_endpoint_that_is_not_the_venue_s_api_is_exit_4_and_writes_nothing(
    tmp_path, trades, capsys
):
    data = tmp_path / "data"
    build_bars(data, trades)
    before = sorted(p.relative_to(data) for p in data.rglob("*"))
    with running(SimConfig(**{**CFG.__dict__, "faults": "resthtml:99"})) as sim:
        assert crosscheck(data, sim, "--max-attempts", "2") == 4
        assert sim.rest_requests == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("buff: error: GET ")
    assert "text/html" in captured.err and "after 2 attempts" in captured.err
    assert sorted(p.relative_to(data) for p in data.rglob("*")) == before


def test_bad_input_is_exit_2_before_any_request(tmp_path, trades, capsys):
    data = tmp_path / "data"
    build_bars(data, trades)
    with running(CFG) as sim:
        assert crosscheck(data, sim, start=T1, end=T0) == 2
        assert "inverted or empty range" in capsys.readouterr().err
        assert crosscheck(data, sim, start=T0, end=T0) == 2
        assert main(["crosscheck", "--venue", "binance-usdm", "--symbol", "BTC-USDT-PERP",
                     "--timeframe", "1s", "--from", str(T0), "--to", str(T1),
                     "--data", str(data), "--rest-endpoint", sim.rest_url]) == 2  # fmt: skip
        assert "no 1s klines" in capsys.readouterr().err
        assert crosscheck(data, sim, symbol="ETH-USDT-PERP") == 2
        assert "run `buff canonicalize` first" in capsys.readouterr().err
        assert crosscheck(data, sim, symbol="btc-usdt") == 2
        assert crosscheck(data, sim, start="yesterday") == 2
        assert sim.rest_requests == 0
    for venue in ("nowhere", "kraken"):
        argv = ["crosscheck", "--venue", venue, "--symbol", "BTC-USD", "--timeframe", "1m"]
        assert main([*argv, "--from", str(T0), "--to", str(T1), "--data", str(data)]) == 2


def test_a_symbol_the_venue_does_not_list_is_exit_2_naming_it(tmp_path, capsys):
    data = tmp_path / "data"
    build_bars(data, tape("ETHUSDT"), symbol="ETH-USDT-PERP")
    with running(CFG) as sim:  # lists BTCUSDT only
        assert crosscheck(data, sim, symbol="ETH-USDT-PERP") == 2
        assert sim.rest_requests == 1
    err = capsys.readouterr().err
    assert "symbol ETHUSDT" in err and "-1121 Invalid symbol." in err


# --- the comparison -----------------------------------------------------------------------


def _bar(t, status="COMPLETE", **kw):
    values = {
        "open": "10.0",
        "high": "12",
        "low": "9.50",
        "close": "11",
        "volume": "3.000",
        "quote_volume": "33",
        "trade_count": 4,
        "taker_buy_volume": "1",
        "taker_buy_quote_volume": "11",
        **kw,
    }
    return Bar(
        venue="binance-usdm",
        symbol="BTC-USDT-PERP",
        timeframe="1m",
        open_time_ms=t,
        close_time_ms=t + 59_999,
        first_trade_id=1,
        last_trade_id=2,
        status=status,
        backfilled=False,
        event_count=2,
        seq_min=1,
        seq_max=2,
        segments="s",
        payload_digest="d",
        **values,
    )


def _kline(t, **kw):
    values = {
        "open": "10",
        "high": "12.00",
        "low": "9.5",
        "close": "11.0",
        "volume": "3",
        "quote_volume": "33.000",
        "trade_count": 4,
        "taker_buy_volume": "1.0",
        "taker_buy_quote_volume": "11",
        **kw,
    }
    return Kline(open_time_ms=t, close_time_ms=t + 59_999, **values)


def test_decimals_compare_by_exact_value_and_text_otherwise():
    assert same_value("1.50", "1.5") and same_value("0", "0.000")
    assert not same_value("1.5", "1.5000000000000000000000000000001")
    assert not same_value("", "61800.3") and same_value("", "")


def test_compare_counts_agreement_differences_and_one_sided_buckets():
    m = 60_000
    ours = [
        _bar(0),
        _bar(m, volume="3.001", status="CONFLICT"),
        _bar(2 * m, trade_count=5),
        _bar(3 * m, status="EMPTY"),
        _bar(9 * m),  # outside [0, 5m)
    ]
    venue = [_kline(0), _kline(m), _kline(2 * m), _kline(4 * m), _kline(-m)]
    c = compare_bars(ours, venue, start_ms=0, end_ms=5 * m)
    assert c.counts() == {
        "compared": 3,
        "agreeing": 1,
        "differing": 2,
        "ours_only": 1,
        "venue_only": 1,
    }
    assert not c.ok
    by_time = {d.open_time_ms: d for d in c.diffs}
    assert [(f.field, f.ours, f.venue) for f in by_time[m].fields] == [("volume", "3.001", "3")]
    assert by_time[m].status == "CONFLICT"
    assert [(f.field, f.ours, f.venue) for f in by_time[2 * m].fields] == [
        ("trade_count", "5", "4")
    ]
    assert (by_time[3 * m].missing, by_time[3 * m].status) == ("venue", "EMPTY")
    assert (by_time[4 * m].missing, by_time[4 * m].status) == ("ours", None)
    assert compare_bars([_bar(0)], [_kline(0)], start_ms=0, end_ms=m).ok


def test_a_venue_opening_at_the_previous_close_is_compared_with_our_previous_close():
    m = 60_000
    ours = [_bar(0, close="10.5"), _bar(m, open="11", close="11.0")]
    venue = [_kline(0), _kline(m, open="10.5")]  # Bybit: opens at the previous close
    rules = KlineRules(open_is_previous_close=True)
    assert compare_bars(ours, venue, start_ms=m, end_ms=2 * m, rules=rules).ok
    plain = compare_bars(ours, venue, start_ms=m, end_ms=2 * m)
    assert [f.field for f in plain.diffs[0].fields] == ["open"]
    wrong = compare_bars(ours, [_kline(0), _kline(m, open="10.4")], start_ms=m, end_ms=2 * m,
                         rules=rules)  # fmt: skip
    assert [(f.field, f.ours, f.venue) for f in wrong.diffs[0].fields] == [("open", "10.5", "10.4")]


def test_fields_a_venue_does_not_report_and_its_omitted_empty_buckets_are_no_difference():
    m = 60_000
    ours = [_bar(0, trade_count=99), _bar(m, status="EMPTY")]
    bare = Kline(open_time_ms=0, open="10", high="12.00", low="9.5", close="11.0", volume="3")
    c = compare_bars(ours, [bare], start_ms=0, end_ms=2 * m, rules=KlineRules(omits_empty=True))
    assert c.ok and c.counts()["compared"] == 1
    strict = compare_bars(ours, [bare], start_ms=0, end_ms=2 * m)
    assert strict.counts()["ours_only"] == 1  # without the rule the EMPTY bar is missing
