from __future__ import annotations

import pytest

from buff_dataplane.core.config import LogConfig
from buff_dataplane.storage.log import open_log
from buff_dataplane.storage.objstore import S3Store

T0 = 1_723_161_256_000  # 2024-08-08T23:54:16Z
SID = "binance-usdm/trade/BTC-USDT-PERP"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


@pytest.fixture
def small_config():
    return LogConfig(group_commit_events=4, segment_max_events=10, fsync=False)


# -- S3 (moto on loopback; the server, client and buckets are tests/conftest.py's) ----------


@pytest.fixture(scope="session")
def s3(s3_client):
    """The session's explicitly configured boto3 client, by its short name."""
    return s3_client


@pytest.fixture
def s3_prefix() -> str:
    """The key prefix ``s3_store`` writes under; a module overrides it to use another."""
    return "desk"


@pytest.fixture
def s3_store(s3, bucket: str, s3_prefix: str) -> S3Store:
    """An S3Store over a fresh bucket, under ``s3_prefix``."""
    return S3Store(bucket, s3_prefix, s3)


@pytest.fixture
def store(s3_store: S3Store) -> S3Store:
    """The store an S3-only module's tests take (test_objstore.py has its own, both kinds)."""
    return s3_store


def fill(data_dir, n, *, config=None, stream=SID, start=0):
    """Append n events with payloads b'evt-<i>' and seal; return the seqs assigned."""
    with open_log(data_dir, config or LogConfig(fsync=False)) as log:
        w = log.writer(stream)
        return [w.append(b"evt-%d" % i, T0 + i, T0 + 100 + i) for i in range(start, start + n)]
