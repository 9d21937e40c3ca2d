"""One ``buff capture`` process recording several venues at once, each with its own
connections, holes, back-fill and status file; and the ways a venue list is refused."""

from __future__ import annotations

import json

import pytest

from buff_dataplane.cli import main
from buff_dataplane.pipeline.capture import status_paths
from buff_dataplane.sim.background import SimThread
from buff_dataplane.sim.server import SimConfig
from buff_dataplane.storage.gap_ledger import GapLedger
from buff_dataplane.storage.log import open_log
from buff_dataplane.storage.quarantine import read_quarantine


def _config(path, usdm, spot):
    path.write_text(
        f"""
[[venue]]
name = "binance-usdm"
symbols = ["BTC-USDT-PERP"]
channels = ["trade", "book_ticker"]
endpoint = "{usdm.ws_url}"
rest_endpoint = "{usdm.rest_url}"

[[venue]]
name = "binance-spot"
symbols = ["BTC-USDT"]
endpoint = "{spot.ws_url}"
rest_endpoint = "{spot.rest_url}"
"""
    )
    return path


def test_one_process_records_two_venues_each_with_its_own_faults_and_repairs(tmp_path, capsys):
    data = tmp_path / "d"
    usdm_cfg = SimConfig(venue="binance-usdm", rate=40.0, faults="drop:10@30,close:1006@80")
    spot_cfg = SimConfig(venue="binance-spot", rate=40.0, faults="malformed@20")
    with SimThread(usdm_cfg) as usdm, SimThread(spot_cfg) as spot:
        config = _config(tmp_path / "capture.toml", usdm, spot)
        argv = ["capture", "--config", str(config), "--data", str(data), "--duration", "3.5"]
        assert main([*argv, "--json"]) == 0
        summary = json.loads(capsys.readouterr().out)

    by_venue = {v["venue"]: v for v in summary["venues"]}
    assert sorted(by_venue) == ["binance-spot", "binance-usdm"]
    # The USD-M socket dropped once and skipped 10 trades; spot had one bad frame.
    assert by_venue["binance-usdm"]["reconnects"] == 1
    assert by_venue["binance-usdm"]["gaps"]["backfilled"] >= 1
    assert by_venue["binance-spot"]["reconnects"] == 0
    assert by_venue["binance-spot"]["quarantined"] == {"not_json": 1}
    assert summary["messages"] == sum(v["messages"] for v in summary["venues"])
    [bad] = list(read_quarantine(data / "quarantine"))
    assert bad.venue == "binance-spot"

    with open_log(data, readonly=True) as log:
        streams = sorted(str(s) for s in log.stream_ids())
    assert main(["verify-log", "--data", str(data)]) == 0
    capsys.readouterr()
    assert streams == [
        "binance-spot/control/BTC-USDT",
        "binance-spot/trade/BTC-USDT",
        "binance-usdm/book_ticker/BTC-USDT-PERP",
        "binance-usdm/control/BTC-USDT-PERP",
        "binance-usdm/trade/BTC-USDT-PERP",
    ]
    gaps = GapLedger(data).rows()
    assert {g.stream_id for g in gaps} == {"binance-usdm/trade/BTC-USDT-PERP"}
    names = [p.name for p in status_paths(data)]
    assert names == ["capture-binance-spot.json", "capture-binance-usdm.json"]
    assert main(["status", "--data", str(data), "--json"]) == 0
    captures = json.loads(capsys.readouterr().out)["captures"]
    assert [c["venue"] for c in captures] == ["binance-spot", "binance-usdm"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--venue", "binance-usdm", "--venue", "binance-spot", "--symbols", "BTC-USDT-PERP"],
         "2 --venue but 1 --symbols"),
        (["--venue", "binance-usdm", "--symbols", "BTC-USDT-PERP", "--venue", "binance-usdm",
          "--symbols", "ETH-USDT-PERP"], "listed twice"),
        (["--venue", "binance-usdm", "--symbols", "BTC-USDT-PERP", "--venue", "binance-spot",
          "--symbols", "BTC-USDT", "--endpoint", "ws://127.0.0.1:9"], "--config file"),
        ([], "give --venue"),
    ],
)  # fmt: skip
def test_a_venue_list_that_does_not_add_up_is_exit_2(tmp_path, capsys, argv, message):
    assert main(["capture", *argv, "--data", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[venue]]\nname = 'binance-usdm'\n", "'symbols' must be a non-empty list"),
        ("[[venue]]\nname = 'binance-usdm'\nsymbols = ['BTC-USDT-PERP']\nport = 1\n",
         "unknown key 'port'"),
        ("venues = 1\n", "unknown key 'venues'"),
        ("[[venue]\n", "not valid TOML"),
        ("[[venue]]\nname = 'nasdaq'\nsymbols = ['BTC-USDT']\n", "unknown venue"),
    ],
)  # fmt: skip
def test_a_bad_capture_config_is_exit_2_naming_the_problem(tmp_path, capsys, text, message):
    path = tmp_path / "capture.toml"
    path.write_text(text)
    assert main(["capture", "--config", str(path), "--data", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "d").exists()
