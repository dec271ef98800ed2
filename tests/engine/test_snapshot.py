"""Snapshots are consistent cuts: the state at T equals a trivially correct model."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backup_my_bucket.catalog import LocalCatalog
from backup_my_bucket.clock import SYSTEM_CLOCK, ManualClock
from backup_my_bucket.engine.cut import wait_past
from backup_my_bucket.engine.snapshot import take_snapshot
from backup_my_bucket.errors import UsageError, VersioningNotEnabled
from backup_my_bucket.model import S3Url
from backup_my_bucket.storage.iterate import iter_versions
from backup_my_bucket.storage.memory import MemoryStore
from backup_my_bucket.storage.protocol import ObjectStore

from .. import figures
from ..conftest import BucketFactory, unique_bucket

KEYS = ["a", "b/1", "b/2", "c d", "\u00e9t\u00e9", "z/z/z"]


@dataclass(frozen=True)
class Op:
    key: str
    data: bytes | None  # None: delete


async def apply(store: ObjectStore, bucket: str, prefix: str, op: Op) -> datetime:
    """Run one write; return the LastModified S3 gave it (from the listing)."""
    if op.data is None:
        version_id = await store.delete(bucket, prefix + op.key)
    else:
        version_id = await store.put(bucket, prefix + op.key, op.data)
    async for v in iter_versions(store, bucket, prefix=prefix + op.key):
        if v.key == prefix + op.key and v.version_id == version_id:
            return v.last_modified
    raise AssertionError("the write is not listed")


def model_at(history: list[tuple[datetime, Op]], at: datetime) -> dict[str, bytes]:
    """Trivially correct: replay every write stamped at or before ``at``, in order."""
    state: dict[str, bytes] = {}
    for stamp, op in history:
        if stamp <= at:
            if op.data is None:
                state.pop(op.key, None)
            else:
                state[op.key] = op.data
    return state


async def snapshot_state(
    store: ObjectStore, catalog: LocalCatalog, backup: S3Url, clock: object, at: datetime
) -> dict[str, bytes]:
    meta = await take_snapshot(store, backup, catalog, clock, at=at, workers=4)  # type: ignore[arg-type]
    reader = await catalog.open_index(meta)
    state = {}
    for v in reader.rows():
        data = b"".join(
            [c async for c in store.get(backup.bucket, backup.prefix + v.key, v.version_id)]
        )
        state[v.key] = data
    assert meta.keys == len(state)
    assert meta.total_bytes == sum(len(d) for d in state.values())
    return state


async def check_snapshot(
    store: ObjectStore,
    catalog: LocalCatalog,
    backup: S3Url,
    clock: ManualClock,
    at: datetime,
    history: list[tuple[datetime, Op]],
) -> None:
    state, want = await snapshot_state(store, catalog, backup, clock, at), model_at(history, at)
    figures.objects(want, state, what="snapshot of a random history")
    assert state == want


ops_strategy = st.lists(
    st.tuples(
        st.sampled_from(KEYS),
        st.one_of(st.none(), st.binary(max_size=8)),
        st.integers(min_value=0, max_value=2),  # seconds to wait before the op
    ),
    min_size=1,
    max_size=25,
)


async def run_history(
    store: ObjectStore,
    bucket: str,
    prefix: str,
    ops: list[tuple[str, bytes | None, int]],
    clock: ManualClock | None,
) -> list[tuple[datetime, Op]]:
    history = []
    for key, data, wait in ops:
        if clock is not None:
            clock.advance(timedelta(seconds=wait))
        op = Op(key, data)
        history.append((await apply(store, bucket, prefix, op), op))
    return history


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=ops_strategy, prefix=st.sampled_from(["", "pre/"]))
async def test_snapshot_equals_model_on_memory(
    ops: list[tuple[str, bytes | None, int]], prefix: str, tmp_path: Path
) -> None:
    figures.history("snapshot")
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    store = MemoryStore(clock)
    await store.create_bucket("bkp")
    await store.set_versioning("bkp", True)
    if prefix:  # a key outside the backup prefix must never appear
        await store.put("bkp", "other/outside", b"not backed up")
    history = await run_history(store, "bkp", prefix, ops, clock)
    catalog = LocalCatalog(tmp_path / f"cat-{id(ops)}", clock)
    stamps = sorted({t for t, _ in history})
    probes = {stamps[0] - timedelta(seconds=1), *stamps, stamps[-1] + timedelta(seconds=5)}
    clock.advance(timedelta(seconds=10))
    backup = S3Url("bkp", prefix)
    for at in sorted(probes):
        await check_snapshot(store, catalog, backup, clock, at, history)


@pytest.mark.s3
@settings(
    max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=ops_strategy.map(lambda ops: ops[:12]))
async def test_snapshot_equals_model_on_seaweedfs(
    ops: list[tuple[str, bytes | None, int]], s3_store: ObjectStore, tmp_path: Path
) -> None:
    figures.history("snapshot")
    bucket = unique_bucket("snap")
    await s3_store.create_bucket(bucket)
    await s3_store.set_versioning(bucket, True)
    history = []
    for key, data, wait in ops:
        if wait == 2:
            await asyncio.sleep(1.05)  # some writes in later seconds, most in the same one
        op = Op(key, data)
        history.append((await apply(s3_store, bucket, "", op), op))
    last = max(t for t, _ in history)
    # every `at` below must have ended on the server's clock, which cuts every snapshot
    await wait_past(s3_store, bucket, SYSTEM_CLOCK, last + timedelta(seconds=1))
    clock = ManualClock(last + timedelta(seconds=3))
    catalog = LocalCatalog(tmp_path / f"cat-{bucket}", clock)
    for at in sorted({t for t, _ in history} | {last + timedelta(seconds=1)}):
        await check_snapshot(s3_store, catalog, S3Url(bucket), clock, at, history)


async def test_writes_during_the_listing_are_not_in_the_snapshot(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2026, 1, 1, 12, 0, 0, 500_000, tzinfo=UTC))
    store = MemoryStore(clock)
    await store.create_bucket("b")
    await store.set_versioning("b", True)
    for i in range(50):
        await store.put("b", f"k{i:03d}", b"before")
    clock.advance(timedelta(seconds=2))
    original = store.list_versions_page

    async def racing_page(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        await store.put("b", "k010", b"during")  # a writer keeps going while we list
        await store.delete("b", "k020")
        return await original(*args, **kwargs)  # type: ignore[arg-type]

    store.list_versions_page = racing_page  # type: ignore[method-assign]
    catalog = LocalCatalog(tmp_path / "cat", clock)
    meta = await take_snapshot(store, S3Url("b"), catalog, clock, workers=8)
    assert meta.at == datetime(2026, 1, 1, 12, 0, 1, tzinfo=UTC)  # last whole second passed
    rows = list((await catalog.open_index(meta)).rows())
    assert len(rows) == 50
    assert all(r.size == len(b"before") for r in rows)


async def test_snapshot_refuses_unversioned_backup_and_future(
    store: ObjectStore, make_bucket: BucketFactory, tmp_path: Path
) -> None:
    bucket = await make_bucket(versioned=False)
    clock = ManualClock(datetime(2030, 1, 1, tzinfo=UTC))
    catalog = LocalCatalog(tmp_path / "c", clock)
    with pytest.raises(VersioningNotEnabled):
        await take_snapshot(store, S3Url(bucket), catalog, clock)
    with pytest.raises(UsageError, match="future"):
        await take_snapshot(
            store, S3Url(bucket), catalog, clock, at=datetime(2031, 1, 1, tzinfo=UTC)
        )
    assert await catalog.list() == []


@pytest.mark.parametrize("prefix", ["", "site/"])
async def test_the_reserved_folder_is_never_snapshotted(tmp_path: Path, prefix: str) -> None:
    """The location's .backup-my-bucket/ (its catalog and records) is not backed-up data;
    neighbours that only share a prefix with it are."""
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    store = MemoryStore(clock)
    await store.create_bucket("b")
    await store.set_versioning("b", True)
    data = ["data/x", ".backup-my-bucket", ".backup-my-bucket-x/y", ".backup-my-bucketz"]
    for key in [*data, ".backup-my-bucket/catalog/snapshots/old.json", ".backup-my-bucket/h"]:
        await store.put("b", prefix + key, b"1")
    clock.advance(timedelta(seconds=5))
    catalog = LocalCatalog(tmp_path / "c", clock)
    meta = await take_snapshot(store, S3Url("b", prefix), catalog, clock)
    rows = (await catalog.open_index(meta)).rows()
    assert [v.key for v in rows] == sorted(data)
