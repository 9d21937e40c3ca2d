"""BarStore over the storage seam: the same revisions in a local directory and on S3.

Every behavioural test runs on a LocalStore and on an S3Store against moto's server on
127.0.0.1 (in memory: data stays tiny). A revision exists when its manifest.json does;
publishing is put_new file by file with the manifest last (S3) or a temp directory
renamed into place (local), and never rewrites anything.
"""

from __future__ import annotations

import stat
import uuid
from pathlib import Path
from typing import Any

import pytest

from buff_dataplane.cli import main
from buff_dataplane.core.bars import Bar, LateCandidate, content_digest
from buff_dataplane.core.errors import ImmutabilityError
from buff_dataplane.storage.bars_store import ArtifactKey, BarStore, diff_bars
from buff_dataplane.storage.objstore import (
    LocalStore,
    ObjectExists,
    ObjectStore,
    S3Store,
)
from golden.make import capture_path

KEY = ArtifactKey("binance-usdm", "BTC-USDT-PERP", "1m")
T0 = 1_723_161_600_000  # 2024-08-09T00:00Z
FILES = ("bars.parquet", "diff.json", "late.json", "manifest.json")


# -- fixtures: s3_store (an S3Store over a fresh bucket) is tests/storage/conftest.py's,
# on the session's moto server (tests/conftest.py), here under this module's prefix.


@pytest.fixture
def s3_prefix() -> str:
    return "desk/data"


