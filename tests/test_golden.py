"""The golden check itself must be able to fail: a changed digest, an unused entry."""

import json

import pytest

from golden import check


@pytest.fixture
def digests_copy(tmp_path, monkeypatch):
    path = tmp_path / "digests.json"
    path.write_text(check.DIGESTS.read_text())
    monkeypatch.setattr(check, "DIGESTS", path)
    return path


def test_golden_digests_match(digests_copy, capsys):
    assert check.main([]) == 0
    assert "golden-check OK" in capsys.readouterr().out


def test_a_changed_digest_fails_naming_it(digests_copy, capsys):
    data = json.loads(digests_copy.read_text())
    case = sorted(data)[0]
    stream = sorted(data[case]["streams"])[0]
    data[case]["streams"][stream]["payload_digest_chain"] = "0" * 64
    digests_copy.write_text(json.dumps(data))
    assert check.main([]) == 1
    assert f"FAIL /{case}/streams/{stream}/payload_digest_chain" in capsys.readouterr().out


def test_an_unused_entry_fails(digests_copy, capsys):
    data = json.loads(digests_copy.read_text())
    data["no_such_case"] = {}
    digests_copy.write_text(json.dumps(data))
    assert check.main([]) == 1
    assert "'no_such_case' has no golden case (unused)" in capsys.readouterr().out


def test_a_missing_entry_fails(digests_copy, capsys):
    digests_copy.write_text("{}")
    assert check.main([]) == 1
    assert "has no entry in digests.json" in capsys.readouterr().out
