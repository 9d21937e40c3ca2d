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


# -- S3 on loopback: moto's server, as every S3 test uses it --------------------------------
#
# One server for the whole session, shared by every S3 test: each test takes a bucket of its
# own (a uuid name), so nothing one test writes is seen by another.


@pytest.fixture(scope="session")
def moto_endpoint():
    """One moto S3 server on 127.0.0.1 for the session (it holds objects in memory)."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(monkeypatch, tmp_path, moto_endpoint) -> str:
    """Hermetic AWS_* settings pointing at moto; no config files, no instance metadata.

    What a ``buff`` command's ``store_for``, and the processes and Dask workers it starts,
    read by configuration only. Returns the endpoint.
    """
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL_S3",
        "AWS_REGION",
        "AWS_MAX_ATTEMPTS",
        "AWS_RETRY_MODE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    return moto_endpoint


@pytest.fixture(scope="session")
def s3_client(moto_endpoint):
    """One boto3 client for the session, configured explicitly rather than from the
    environment (``store_for`` has its own tests)."""
    import boto3

    from buff_dataplane.storage.objstore import _client_config

    return boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
        config=_client_config(),
    )


@pytest.fixture
def bucket(s3_client) -> str:
    """A fresh, empty bucket on the shared moto server; the environment is left alone."""
    import uuid

    name = f"t-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_bucket(aws_env, bucket) -> str:
    """A fresh bucket, with the AWS_* environment pointing at moto (so a ``buff`` command,
    and the processes and Dask workers it starts, reach it by configuration only)."""
    return bucket
