"""canonicalize / replay / bars: revisions, late data, verification, bad input."""

import json
import shutil
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from buff_dataplane import open_store
from buff_dataplane.cli import main
from buff_dataplane.core.errors import IncompleteDataError
from golden.make import capture_path

BTC = "binance-usdm/BTC-USDT-PERP/1m"
LATE_BAR = 1723161720000  # 2024-08-09T00:02Z: the golden capture's late trade falls here


@pytest.fixture(params=["reference", "sql"])
def engine(request):
    return request.param


@pytest.fixture
def golden_log(tmp_path):
    data = tmp_path / "data"
    argv = [
        "import",
        str(capture_path("usdm_two_symbols_day_boundary")),
        "--venue",
        "binance-usdm",
        "--format",
        "ndjson",
        "--data",
        str(data),
    ]
    assert main(argv) == 0
    return data


def _canon(data, engine, *extra):
    return main(["canonicalize", "--data", str(data), "--engine", engine, "--json", *extra])


def _json_out(capsys):
    return json.loads(capsys.readouterr().out)


def test_a_second_build_with_nothing_new_writes_nothing(golden_log, engine, capsys):
    assert _canon(golden_log, engine, "--timeframes", "1m,5m") == 0
    first = _json_out(capsys)["artifacts"]
    assert {a["reason"] for a in first} == {"initial"}
    assert _canon(golden_log, engine, "--timeframes", "1m,5m") == 0
    second = _json_out(capsys)["artifacts"]
    assert {a["reason"] for a in second} == {"unchanged"}
    assert [a["content_digest"] for a in first] == [a["content_digest"] for a in second]
    assert open_store(golden_log).revisions("binance-usdm", "BTC-USDT-PERP", "1m") == [1]


def test_late_data_becomes_candidates_then_a_late_data_revision(golden_log, engine, capsys):
    assert _canon(golden_log, engine, "--symbols", "BTC-USDT-PERP") == 0
    [rev1] = _json_out(capsys)["artifacts"]
    assert rev1["late_candidates"] == 1
    late = json.loads((golden_log / "bars" / BTC / "rev-0001" / "late.json").read_text())
    assert [c["open_time_ms"] for c in late] == [LATE_BAR]
    assert _canon(golden_log, engine, "--symbols", "BTC-USDT-PERP", "--apply-late") == 0
    [rev2] = _json_out(capsys)["artifacts"]
    assert (rev2["revision"], rev2["reason"], rev2["late_candidates"]) == (2, "late_data", 0)
    diff = json.loads((golden_log / "bars" / BTC / "rev-0002" / "diff.json").read_text())
    assert [c["open_time_ms"] for c in diff["changed"]] == [LATE_BAR]
    assert diff["added"] == [] and diff["removed"] == []
    assert "trade_count" in diff["changed"][0]["fields"]
    # The next plain build inherits apply_late: nothing is undone.
    assert _canon(golden_log, engine, "--symbols", "BTC-USDT-PERP") == 0
    assert _json_out(capsys)["artifacts"][0]["reason"] == "unchanged"
    store = open_store(golden_log)
    old = store.bars("binance-usdm", "BTC-USDT-PERP", "1m", revision=1, allow_incomplete=True)
    new = store.bars("binance-usdm", "BTC-USDT-PERP", "1m", revision=2, allow_incomplete=True)
    pick = next(r for r in old.to_dicts() if r["open_time_ms"] == LATE_BAR)
    pick2 = next(r for r in new.to_dicts() if r["open_time_ms"] == LATE_BAR)
    assert pick2["trade_count"] > pick["trade_count"]
    assert main(["replay", "--verify", "--data", str(golden_log), "--engine", engine]) == 0
    assert "2/2 revisions match" in capsys.readouterr().out


def _rewrite_segment(data, stream, transform):
    seg_dir = data / "log" / stream / "segments"
    seg = sorted(seg_dir.iterdir())[0]
    seg.chmod(0o644)
    table = transform(pq.read_table(seg))
    pq.write_table(table, seg)
    return seg


def test_replay_names_the_bar_after_a_payload_is_altered(golden_log, engine, capsys, tmp_path):
    assert _canon(golden_log, engine) == 0
    capsys.readouterr()
    copy = tmp_path / "copy"
    shutil.copytree(golden_log, copy)

    def alter(table):
        payloads = table.column("payload_raw").to_pylist()
        row = 100
        payloads[row] = payloads[row].replace(b'"q":"', b'"q":"1', 1)
        idx = table.schema.get_field_index("payload_raw")
        return table.set_column(idx, table.schema.field(idx), pa.array(payloads, pa.binary()))

    _rewrite_segment(copy, "binance-usdm/trade/BTC-USDT-PERP", alter)
    assert (
        main(
            [
                "replay",
                "--verify",
                "--data",
                str(copy),
                "--engine",
                engine,
                "--symbol",
                "BTC-USDT-PERP",
            ]
        )
        == 1
    )
    out = capsys.readouterr().out
    assert "MISMATCH" in out and "input changed" in out
    assert "  bar 2024-08-08T23:5" in out and "volume" in out


