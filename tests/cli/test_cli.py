"""The buff command line: help for every command, exit codes, one-line errors."""

import json
import os
import subprocess
import sys

import pytest
import typer

from buff_dataplane.cli import app, main

from ..storage.conftest import SID, fill


def _commands():
    main(["--help"])  # registers the command modules
    root = typer.main.get_command(app)

    def walk(cmd, path):
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in sorted(subs.items()):
                yield from walk(sub, [*path, name])
        else:
            yield path, cmd

    return list(walk(root, []))


def test_every_command_has_help_text(capsys):
    commands = _commands()
    names = {" ".join(p) for p, _ in commands}
    assert {"import", "verify-log", "log ls", "log show", "log quarantine"} <= names
    for path, cmd in commands:
        assert (cmd.help or "").strip(), f"buff {' '.join(path)} has no help text"
        assert main([*path, "--help"]) == 0
        assert "Usage" in capsys.readouterr().out


def test_console_script_runs_and_maps_errors_to_exit_codes(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "buff_dataplane", "verify-log", "--data", str(tmp_path / "none")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0
    assert out.stderr.startswith("buff: error: data dir") and "does not exist" in out.stderr


def test_unknown_option_is_a_usage_error(capsys):
    assert main(["verify-log", "--frobnicate"]) == 2
    err = capsys.readouterr().err
    assert "No such option" in err and err.count("\n") == 1


def test_verify_log_ok_json_and_tamper(tmp_path, capsys):
    data = tmp_path / "data"
    fill(data, 12)
    assert main(["verify-log", "--data", str(data), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["events"] == 12
    seg = next((data / "log" / SID / "segments").iterdir())
    seg.unlink()
    assert main(["verify-log", "--data", str(data)]) == 1
    out = capsys.readouterr().out
    assert f"FAULT missing_segment: {seg}" in out
    assert "verify-log FAILED (1 faults)" in out


def test_log_ls_and_show(tmp_path, capsys):
    data = tmp_path / "data"
    fill(data, 5)
    assert main(["log", "ls", "--data", str(data), "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)["streams"]
    assert (row["stream_id"], row["events"], row["seq_from"], row["seq_to"]) == (SID, 5, 1, 5)
    assert main(["log", "show", SID, "--data", str(data), "--seq-from", "2", "--limit", "2"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(x["ingest_seq"], x["payload"]) for x in lines] == [(2, "evt-1"), (3, "evt-2")]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["log", "show", "binance-usdm/trade/../x"], "invalid stream_id"),
        (["log", "show", "binance-usdm/trade/btc-usdt"], "invalid symbol"),
        (["log", "show", "btc usdt"], "invalid stream_id"),
        (["log", "show", "binance-usdm/trade/ETH-USDT-PERP"], "no stream"),
        (["log", "quarantine", "--venue", "Bad Venue"], "invalid venue"),
    ],
)
def test_bad_identifiers_are_one_line_exit_2(tmp_path, capsys, argv, message):
    data = tmp_path / "data"
    fill(data, 1)
    assert main([*argv, "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_data_dir_that_is_a_file_is_refused(tmp_path, capsys):
    path = tmp_path / "file"
    path.write_text("x")
    assert main(["verify-log", "--data", str(path)]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_a_foreign_non_empty_dir_is_never_written_into(tmp_path, capsys):
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    capture = tmp_path / "c.ndjson"
    capture.write_text('{"recv_ms": 1723161256000, "raw": "{}"}\n')
    argv = ["import", str(capture), "--venue", "binance-usdm", "--format", "ndjson"]
    assert main([*argv, "--data", str(foreign)]) == 2
    assert "not a buff data directory" in capsys.readouterr().err
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


def test_environment_variable_names_the_data_dir(tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    fill(data, 3)
    monkeypatch.setenv("BUFF_DATA", str(data))
    assert main(["verify-log"]) == 0
    assert "3 events" in capsys.readouterr().out


@pytest.fixture
def unwritable_dir(tmp_path):
    """A directory nobody may write into: chmod for a normal user, chattr +i for root."""
    path = tmp_path / "locked"
    path.mkdir()
    if os.geteuid() != 0:
        os.chmod(path, 0o555)
        yield path
        os.chmod(path, 0o755)
        return
    made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot make an unwritable directory as root here: {made.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_an_unwritable_data_dir_is_refused(tmp_path, capsys, unwritable_dir):
    capture = tmp_path / "c.ndjson"
    capture.write_text('{"recv_ms": 1723161256000, "raw": "{}"}\n')
    argv = ["import", str(capture), "--venue", "binance-usdm", "--format", "ndjson"]
    assert main([*argv, "--data", str(unwritable_dir)]) == 2
    err = capsys.readouterr().err
    assert "is not writable" in err and err.count("\n") == 1
    assert list(unwritable_dir.iterdir()) == []