@pytest.fixture(params=["local", "s3"])
def objects(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return LocalStore(tmp_path / "data")
    made: S3Store = request.getfixturevalue("s3_store")
    return made


@pytest.fixture
def bars_store(objects: ObjectStore) -> BarStore:
    return BarStore.over(objects)


# -- helpers -----------------------------------------------------------------------------


def make_bars(n: int, *, price: int = 60_000, key: ArtifactKey = KEY) -> list[Bar]:
    return [
        Bar(
            venue=key.venue,
            symbol=key.symbol,
            timeframe=key.timeframe,
            open_time_ms=T0 + i * 60_000,
            close_time_ms=T0 + i * 60_000 + 59_999,
            open=f"{price + i}.5",
            high=f"{price + i + 1}",
            low=f"{price + i - 1}",
            close=f"{price + i}.25",
            volume="0.010",
            quote_volume=f"{(price + i) / 100}",
            trade_count=2,
            taker_buy_volume="0.004",
            taker_buy_quote_volume="240.1",
            first_trade_id=100 + 2 * i,
            last_trade_id=101 + 2 * i,
            status="OK",
            backfilled=False,
            event_count=2,
            seq_min=1 + 2 * i,
            seq_max=2 + 2 * i,
            segments="00000000000000000001-00000000000000000100.parquet",
            payload_digest=f"{i:064x}",
        )
        for i in range(n)
    ]


LATE = [
    LateCandidate(
        open_time_ms=T0,
        ingest_seq=99,
        trade_id=7,
        ts_exchange_ms=T0 + 5,
        ts_ingest_ms=T0 + 90_000,
        seal_ms=T0 + 60_000,
    )
]


def publish(
    store: BarStore, revision: int, bars: list[Bar], *, parent: list[Bar] | None = None
) -> dict[str, Any]:
    manifest = {
        "revision": revision,
        "parent": revision - 1 or None,
        "reason": "initial" if revision == 1 else "new_data",
        "config": {"apply_late": False},
        "inputs": [],
        "content_digest": content_digest(bars),
    }
    diff = diff_bars(parent or [], bars)
    return store.write_revision(KEY, revision, bars, manifest, diff, LATE)


def encoded(revision: int, bars: list[Bar], tmp: Path) -> dict[str, bytes]:
    """The four files of a revision as write_revision makes them (via a scratch directory)."""
    scratch = BarStore(tmp / f"scratch-{uuid.uuid4().hex[:8]}")
    publish(scratch, revision, bars)
    prefix = scratch.revision_prefix(KEY, revision)
    return {name: scratch.store.get(f"{prefix}/{name}") for name in FILES}


def snapshot(objects: ObjectStore) -> dict[str, bytes]:
    return {k: objects.get(k) for k in objects.list()}


# -- revisions: write, read back, list ---------------------------------------------------


def test_revisions_written_are_read_back_equal(bars_store: BarStore) -> None:
    first, second = make_bars(3), make_bars(5, price=61_000)

    m1 = publish(bars_store, 1, first)
    m2 = publish(bars_store, 2, second, parent=first)

    assert bars_store.revisions(KEY) == [1, 2]
    assert bars_store.artifacts() == [KEY]
    assert bars_store.read_bars(KEY, 1) == first
    assert bars_store.read_bars(KEY, 2) == second
    assert bars_store.read_late(KEY, 2) == LATE
    assert bars_store.manifest(KEY, 1) == m1
    assert bars_store.manifest(KEY, 2)["bars_sha256"] == m2["bars_sha256"]
    assert content_digest(bars_store.read_bars(KEY, 2)) == m2["content_digest"]


def test_latest_is_the_highest_revision_with_a_manifest(bars_store: BarStore, tmp_path) -> None:
    for rev in (1, 2, 3):
        publish(bars_store, rev, make_bars(rev, price=60_000 + rev))
    cut = encoded(4, make_bars(4), tmp_path)
    prefix = bars_store.revision_prefix(KEY, 4)
    for name in FILES[:-1]:  # a publish cut before its manifest
        bars_store.store.put_new(f"{prefix}/{name}", cut[name])

    assert bars_store.revisions(KEY) == [1, 2, 3]
    assert bars_store.latest(KEY) == 3
    assert bars_store.latest(ArtifactKey("binance-usdm", "ETH-USDT-PERP", "1m")) is None


def test_the_same_input_gives_the_same_bytes_on_s3_and_locally(
    s3_store: S3Store, tmp_path: Path
) -> None:
    local, remote = BarStore(tmp_path / "data"), BarStore.over(s3_store)
    bars = make_bars(4)

    assert publish(local, 1, bars) == publish(remote, 1, bars)

    prefix = local.revision_prefix(KEY, 1)
    for name in FILES:
        assert s3_store.get(f"{prefix}/{name}") == local.store.get(f"{prefix}/{name}")
    assert content_digest(remote.read_bars(KEY, 1)) == content_digest(local.read_bars(KEY, 1))


def test_the_local_tree_keeps_its_layout_read_only_and_without_temp_files(tmp_path) -> None:
    root = tmp_path / "data"

    publish(BarStore(root), 1, make_bars(2))

    rev = root / "bars" / "binance-usdm" / "BTC-USDT-PERP" / "1m" / "rev-0001"
    assert sorted(p.name for p in rev.iterdir()) == sorted(FILES)
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o444 for p in rev.iterdir())
    assert [p.name for p in rev.parent.iterdir()] == ["rev-0001"]
    assert BarStore(root).store.list() == [f"bars/{KEY}/rev-0001/{name}" for name in FILES]


# -- crashes and immutability ------------------------------------------------------------


def test_a_publish_cut_before_the_manifest_is_invisible_and_a_republish_completes_it(
    bars_store: BarStore, tmp_path: Path
) -> None:
    bars = make_bars(3)
    files = encoded(1, bars, tmp_path)
    prefix = bars_store.revision_prefix(KEY, 1)
    for name in FILES[:-1]:  # the crash: every file put, the manifest not
        bars_store.store.put_new(f"{prefix}/{name}", files[name])
    assert bars_store.revisions(KEY) == []
    assert bars_store.latest(KEY) is None
    assert bars_store.artifacts() == []

    publish(bars_store, 1, bars)

    assert bars_store.revisions(KEY) == [1]
    assert bars_store.read_bars(KEY, 1) == bars
    assert {k.rsplit("/", 1)[1]: bars_store.store.get(k) for k in bars_store.store.list()} == files


