"""A sync's listing of the backup, published as `backup`'s snapshot when the sync wrote
nothing (engine/snapshot.py, ListedState; docs/design.md rule 8): it must be the very index a
fresh snapshot at the same T writes, and it must never be published over a gc that pruned T."""

from __future__ import annotations

import errno
import json
import os
import random
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from backup_my_bucket.catalog import LocalCatalog
from backup_my_bucket.catalog.history import note_gc
from backup_my_bucket.catalog.index import IndexWriter
from backup_my_bucket.catalog.location import record_key
from backup_my_bucket.clock import SYSTEM_CLOCK, Clock, ManualClock
from backup_my_bucket.engine.snapshot import ListedState, publish_listed, take_snapshot
from backup_my_bucket.engine.sync import SyncOptions, sync
from backup_my_bucket.errors import StorageError
from backup_my_bucket.model import ObjectVersion, S3Url, Versioning
from backup_my_bucket.storage.memory import MemoryStore
from backup_my_bucket.storage.protocol import ObjectStore
from backup_my_bucket.storage.scratch import scratch_prefix
from backup_my_bucket.units import format_time

from ..conftest import BucketFactory
from .test_sync import ODD_KEYS, T0, MiB, settle, ticking

# folders beside files that share their prefix, at two depths, and odd names
KEYS = [
    "img0/a", "img0/b/c", "img0-b", "img0.idx", "img0 c", "img0/b-d", "img0/b.e",
    *ODD_KEYS,
]  # fmt: skip


def clock_of(store: ObjectStore) -> Clock:
    """The clock the store stamps with: a snapshot's T is read from it."""
    return store.clock if isinstance(store, MemoryStore) else SYSTEM_CLOCK


async def rows(catalog: LocalCatalog, snapshot_id: str) -> list[ObjectVersion]:
    meta = next(m for m in await catalog.list() if m.id == snapshot_id)
    return list((await catalog.open_index(meta)).rows())


async def backed_up(store: ObjectStore, make_bucket: BucketFactory) -> tuple[S3Url, S3Url]:
    """An unversioned source synced into a folder of a versioned backup, then one key
    deleted and synced again: the backup's newest entry is a delete marker."""
    ticking(store)
    src, bak = await make_bucket("lsrc", versioned=False), await make_bucket("lbak")
    for key in KEYS:
        await store.put(src, key, b"" if key == "empty-object" else key.encode())
    await store.put(src, "big/six", random.Random(5).randbytes(6 * MiB))
    source, backup = S3Url(src), S3Url(bak, "in/")
    await settle(store)
    assert (
        await sync(store, source, store, backup, SyncOptions(workers=8), clock=clock_of(store))
    ).failures == ()
    await store.delete(src, "img0-b")
    await settle(store)
    assert (
        await sync(store, source, store, backup, SyncOptions(), clock=clock_of(store))
    ).deleted == 1
    await settle(store)
    return source, backup


async def no_op_sync(
    store: ObjectStore, source: S3Url, backup: S3Url, clock: Clock, listed: ListedState
) -> None:
    result = await sync(store, source, store, backup, SyncOptions(), clock=clock, listed=listed)
    assert (result.copied, result.deleted, result.failed) == (0, 0, 0)
    assert listed.usable(result.held_at) and listed.cut is not None


async def test_a_no_op_sync_lists_the_snapshot_a_fresh_listing_takes(
    store: ObjectStore, make_bucket: BucketFactory, tmp_path: Path
) -> None:
    source, backup = await backed_up(store, make_bucket)
    clock = clock_of(store)
    catalog = LocalCatalog(tmp_path / "catalog", clock)
    with ListedState(clock) as listed:
        await no_op_sync(store, source, backup, clock, listed)
        meta = await publish_listed(store, backup, catalog, listed, source=source, tags=["t"])
    assert meta is not None and meta.at == listed.cut and meta.tags == ("t",)
    assert meta.keys == len(KEYS)  # one key deleted, "big/six" added
    fresh = await take_snapshot(store, backup, catalog, clock, at=meta.at, workers=4)
    assert await rows(catalog, meta.id) == await rows(catalog, fresh.id)
    assert (meta.keys, meta.total_bytes) == (fresh.keys, fresh.total_bytes)
    assert "img0-b" not in {row.key for row in await rows(catalog, meta.id)}


async def test_a_sync_that_writes_keeps_nothing(
    store: ObjectStore, make_bucket: BucketFactory, tmp_path: Path
) -> None:
    source, backup = await backed_up(store, make_bucket)
    await store.put(source.bucket, "img0/new", b"new")
    await settle(store)
    # a killed process's recording, left in the temporary directory: swept
    stale = Path(
        tempfile.mkdtemp(prefix=scratch_prefix("snapshot").replace(f"-{os.getpid()}-", "-999999-"))
    )
    clock = clock_of(store)
    with ListedState(clock) as listed:
        result = await sync(store, source, store, backup, SyncOptions(), clock=clock, listed=listed)
        assert result.copied == 1
        assert not listed.usable(result.held_at) and not listed.complete
        assert listed._work is None  # the recording and its scratch directory are gone
    assert not stale.exists()


