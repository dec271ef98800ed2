"""gc against a real S3 server (SeaweedFS) and the fake: counts, bytes, byte-exact restores."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backup_my_bucket.catalog import LockInfo, S3Catalog
from backup_my_bucket.catalog.location import default_catalog_url
from backup_my_bucket.clock import ManualClock
from backup_my_bucket.engine.gc import run_gc
from backup_my_bucket.engine.retention import RetentionPolicy, SnapshotRef
from backup_my_bucket.engine.versions import histories
from backup_my_bucket.errors import ItemFailure, Locked
from backup_my_bucket.model import S3Url, VersionRef
from backup_my_bucket.storage.iterate import iter_versions
from backup_my_bucket.storage.memory import MemoryStore
from backup_my_bucket.storage.protocol import ObjectStore
from tests.conftest import BucketFactory, is_data


async def snapshot_now(store: ObjectStore, bucket: str, name: str) -> SnapshotRef:
    """A restoration point at the newest write, then wait so later writes get a later second."""
    entries = [v async for v in iter_versions(store, bucket)]
    ref = SnapshotRef(name, max(v.last_modified for v in entries))
    await asyncio.sleep(1.1)  # S3 stamps whole seconds
    return ref


async def restore_view(store: ObjectStore, bucket: str, ref: SnapshotRef) -> dict[str, bytes]:
    state = {}
    async for history in histories(iter_versions(store, bucket)):
        live = history.live_at(ref.at)
        if live is not None:
            state[live.key] = b"".join(
                [c async for c in store.get(bucket, live.key, live.version_id)]
            )
    return state


async def gc(
    store: ObjectStore, bucket: str, snapshots: Sequence[SnapshotRef], keep_last: int
) -> tuple[list[str], int, int]:
    removed: list[str] = []

    async def remove(ids: Sequence[str]) -> None:
        removed.extend(ids)

    now = max(s.at for s in snapshots) + timedelta(minutes=1)
    policy = RetentionPolicy(keep_last=keep_last)
    result = await run_gc(store, bucket, "", snapshots, policy, now, remove_snapshots=remove)
    assert result.to_json()["snapshots_removed"] == removed
    return removed, result.versions_deleted, result.bytes_freed


async def test_gc_frees_only_what_removed_snapshots_needed(
    store: ObjectStore, make_bucket: BucketFactory
) -> None:
    bucket = await make_bucket("gc")
    data = {name: name.encode() * (100 * (i + 1)) for i, name in enumerate(
        ["a1", "b1", "c1", "a2", "a3", "c2"])}  # fmt: skip
    for name in ("a1", "b1", "c1"):
        await store.put(bucket, name[0], data[name])
    s1 = await snapshot_now(store, bucket, "s1")
    await store.put(bucket, "a", data["a2"])
    await store.delete(bucket, "b")
    s2 = await snapshot_now(store, bucket, "s2")
    await store.put(bucket, "a", data["a3"])
    await store.put(bucket, "c", data["c2"])
    s3 = await snapshot_now(store, bucket, "s3")
    s2_state = {"a": data["a2"], "c": data["c1"]}
    s3_state = {"a": data["a3"], "c": data["c2"]}
    assert await restore_view(store, bucket, s1) == {k[0]: data[k] for k in ("a1", "b1", "c1")}

    # keep s2 and s3: only a1 and b1 were needed by s1 alone (c1 is still live at s2)
    assert await gc(store, bucket, [s1, s2, s3], 2) == (
        ["s1"], 2, len(data["a1"]) + len(data["b1"])
    )  # fmt: skip
    assert await restore_view(store, bucket, s2) == s2_state
    assert await restore_view(store, bucket, s3) == s3_state

    # keep s3: a2 and c1 go; b's delete marker is current and stays
    assert await gc(store, bucket, [s2, s3], 1) == (["s2"], 2, len(data["a2"]) + len(data["c1"]))
    assert await restore_view(store, bucket, s3) == s3_state
    left = [v async for v in iter_versions(store, bucket)]
    assert [(v.key, v.is_delete_marker) for v in left] == [("a", False), ("b", True), ("c", False)]

    assert await gc(store, bucket, [s3], 1) == ([], 0, 0)  # a second gc deletes nothing


class StealsTheLock(MemoryStore):
    """Another process takes the catalog lock while gc's first batch of deletions runs."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__(clock)
        self.batches = 0
        self.catalog: S3Catalog | None = None

    async def delete_versions(self, bucket: str, refs: Sequence[VersionRef]) -> list[ItemFailure]:
        if self.catalog is None:  # not armed yet (the lock's probe of conditional writes)
            return await super().delete_versions(bucket, refs)
        self.batches += 1
        if self.batches == 1:
            thief = LockInfo.new("gc", self.clock.now(), timedelta(hours=1))
            await self.put(bucket, self.catalog._key("lock.json"), thief.dumps())
        return await super().delete_versions(bucket, refs)


async def test_gc_that_loses_its_lock_stops_before_its_next_batch(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    store = StealsTheLock(clock)
    await store.create_bucket("bak")
    await store.set_versioning("bak", True)
    for round_ in range(3):  # 2 x 1,200 versions no restoration point needs
        for i in range(1200):
            await store.put("bak", f"k{i:04d}", f"{round_}".encode())
        clock.advance(timedelta(seconds=10))
    catalog = S3Catalog(store, default_catalog_url(S3Url("bak")), tmp_path, clock)
    now = clock.now()
    async with catalog.lock("gc") as lease:
        store.catalog = catalog
        with pytest.raises(Locked) as info:
            await run_gc(
                store, "bak", "", [SnapshotRef("s", now)], RetentionPolicy(keep_last=1), now,
                remove_snapshots=catalog.remove, workers=1, guard=lease.check,
            )  # fmt: skip
    assert "lost the catalog lock" in info.value.message and "next batch" in info.value.message
    left = [v async for v in iter_versions(store, "bak") if is_data(v.key)]
    assert len(left) == 3600 - 1000  # exactly one batch was deleted, then it stopped
    assert store.batches == 1