def test_replay_names_the_bar_after_an_event_is_removed(golden_log, engine, capsys, tmp_path):
    assert _canon(golden_log, engine) == 0
    capsys.readouterr()
    copy = tmp_path / "copy"
    shutil.copytree(golden_log, copy)
    _rewrite_segment(
        copy,
        "binance-usdm/trade/ETH-USDT-PERP",
        lambda t: pa.concat_tables([t.slice(0, 200), t.slice(201)]),
    )
    assert main(["replay", "--verify", "--data", str(copy), "--engine", engine, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    bad = [i for i in report["items"] if not i["ok"]]
    assert bad and all(i["artifact"].startswith("binance-usdm/ETH-USDT-PERP") for i in bad)
    assert any(d["fields"] for i in bad for d in i["differing_bars"])


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["canonicalize", "--timeframes", "7m"], 2, "unknown timeframe '7m'"),
        (
            ["canonicalize", "--from", "2024-08-09T00:00:00Z", "--to", "2024-08-08T00:00:00Z"],
            2,
            "inverted range",
        ),
        (["canonicalize", "--from", "2024-08-09T00:00:00Z"], 2, "both --from and --to"),
        (["canonicalize", "--venue", "kraken"], 2, "no trade stream"),
        (["canonicalize", "--venue", "no such"], 2, "invalid venue"),
        (["canonicalize", "--symbols", "DOGE-USDT-PERP"], 2, "no trade stream for DOGE-USDT-PERP"),
        (
            [
                "bars",
                "--venue",
                "binance-usdm",
                "--symbol",
                "BTC-USDT-PERP",
                "--timeframe",
                "1m",
                "--revision",
                "9",
            ],
            2,
            "no revision 9",
        ),
        (
            [
                "bars",
                "--venue",
                "binance-usdm",
                "--symbol",
                "BTC-USDT-PERP",
                "--timeframe",
                "1m",
                "--format",
                "xlsx",
            ],
            2,
            "unknown format",
        ),
        (["replay", "--verify", "--timeframe", "2d"], 2, "unknown timeframe"),
        (["replay", "--verify", "--revision", "4"], 2, "no revision 4"),
    ],
)
def test_bad_input_is_one_line_with_its_exit_code(golden_log, capsys, argv, code, message):
    assert _canon(golden_log, "reference") == 0
    capsys.readouterr()
    assert main([*argv, "--data", str(golden_log)]) == code
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_corrupted_revision_manifest_is_an_integrity_error(golden_log, capsys):
    assert _canon(golden_log, "reference") == 0
    capsys.readouterr()
    manifest = golden_log / "bars" / BTC / "rev-0001" / "manifest.json"
    manifest.chmod(0o644)
    manifest.write_text(manifest.read_text()[:50])
    assert (
        main(
            [
                "bars",
                "--venue",
                "binance-usdm",
                "--symbol",
                "BTC-USDT-PERP",
                "--timeframe",
                "1m",
                "--data",
                str(golden_log),
            ]
        )
        == 1
    )
    assert "corrupted manifest" in capsys.readouterr().err


def test_require_complete_refuses_incomplete_ranges(golden_log, capsys):
    assert _canon(golden_log, "reference") == 0
    capsys.readouterr()
    base = [
        "bars",
        "--venue",
        "binance-usdm",
        "--symbol",
        "ETH-USDT-PERP",
        "--timeframe",
        "1m",
        "--data",
        str(golden_log),
    ]
    assert main([*base, "--require-complete"]) == 3
    err = capsys.readouterr().err
    assert "incomplete bars in range" in err and "CONFLICT" in err
    # A range of only COMPLETE/EMPTY bars is served.
    assert (
        main(
            [
                *base,
                "--require-complete",
                "--from",
                "2024-08-08T23:58:00Z",
                "--to",
                "2024-08-09T00:00:00Z",
            ]
        )
        == 0
    )
    with pytest.raises(IncompleteDataError, match="CONFLICT"):
        open_store(golden_log).bars("binance-usdm", "ETH-USDT-PERP", "1m")


def test_output_formats(golden_log, capsys, tmp_path):
    assert _canon(golden_log, "reference") == 0
    capsys.readouterr()
    base = [
        "bars",
        "--venue",
        "binance-usdm",
        "--symbol",
        "BTC-USDT-PERP",
        "--timeframe",
        "1m",
        "--data",
        str(golden_log),
    ]
    assert main([*base, "--format", "binance"]) == 0
    rows = [line.split(",") for line in capsys.readouterr().out.splitlines()]
    assert rows and all(len(r) == 12 for r in rows)
    assert int(rows[0][6]) == int(rows[0][0]) + 59_999
    assert main([*base, "--format", "json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["open_time_ms"] for x in lines] == [int(r[0]) for r in rows]
    assert main([*base, "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("venue,symbol,timeframe")
    out = tmp_path / "bars.parquet"
    assert main([*base, "--format", "parquet", "--out", str(out)]) == 0
    assert pq.read_table(out).num_rows == len(rows)
    df = open_store(golden_log).bars("binance-usdm", "BTC-USDT-PERP", "1m", allow_incomplete=True)
    assert str(df["open"].to_list()[0]).startswith(rows[0][1])
    assert isinstance(df["volume"].to_list()[0], Decimal)
