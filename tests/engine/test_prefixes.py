"""Prefixes are folders (docs/design.md, "Prefixes are folders"): `s3://b/p` and `s3://b/p/`
are the folder `p/`, and nothing outside it is read, written or deleted by sync or restore.

Every bucket holds the folder's neighbours: `p2/…`, `p-x`, `pa.txt` and a key equal to the
prefix, `p`. A recording wrapper around the store checks every request's key or listing
prefix, on the in-memory store and on SeaweedFS.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

import pytest

from backup_my_bucket.clock import ManualClock
from backup_my_bucket.engine.filters import KeyFilter
from backup_my_bucket.engine.gc import run_gc
from backup_my_bucket.engine.restore import Mode
from backup_my_bucket.engine.retention import RetentionPolicy, SnapshotRef
from backup_my_bucket.engine.sync import SyncOptions, sync
from backup_my_bucket.errors import UsageError
from backup_my_bucket.model import ObjectVersion, S3Url, VersionRef, in_folder
from backup_my_bucket.storage.iterate import iter_versions
from backup_my_bucket.storage.memory import MemoryStore
from backup_my_bucket.storage.protocol import ObjectStore

from ..conftest import BucketFactory
from .restore_helpers import contents as current
from .restore_helpers import desired_at, restore

T0 = datetime(2026, 3, 1, 12, 0, 0).astimezone()
SPELLINGS = ["", "/"]  # s3://b/p and s3://b/p/


def around(name: str, tag: bytes) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """(the folder's content, its neighbours) for a folder ``name``."""
    inside = {f"{name}/a.txt": b"a " + tag, f"{name}/sub/b.txt": b"bb " + tag}
    outside = {
        name: b"a key equal to the prefix " + tag,
        f"{name}2/x": b"next folder " + tag,
        f"{name}-x": b"dash " + tag,
        f"{name}a.txt": b"glued " + tag,
    }
    return inside, outside


class Recording:
    """Delegates to a store and records which (bucket, key or listing prefix) each call used."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.keys: list[tuple[str, str]] = []
        self.prefixes: list[tuple[str, str]] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self._note(name, args, kwargs)
            return attr(*args, **kwargs)

        return call

    def _note(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if name.startswith("list_"):
            self.prefixes.append((args[0], kwargs.get("prefix", "")))
        elif name == "delete_versions":
            self.keys += [(args[0], ref.key) for ref in args[1]]
        elif len(args) >= 2 and isinstance(args[1], str):
            self.keys.append((args[0], args[1]))
        self.keys += [(a.bucket, a.key) for a in args if isinstance(a, VersionRef)]
        if name == "copy":
            self.keys.append((args[1], args[2]))

    def only_in(self, folders: dict[str, str]) -> None:
        """Every request on these buckets stayed in its folder (bucket -> folder)."""
        assert self.keys and self.prefixes
        for bucket, key in self.keys:
            if bucket in folders:
                assert in_folder(key, folders[bucket]), (bucket, key)
        for bucket, prefix in self.prefixes:
            if bucket in folders:
                assert prefix.startswith(folders[bucket]), (bucket, prefix)

    def store(self) -> ObjectStore:
        return cast(ObjectStore, self)


async def put_all(store: ObjectStore, bucket: str, data: dict[str, bytes]) -> None:
    for key, body in data.items():
        await store.put(bucket, key, body)


async def history(store: ObjectStore, bucket: str) -> list[ObjectVersion]:
    return [v async for v in iter_versions(store, bucket)]


def outside_of(folder: str) -> Callable[[ObjectVersion], bool]:
    return lambda v: not in_folder(v.key, folder)


async def settle(store: ObjectStore) -> None:
    if isinstance(store, MemoryStore):
        assert isinstance(store.clock, ManualClock)
        store.clock.advance(timedelta(seconds=2))
    else:
        await asyncio.sleep(1.05)  # S3 stamps whole seconds


def clocked(store: ObjectStore) -> None:
    if isinstance(store, MemoryStore):
        store.clock = ManualClock(T0, tick=timedelta(seconds=1))


@pytest.mark.parametrize("backup_end", SPELLINGS)
@pytest.mark.parametrize("source_end", SPELLINGS)
async def test_sync_reads_and_writes_only_inside_both_folders(
    store: ObjectStore, make_bucket: BucketFactory, source_end: str, backup_end: str
) -> None:
    clocked(store)
    src, bak = await make_bucket("src", versioned=False), await make_bucket("bak")
    content, neighbours = around("p", b"src")
    await put_all(store, src, content | neighbours)
    _, backup_neighbours = around("site", b"bak")
    await put_all(store, bak, backup_neighbours | {"site/stale.txt": b"old"})
    before = [v for v in await history(store, bak) if outside_of("site/")(v)]
    await settle(store)
    rec = Recording(store)
    source, backup = S3Url(src, "p" + source_end), S3Url(bak, "site" + backup_end)

    first = await sync(rec.store(), source, rec.store(), backup, SyncOptions(workers=4))
    assert (first.copied, first.deleted, first.failed) == (2, 1, 0)
    rec.only_in({src: "p/", bak: "site/"})
    after = await current(store, bak)
    assert after == backup_neighbours | {"site/a.txt": b"a src", "site/sub/b.txt": b"bb src"}
    # the reported bug: a delete marker put on a neighbour (site2/…) of the backup folder
    assert [v for v in await history(store, bak) if outside_of("site/")(v)] == before

    await store.delete(src, "p/a.txt")
    for key in neighbours:
        await store.delete(src, key)  # gone from the source, but never part of the folder
    await settle(store)
    second = await sync(rec.store(), source, rec.store(), backup, SyncOptions(workers=4))
    assert (second.copied, second.deleted, second.skipped) == (0, 1, 1)
    assert set(await current(store, bak)) == set(backup_neighbours) | {"site/sub/b.txt"}
    assert [v for v in await history(store, bak) if outside_of("site/")(v)] == before
    rec.only_in({src: "p/", bak: "site/"})


@pytest.mark.parametrize("target_end", SPELLINGS)
async def test_restore_to_a_folder_touches_nothing_beside_it(
    store: ObjectStore, make_bucket: BucketFactory, target_end: str
) -> None:
    """The reported bug: `restore --to s3://t/inspect` wrote `inspectcss/…` and, in rollback,
    deleted `inspection-notes.txt`, `inspect/…` and `inspect2emoji/…`."""
    clocked(store)
    bk, tgt = await make_bucket("bk"), await make_bucket("tgt", versioned=False)
    content, backup_neighbours = around("site", b"point")
    await put_all(store, bk, content | backup_neighbours)
    await settle(store)
    at = max(v.last_modified for v in await history(store, bk))
    inside, neighbours = around("inspect", b"target")
    neighbours["inspection-notes.txt"] = b"notes"
    await put_all(store, tgt, inside | neighbours | {"inspect/extra.txt": b"extra"})
    before = [v for v in await history(store, tgt) if outside_of("inspect/")(v)]
    rec = Recording(store)
    backup = S3Url(bk, "site")

    result = await restore(
        rec.store(), backup, S3Url(tgt, "inspect" + target_end), desired_at(store, backup, at)
    )
    assert (result.copied, result.deleted, result.failed, result.verified) == (2, 1, 0, True)
    rec.only_in({bk: "site/", tgt: "inspect/"})
    assert await current(store, tgt) == neighbours | {
        "inspect/a.txt": b"a point",
        "inspect/sub/b.txt": b"bb point",
    }
    assert [v for v in await history(store, tgt) if outside_of("inspect/")(v)] == before


@pytest.mark.parametrize("prefix_end", SPELLINGS)
async def test_restore_prefix_is_a_folder_of_relative_keys(
    store: ObjectStore, make_bucket: BucketFactory, prefix_end: str
) -> None:
    clocked(store)
    bk, tgt = await make_bucket("bk"), await make_bucket("tgt", versioned=False)
    content, neighbours = around("docs", b"point")
    await put_all(store, bk, {f"site/{k}": v for k, v in (content | neighbours).items()})
    await settle(store)
    at = max(v.last_modified for v in await history(store, bk))
    now_in, now_out = around("docs", b"now")
    await put_all(store, tgt, now_in | now_out | {"docs/extra.txt": b"extra"})
    before = [v for v in await history(store, tgt) if outside_of("docs/")(v)]
    rec = Recording(store)
    backup = S3Url(bk, "site/")

    result = await restore(
        rec.store(),
        backup,
        S3Url(tgt),
        desired_at(store, backup, at),
        mode=Mode.ROLLBACK,
        filters=KeyFilter("docs" + prefix_end),
    )
    assert (result.copied, result.deleted, result.failed, result.verified) == (2, 1, 0, True)
    assert await current(store, tgt) == content | now_out
    assert [v for v in await history(store, tgt) if outside_of("docs/")(v)] == before
    rec.only_in({tgt: "docs/"})  # the target is listed only in the folder


async def test_a_folder_marker_is_the_folder_not_its_content(
    store: ObjectStore, make_bucket: BucketFactory
) -> None:
    """`p/` itself (an empty "folder" object, as consoles create) has no name relative to the
    folder: it is neither copied into the backup nor deleted by a rollback."""
    clocked(store)
    src, bak = await make_bucket("src"), await make_bucket("bak")
    await put_all(store, src, {"p/": b"", "p/a.txt": b"a"})
    await put_all(store, bak, {"site/": b""})
    await settle(store)
    synced = await sync(store, S3Url(src, "p"), store, S3Url(bak, "site"), SyncOptions(workers=2))
    assert (synced.copied, synced.deleted, synced.failed) == (1, 0, 0)
    assert await current(store, bak) == {"site/": b"", "site/a.txt": b"a"}
    await settle(store)
    at = max(v.last_modified for v in await history(store, bak))
    await store.put(src, "p/b.txt", b"b")
    result = await restore(
        store, S3Url(bak, "site"), S3Url(src, "p"), desired_at(store, S3Url(bak, "site"), at)
    )
    assert (result.copied, result.deleted, result.verified) == (0, 1, True)
    assert await current(store, src) == {"p/": b"", "p/a.txt": b"a"}


@pytest.mark.parametrize(
    ("source", "backup"),
    [("s3://b/p", "s3://b/p/"), ("s3://b/p", "s3://b/p/bk"), ("s3://b/bk/p", "s3://b/bk")],
)
async def test_overlapping_source_and_backup_are_refused(source: str, backup: str) -> None:
    store = MemoryStore()
    await store.create_bucket("b")
    await store.set_versioning("b", True)
    await store.put("b", "p/a", b"a")
    with pytest.raises(UsageError, match="overlaps") as caught:
        await sync(store, S3Url.parse(source), store, S3Url.parse(backup), SyncOptions())
    assert caught.value.hint and "another bucket" in caught.value.hint
    assert [v.key async for v in iter_versions(store, "b")] == ["p/a"]  # nothing written
    # neighbours are not an overlap, and across endpoints the names say nothing
    done = await sync(store, S3Url("b", "p"), store, S3Url("b", "p2"), SyncOptions())
    assert done.copied == 1
    apart = SyncOptions(same_endpoint=False)
    other = MemoryStore()
    await other.create_bucket("b")
    await other.set_versioning("b", True)
    assert (await sync(store, S3Url("b", "p"), other, S3Url("b"), apart)).copied == 1


@pytest.mark.parametrize("target", ["s3://bk", "s3://bk/site", "s3://bk/site/old"])
async def test_restore_into_its_backup_is_refused(target: str) -> None:
    store = MemoryStore()
    await store.create_bucket("bk")
    await store.set_versioning("bk", True)
    await store.put("bk", "site/a", b"a")
    backup, later = S3Url("bk", "site"), datetime.now().astimezone() + timedelta(days=1)
    with pytest.raises(UsageError, match="overlaps"):
        await restore(store, backup, S3Url.parse(target), desired_at(store, backup, later))
    assert [v.key async for v in iter_versions(store, "bk")] == ["site/a"]
    done = await restore(store, backup, S3Url("bk", "site2"), desired_at(store, backup, later))
    assert (done.copied, done.failed) == (1, 0)  # a neighbour of the backup folder is apart


async def test_gc_collects_only_inside_the_backup_folder(
    store: ObjectStore, make_bucket: BucketFactory
) -> None:
    """Noncurrent versions of the folder's neighbours (and of its marker) are not its history:
    gc of `s3://bk/site` must leave them, whatever the policy."""
    clocked(store)
    bk = await make_bucket("bk")
    content, neighbours = around("site", b"v1")
    await put_all(store, bk, content | neighbours | {"site/": b""})
    await put_all(
        store, bk, {k: v.replace(b"v1", b"v2") for k, v in (content | neighbours).items()}
    )
    await put_all(store, bk, {"site/": b""})
    await settle(store)
    point = SnapshotRef("only", max(v.last_modified for v in await history(store, bk)))
    outside = [v for v in await history(store, bk) if outside_of("site/")(v)]
    # each neighbour has 2 versions (the marker too, but SeaweedFS keeps one version of `p/`)
    assert len([v for v in outside if v.key != "site/"]) == 2 * len(neighbours)

    async def remove(ids: Sequence[str]) -> None:
        raise AssertionError(f"nothing to remove: {ids}")

    result = await run_gc(
        store, bk, "site", [point], RetentionPolicy(keep_last=1),
        point.at + timedelta(hours=1), remove_snapshots=remove,
    )  # fmt: skip
    assert result.versions_deleted == len(content)  # the v1 of each key in the folder
    assert [v for v in await history(store, bk) if outside_of("site/")(v)] == outside
