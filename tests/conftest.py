"""Fixtures shared by every test package."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def real_fixtures() -> Path:
    """Real recorded exchange traffic: ``$BUFF_REAL_FIXTURES``, else ``../shared/fixtures/real``.

    Absent, the test is skipped with a message naming the path; under
    ``BUFF_REQUIRE_REAL_FIXTURES=1`` (set by ``.ci/run``) it fails instead.
    """
    default = REPO_ROOT / ".." / "shared" / "fixtures" / "real"
    path = Path(os.environ.get("BUFF_REAL_FIXTURES", default)).resolve()
    if not path.is_dir():
        if os.environ.get("BUFF_REQUIRE_REAL_FIXTURES") == "1":
            pytest.fail(f"real fixtures not found at {path} (BUFF_REQUIRE_REAL_FIXTURES=1)")
        pytest.skip(f"real fixtures not found at {path}")
    return path
