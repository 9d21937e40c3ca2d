"""The golden digests do not depend on where the data lives or what runs the tasks.

Every golden case is built, re-built, verified and replayed on each executor (serial, a
process pool, a two-worker Dask LocalCluster on 127.0.0.1) and each storage (a local data
directory, S3 on moto's loopback server with the journals in a local state directory),
and must give exactly the committed golden/digests.json entry: bars, revisions, reasons,
stream digests.
"""

from __future__ import annotations

import json

import pytest

from buff_dataplane.pipeline.executors import executor_session
from golden import check
from golden.make import CASES

EXPECTED = json.loads(check.DIGESTS.read_text())


@pytest.mark.parametrize("storage", ["local", "s3"])
@pytest.mark.parametrize("executor", ["serial", "process", "dask"])
def test_golden_digests_are_identical_on_every_executor_and_storage(executor, storage, request):
    bucket = request.getfixturevalue("s3_bucket") if storage == "s3" else None
    assert sorted(CASES) == sorted(EXPECTED)
    with executor_session(executor, workers=2):  # one pool / cluster for the whole build
        for name in sorted(CASES):
            data = f"s3://{bucket}/golden/{name}" if bucket else None
            target = check.Target(data=data, executor=executor, workers=2)
            assert check.digests_of(name, target) == EXPECTED[name], (name, executor, storage)
    if bucket:  # and it was S3 that held the log and the bars, not a local directory
        import boto3

        pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket)
        keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
        for name in sorted(CASES):
            mine = [k for k in keys if k.startswith(f"golden/{name}/")]
            assert any("/segments/" in k for k in mine)
            assert any(k.endswith("/manifest.json") and "/bars/" in k for k in mine)
            assert any(k.startswith(f"golden/{name}/gaps/") for k in mine) == (
                name in check.LEDGERS
            )
