"""verify catches a deleted version and a changed object."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from backup_my_bucket.catalog import LocalCatalog
from backup_my_bucket.clock import ManualClock
from backup_my_bucket.engine.diff import aiter_sync
from backup_my_bucket.engine.snapshot import take_snapshot
from backup_my_bucket.engine.verify import verify_versions
from backup_my_bucket.model import S3Url, VersionRef
from backup_my_bucket.storage.memory import MemoryStore
from backup_my_bucket.storage.protocol import ObjectStore

from ..conftest import BucketFactory, writes_settled


async def _snapshot(store: ObjectStore, bucket: str, tmp_path: Path) -> tuple[LocalCatalog, object]:
    await writes_settled(store, bucket)
    clock = ManualClock(datetime.now(UTC) + timedelta(seconds=5))
    catalog = LocalCatalog(tmp_path / bucket, clock)
    meta = await take_snapshot(store, S3Url(bucket), catalog, clock, workers=4)
    return catalog, meta


async def test_verify_finds_a_deleted_version(
    store: ObjectStore, make_bucket: BucketFactory, tmp_path: Path
) -> None:
    bucket = await make_bucket()
    ids = {k: await store.put(bucket, k, k.encode() * 3) for k in ["a", "b/c", "d e"]}
    catalog, meta = await _snapshot(store, bucket, tmp_path)
    rows = list((await catalog.open_index(meta)).rows())  # type: ignore[arg-type]
    clean = await verify_versions(store, S3Url(bucket), aiter_sync(rows), read_share=1.0)
    assert clean.checked == 3 and clean.problems == [] and clean.read == 3

    await store.delete_versions(bucket, [VersionRef(bucket, "b/c", ids["b/c"])])
    found = await verify_versions(store, S3Url(bucket), aiter_sync(rows))
    assert found.missing == 1 and found.mismatched == 0
    assert [(p.key, p.problem) for p in found.problems] == [("b/c", "missing")]


async def test_verify_finds_changed_bytes_and_a_changed_record(tmp_path: Path) -> None:
    store = MemoryStore()
    await store.create_bucket("b")
    await store.set_versioning("b", True)
    for key in ["x", "y", "z"]:
        await store.put("b", key, b"original " + key.encode())
    catalog, meta = await _snapshot(store, "b", tmp_path)
    rows = list((await catalog.open_index(meta)).rows())  # type: ignore[arg-type]
    store._buckets["b"].versions["y"][0].data = b"original Y"  # same size, other bytes
    found = await verify_versions(store, S3Url("b"), aiter_sync(rows), read_share=1.0)
    assert [(p.key, p.problem) for p in found.problems] == [("y", "content")]
    assert (await verify_versions(store, S3Url("b"), aiter_sync(rows), read_share=0)).problems == []
    store._buckets["b"].versions["z"][0].etag = "0" * 32  # the server reports another object
    found = await verify_versions(store, S3Url("b"), aiter_sync(rows))
    assert [(p.key, p.problem) for p in found.problems] == [("z", "etag")]


def test_the_sample_rotates() -> None:
    from backup_my_bucket.engine.verify import sampled
    from backup_my_bucket.model import ObjectVersion

    versions = [
        ObjectVersion(f"k{i}", f"v{i}", datetime(2026, 1, 1, tzinfo=UTC)) for i in range(2000)
    ]
    first = {v.key for v in versions if sampled(v, 0.1, "run1")}
    second = {v.key for v in versions if sampled(v, 0.1, "run2")}
    assert 120 < len(first) < 280 and first != second