def test_an_unfinished_publish_of_other_bytes_is_refused_and_nothing_changes(
    bars_store: BarStore, tmp_path: Path
) -> None:
    files = encoded(1, make_bars(3), tmp_path)
    prefix = bars_store.revision_prefix(KEY, 1)
    bars_store.store.put_new(f"{prefix}/bars.parquet", files["bars.parquet"])
    before = snapshot(bars_store.store)

    with pytest.raises(ObjectExists, match="unfinished publish"):
        publish(bars_store, 1, make_bars(3, price=70_000))

    assert snapshot(bars_store.store) == before
    assert bars_store.revisions(KEY) == []


def test_a_second_publish_of_a_revision_with_other_bytes_is_refused_and_nothing_changes(
    bars_store: BarStore,
) -> None:
    bars = make_bars(3)
    publish(bars_store, 1, bars)
    before = snapshot(bars_store.store)

    with pytest.raises(ImmutabilityError, match="never rewritten"):
        publish(bars_store, 1, make_bars(3, price=70_000))

    assert snapshot(bars_store.store) == before
    assert bars_store.revisions(KEY) == [1]
    assert bars_store.read_bars(KEY, 1) == bars


def test_an_identical_second_publish_is_an_idempotent_retry(bars_store: BarStore) -> None:
    bars = make_bars(3)
    first = publish(bars_store, 1, bars)
    before = snapshot(bars_store.store)

    assert publish(bars_store, 1, bars) == first

    assert snapshot(bars_store.store) == before


def test_a_stale_local_temp_dir_is_never_a_revision_and_never_blocks_one(tmp_path) -> None:
    store = BarStore(tmp_path / "data")
    publish(store, 1, make_bars(1))
    stale = tmp_path / "data" / "bars" / str(KEY) / ".tmp-rev-0002.999999"
    stale.mkdir()
    (stale / "bars.parquet").write_bytes(b"half a crashed write")

    assert store.revisions(KEY) == [1]
    publish(store, 2, make_bars(2))
    assert store.revisions(KEY) == [1, 2]
    assert store.read_bars(KEY, 2) == make_bars(2)


# -- the real pipeline: canonicalize's bars on S3 equal the local ones --------------------


def test_canonical_bars_published_to_s3_equal_the_local_ones(
    s3_bucket: str, tmp_path: Path, capsys
) -> None:
    """The golden capture imported and built twice, by the same commands: into a local
    data directory and into ``s3://`` (moto); the published bars are the same bytes."""
    from buff_dataplane.storage.objstore import store_for

    src = str(capture_path("usdm_two_symbols_day_boundary"))
    url = f"s3://{s3_bucket}/desk"
    for data, extra in ((str(tmp_path / "data"), []), (url, ["--state-dir", str(tmp_path / "st")])):
        imp = ["import", src, "--venue", "binance-usdm", "--format", "ndjson", "--data", data]
        assert main([*imp, *extra]) == 0
        canon = ["canonicalize", "--data", data, "--symbols", "BTC-USDT-PERP",
                 "--timeframes", "1m,5m", "--json"]  # fmt: skip
        assert main(canon) == 0
        assert main([*canon, "--apply-late"]) == 0  # a second revision of 1m (late_data)
    capsys.readouterr()
    local = BarStore(tmp_path / "data")
    s3_store = store_for(url)
    remote = BarStore.over(s3_store)

    assert remote.artifacts() == local.artifacts()
    keys = local.store.list("bars")
    assert len(keys) == 3 * len(FILES)  # 1m rev-0001, rev-0002; 5m rev-0001
    assert s3_store.list("bars") == keys
    assert all(s3_store.get(k) == local.store.get(k) for k in keys)
    key = ArtifactKey("binance-usdm", "BTC-USDT-PERP", "1m")
    assert remote.revisions(key) == local.revisions(key) == [1, 2]
    for rev in (1, 2):
        bars = remote.read_bars(key, rev)
        assert bars == local.read_bars(key, rev)
        assert content_digest(bars) == local.manifest(key, rev)["content_digest"]