async def test_a_listing_that_shows_a_write_after_its_cut_is_not_the_state_at_it(
    tmp_path: Path,
) -> None:
    """Another writer's entry stamped after T: the current versions are not the state at T."""
    store = _DateFrozen(clock=ManualClock(T0, tick=timedelta(seconds=1)))
    for bucket in ("src", "bak"):
        await store.create_bucket(bucket)
    await store.set_versioning("bak", True)
    await store.put("src", "k", b"k")
    await sync(store, S3Url("src"), store, S3Url("bak"), SyncOptions())
    assert isinstance(store.clock, ManualClock)
    store.clock.advance(timedelta(hours=1))
    await store.put("bak", "k", b"k")  # the same bytes, newer: the sync skips it
    store.frozen = T0 + timedelta(minutes=1)  # T is taken before that write, as in a race
    with ListedState(store.clock) as listed:
        result = await sync(store, S3Url("src"), store, S3Url("bak"), SyncOptions(), listed=listed)
        assert (result.copied, result.deleted, result.skipped) == (0, 0, 1)
        assert listed.cut == store.frozen - timedelta(seconds=1)
        assert listed.complete and not listed.usable(result.held_at)


class _DateFrozen(MemoryStore):
    """A server whose Date is read as ``frozen`` (once set): the cut comes before writes
    the listing then shows, as when another writer races it."""

    frozen: datetime | None = None

    async def server_time(self, bucket: str) -> datetime | None:
        return self.frozen or await super().server_time(bucket)


async def test_a_gc_since_the_listing_began_is_never_published_over(
    store: ObjectStore, make_bucket: BucketFactory, tmp_path: Path
) -> None:
    source, backup = await backed_up(store, make_bucket)
    clock = clock_of(store)
    catalog = LocalCatalog(tmp_path / "catalog", clock)
    with ListedState(clock) as listed:
        await no_op_sync(store, source, backup, clock, listed)
        # a gc that kept no point before now recorded, before deleting, that T is gone
        await note_gc(store, backup, [], clock.now())
        assert await publish_listed(store, backup, catalog, listed) is None
    assert await catalog.list() == []
    assert listed._work is None


async def recorded(tmp_path: Path) -> tuple[MemoryStore, S3Url, ManualClock, LocalCatalog]:
    """A backed-up key in memory, five minutes later."""
    clock = ManualClock(T0, tick=timedelta(seconds=1))
    store = MemoryStore(clock=clock)
    for bucket in ("src", "bak"):
        await store.create_bucket(bucket)
    await store.set_versioning("bak", True)
    await store.put("src", "k", b"k")
    await sync(store, S3Url("src"), store, S3Url("bak"), SyncOptions(), clock=clock)
    clock.advance(timedelta(minutes=5))
    return store, S3Url("bak"), clock, LocalCatalog(tmp_path / "catalog", clock)


@pytest.mark.parametrize("damage", ["none", "a field", "the JSON"])
async def test_a_damaged_history_is_never_taken_for_a_clean_one(
    tmp_path: Path, damage: str
) -> None:
    """A record that cannot be read whole may have lost the gap holding T (a damaged one is
    read as what it still shows): nothing is published from the sync's listing then."""
    store, backup, clock, catalog = await recorded(tmp_path)
    start = format_time(T0) if damage != "a field" else 5
    data = json.dumps({"format_version": "1.0", "start": start, "gaps": []}).encode()
    with ListedState(clock) as listed:
        await no_op_sync(store, S3Url("src"), backup, clock, listed)
        key = record_key(backup, "history.json")  # damaged since the sync read it
        await store.put("bak", key, data[:-3] if damage == "the JSON" else data)
        published = await publish_listed(store, backup, catalog, listed)
    assert (published is not None) == (damage == "none")
    assert len(await catalog.list()) == (damage == "none")


async def test_a_history_the_sync_writes_itself_is_not_relied_on(tmp_path: Path) -> None:
    """A sync that records where the history begins writes it outside the catalog lock, where
    (without conditional writes) it may have replaced a gc's record: not published."""
    store, backup, clock, _ = await recorded(tmp_path)
    await store.delete("bak", record_key(backup, "history.json"))  # as before records existed
    with ListedState(clock) as listed:
        result = await sync(
            store, S3Url("src"), store, backup, SyncOptions(), clock=clock, listed=listed
        )
        assert result.copied == result.deleted == 0
        assert not listed.usable(result.held_at)
    with ListedState(clock) as listed:  # recorded now: the next run's listing serves
        await no_op_sync(store, S3Url("src"), backup, clock, listed)


async def test_a_recording_that_fails_costs_a_listing_not_the_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, backup, clock, _ = await recorded(tmp_path)

    def full(self: IndexWriter, row: ObjectVersion) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(IndexWriter, "add", full)
    with ListedState(clock) as listed:
        result = await sync(
            store, S3Url("src"), store, backup, SyncOptions(), clock=clock, listed=listed
        )
        assert result.skipped == 1 and result.failures == ()
        assert not listed.usable(result.held_at) and listed._work is None


async def test_a_source_whose_versioning_is_unanswerable_is_read_by_its_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, backup, clock, _ = await recorded(tmp_path)

    real = store.get_versioning

    async def not_implemented(bucket: str) -> Versioning:
        if bucket != "src":
            return await real(bucket)
        raise StorageError(
            "NotImplemented: A header you provided implies functionality that is not implemented"
        )

    monkeypatch.setattr(store, "get_versioning", not_implemented)
    await store.put("src", "new", b"new")
    result = await sync(store, S3Url("src"), store, backup, SyncOptions(), clock=clock)
    assert (result.copied, result.skipped) == (1, 1)
