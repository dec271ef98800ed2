"""Every engine on a store that pages the way SeaweedFS does (the in-memory model), on the
folder-plus-suffix layout with history.

Without the workaround (paging forced NAIVE: the server's own markers) the listings come out
short and the audit stops each command with IncompleteListing (exit 1) before it trusts them:
no snapshot published, no restore step taken, no delete marker written. With it (TREE, chosen
from the server's name) every result is exact. The same scenarios run against SeaweedFS
itself in tests/cli/test_stem_layout_cli.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backup_my_bucket.catalog import LocalCatalog
from backup_my_bucket.clock import ManualClock
from backup_my_bucket.engine.gc import run_gc
from backup_my_bucket.engine.restore import run_restore
from backup_my_bucket.engine.retention import RetentionPolicy, SnapshotRef
from backup_my_bucket.engine.snapshot import state_at, take_snapshot
from backup_my_bucket.engine.sync import SyncOptions, sync
from backup_my_bucket.engine.verify import verify_versions
from backup_my_bucket.errors import ExitCode, IncompleteListing
from backup_my_bucket.model import S3Url
from backup_my_bucket.storage.iterate import iter_versions
from backup_my_bucket.storage.listing import ListingOptions
from backup_my_bucket.storage.memory import MemoryStore
from backup_my_bucket.storage.paging import Paging

from ..conftest import is_data
from ..engine.restore_helpers import aiter_list
from ..stems import Scene, write_scene

PAGE = 97
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


class Fixture:
    def __init__(self) -> None:
        self.clock = ManualClock(T0)
        self.store = MemoryStore(self.clock, seaweedfs_paging=True)

    def options(self, paging: Paging | None) -> ListingOptions:
        return ListingOptions(page_size=PAGE, paging=paging, clock=self.clock)

    async def scene(self, bucket: str, versioned: bool) -> Scene:
        async def between() -> datetime:
            self.clock.advance(timedelta(seconds=30))
            at = self.clock.now()
            self.clock.advance(timedelta(seconds=30))
            return at

        scene = await write_scene(self.store, bucket, per=100, versioned=versioned, between=between)
        self.clock.advance(timedelta(minutes=5))  # the listings come later
        return scene

    async def live(self, bucket: str) -> dict[str, bytes]:
        keys = [
            v.key
            async for v in iter_versions(self.store, bucket, paging=Paging.TREE)
            if v.is_latest and not v.is_delete_marker and is_data(v.key)
        ]
        return {k: b"".join([c async for c in self.store.get(bucket, k)]) for k in keys}


@pytest.fixture
async def world() -> tuple[Fixture, Scene, Scene]:
    f = Fixture()
    history = await f.scene("hist", versioned=True)
    flat = await f.scene("src", versioned=False)
    return f, history, flat


WORKAROUND = [pytest.param(None, id="tree-paging"), pytest.param(Paging.NAIVE, id="naive")]


@pytest.mark.parametrize("paging", WORKAROUND)
@pytest.mark.parametrize("source", ["src", "hist"])
async def test_sync_copies_every_key(
    world: tuple[Fixture, Scene, Scene], paging: Paging | None, source: str
) -> None:
    f, history, flat = world
    truth = (flat if source == "src" else history).now
    await f.store.create_bucket("bak")
    await f.store.set_versioning("bak", True)
    await f.store.put("bak", "img0-stale", b"x")  # gone from the source: a delete marker due
    options = SyncOptions(workers=8, listing=f.options(paging))
    result = await sync(f.store, S3Url(source), f.store, S3Url("bak"), options)
    # an unversioned source is read with ListObjectsV2, complete whatever the version paging
    if paging is Paging.NAIVE and source == "hist":
        assert result.incomplete is not None and result.incomplete.keys
        assert result.incomplete.exit_code == ExitCode.FAILURE
        assert result.deleted == 0, "no delete marker on a short listing"
        assert set(result.incomplete.keys) <= set(truth)
        return
    assert result.incomplete is None and result.failed == 0
    assert (result.copied, result.deleted) == (len(truth), 1)
    assert await f.live("bak") == truth


@pytest.mark.parametrize("paging", WORKAROUND)
async def test_snapshot_now_and_at_indexes_every_key(
    world: tuple[Fixture, Scene, Scene], paging: Paging | None, tmp_path: Path
) -> None:
    f, history, _ = world
    catalog = LocalCatalog(tmp_path / "catalog", f.clock)
    for at, truth in ((history.at, history.then), (None, history.now)):
        take = take_snapshot(
            f.store, S3Url("hist"), catalog, f.clock, at=at, workers=8, listing=f.options(paging)
        )
        if paging is Paging.NAIVE:
            with pytest.raises(IncompleteListing):
                await take
            continue
        meta = await take
        rows = list((await catalog.open_index(meta)).rows())
        assert [r.key for r in rows] == sorted(truth) and meta.keys == len(truth)
        versions = {r.key: r.version_id for r in rows}
        checked = await verify_versions(f.store, S3Url("hist"), aiter_list(rows), read_share=1.0)
        assert (checked.checked, checked.problems) == (len(truth), [])
        for key in list(truth)[::50]:  # the rows point at the right bytes
            got = b"".join([c async for c in f.store.get("hist", key, versions[key])])
            assert got == truth[key]
    assert (await catalog.list() == []) is (paging is Paging.NAIVE), "published on a short one"


@pytest.mark.parametrize("paging", WORKAROUND)
async def test_restore_into_a_fresh_bucket_brings_every_key_back(
    world: tuple[Fixture, Scene, Scene], paging: Paging | None, tmp_path: Path
) -> None:
    f, history, _ = world
    await f.store.create_bucket("fresh")  # unversioned, as restore targets usually are
    options = f.options(paging)
    # the backup has no prefix: the state's relative keys are its absolute keys
    desired = state_at(f.store, S3Url("hist"), history.at, workers=8, listing=options)
    restore = run_restore(
        backup_store=f.store, backup=S3Url("hist"), desired=desired, target_store=f.store,
        target=S3Url("fresh"), point="at", journal_dir=tmp_path, workers=8, listing=options,
    )  # fmt: skip
    if paging is Paging.NAIVE:
        with pytest.raises(IncompleteListing):
            await restore
        assert await f.live("fresh") == {}, "a restore planned on a short listing did something"
        return
    result = await restore
    assert (result.failed, result.verified, result.copied) == (0, True, len(history.then))
    assert await f.live("fresh") == history.then


async def test_gc_deletes_exactly_what_the_model_says(world: tuple[Fixture, Scene, Scene]) -> None:
    f, history, _ = world
    before = {(v.key, v.version_id) async for v in iter_versions(f.store, "hist")}
    planned: list[tuple[str, str]] = []

    async def nothing(_: object) -> None:
        return None

    for dry in (True, False):
        result = await run_gc(
            f.store, "hist", "", [SnapshotRef("s", history.at)], RetentionPolicy(keep_last=1),
            f.clock.now(), remove_snapshots=nothing, dry_run=dry, workers=8,
            on_planned=lambda v: planned.append((v.key, v.version_id)), listing=f.options(None),
        )  # fmt: skip
        assert result.versions_deleted == len(history.middle)
    assert set(planned) == history.middle
    after = {(v.key, v.version_id) async for v in iter_versions(f.store, "hist")}
    assert after == before - history.middle
