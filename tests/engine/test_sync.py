"""Sync: the pure merge-join plan, and whole syncs on the fake and on SeaweedFS."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta

import pytest

from backup_my_bucket.clock import ManualClock
from backup_my_bucket.engine.filters import KeyFilter
from backup_my_bucket.engine.sync import NOTHING_LISTED, SyncOptions, SyncResult, sync
from backup_my_bucket.engine.sync_plan import plan_sync, unchanged
from backup_my_bucket.errors import StorageError, VersioningNotEnabled
from backup_my_bucket.model import ObjectAttrs, ObjectVersion, S3Url
from backup_my_bucket.storage.iterate import iter_versions
from backup_my_bucket.storage.memory import MemoryStore
from backup_my_bucket.storage.protocol import ObjectStore

from ..conftest import BucketFactory, is_seaweedfs
from ..samples import ATTRS, TAGS

MiB = 1024 * 1024
T0 = datetime(2026, 1, 1, tzinfo=UTC)
ODD_KEYS = [
    "caf\u00e9/\u65e5\u672c\u8a9e/\U0001f600.txt",
    "with space/and  two",
    "trailing space ",
    "new\nline",
    "plus+and%25percent&amp<lt>",
    "q?x=1#frag",
    "/".join(["s" * 200] * 4) + "/end",
    "empty-object",
]
MD5A, MD5B = "a" * 32, "b" * 32
MULTIPART = SyncOptions(workers=4, multipart_threshold=6 * MiB, part_size=5 * MiB)


def v(key: str, etag: str = "e1", size: int = 1, at: int = 0) -> ObjectVersion:
    return ObjectVersion(key, "v", T0 + timedelta(seconds=at), size, etag, is_latest=True)


async def stream(items: Iterable[ObjectVersion]) -> AsyncIterator[ObjectVersion]:
    for item in items:
        yield item


async def plan(
    src: list[ObjectVersion], bak: list[ObjectVersion], **kw: object
) -> list[tuple[str, str]]:
    return [(i.action.value, i.key) async for i in plan_sync(stream(src), stream(bak), **kw)]  # type: ignore[arg-type]


# --- the plan --------------------------------------------------------------------------------


async def test_merge_join_copies_skips_and_deletes() -> None:
    src = [v("a"), v("b", "new"), v("c"), v("e")]
    bak = [v("b", "old"), v("c"), v("d")]
    assert await plan(src, bak) == [
        ("copy", "a"), ("copy", "b"), ("skip", "c"), ("delete", "d"), ("copy", "e"),
    ]  # fmt: skip
    assert await plan([], bak) == [("delete", "b"), ("delete", "c"), ("delete", "d")]
    assert await plan(src, []) == [("copy", k) for k in "abce"]


async def test_filters_scope_both_copies_and_deletes() -> None:
    src = [v("data/x.csv"), v("data/y.tmp"), v("logs/1")]
    bak = [v("data/old.tmp"), v("data/z.csv")]
    scope = KeyFilter(include=("data/*",), exclude=("*.tmp",))
    assert await plan(src, bak, key_filter=scope) == [
        ("copy", "data/x.csv"),
        ("delete", "data/z.csv"),
    ]


async def test_misordered_input_fails_loudly() -> None:
    with pytest.raises(StorageError, match="out of order"):
        await plan([v("b"), v("a")], [])
    with pytest.raises(StorageError, match="out of order"):
        await plan([], [v("a"), v("a")])


def test_unchanged_rules() -> None:
    assert unchanged(v("k", MD5A, 5), v("k", MD5A, 5))
    assert not unchanged(v("k", MD5A, 5), v("k", MD5A, 6))  # size differs
    assert not unchanged(v("k", MD5A, 5), v("k", MD5B, 5, at=9))  # two MD5s: content differs
    # layouts differ (a part-copied object): the copy counts if it is newer than its source
    assert unchanged(v("k", MD5A, 5, at=0), v("k", "cc-3", 5, at=1))
    assert not unchanged(v("k", MD5A, 5, at=1), v("k", "cc-3", 5, at=1))  # same second: recopy
    assert not unchanged(v("k", "aa-2", 5, at=2), v("k", "cc-3", 5, at=1))  # source rewritten
    assert unchanged(v("k", "", 0, at=0), v("k", "d41d8cd98f00b204e9800998ecf8427e", 0, at=1))
    assert not unchanged(v("k", "", 0, at=1), v("k", "", 0, at=1))  # no ETag: time decides


# --- whole syncs -----------------------------------------------------------------------------


async def read(store: ObjectStore, bucket: str, key: str) -> bytes:
    return b"".join([c async for c in store.get(bucket, key)])


def ticking(store: ObjectStore) -> None:
    """Every fake write a second apart: the copy is newer than its source, as on a server."""
    if isinstance(store, MemoryStore):
        store.clock = ManualClock(T0, tick=timedelta(seconds=1))


async def settle(store: ObjectStore) -> None:
    if not isinstance(store, MemoryStore):
        await asyncio.sleep(1.05)  # S3 timestamps have whole seconds


async def fill_source(store: ObjectStore, bucket: str) -> dict[str, bytes]:
    data = {key: (b"" if key == "empty-object" else key.encode()) for key in ODD_KEYS}
    for key, body in data.items():
        await store.put(bucket, key, body, attrs=ATTRS, tags=TAGS)
    data["ia/cold"] = b"cold bytes"
    await store.put(
        bucket, "ia/cold", data["ia/cold"], attrs=ObjectAttrs(storage_class="STANDARD_IA")
    )
    data["big/parts"] = random.Random(3).randbytes(11 * MiB)
    await store.put(bucket, "big/parts", data["big/parts"], attrs=ATTRS, tags=TAGS)
    return data


async def assert_mirrored(store: ObjectStore, src: str, bak: S3Url, data: dict[str, bytes]) -> None:
    for key, body in data.items():
        target = bak.prefix + key
        assert await read(store, bak.bucket, target) == body, key
        want, got = await store.head(src, key), await store.head(bak.bucket, target)
        assert got.attrs == want.attrs, key
        assert await store.get_tags(bak.bucket, target) == await store.get_tags(src, key), key


async def test_sync_mirrors_then_copies_nothing_then_marks_deletions(
    store: ObjectStore, make_bucket: BucketFactory
) -> None:
    ticking(store)
    src, bak = await make_bucket("src", versioned=False), await make_bucket("bak")
    data = await fill_source(store, src)
    source, backup = S3Url(src), S3Url(bak, "mirror/")
    await settle(store)
    first = await sync(store, source, store, backup, MULTIPART)
    assert first.failures == (), [f.reason for f in first.failures]
    assert (first.copied, first.deleted) == (len(data), 0)
    assert first.bytes_copied == sum(map(len, data.values()))
    await assert_mirrored(store, src, backup, data)
    parts = (await store.head(bak, "mirror/big/parts")).etag
    assert parts.endswith("-3")  # copied in three parts of 5, 5 and 1 MiB

    again = await sync(store, source, store, backup, MULTIPART)
    assert again == SyncResult(skipped=len(data))

    await store.delete(src, "with space/and  two")
    await store.put(src, "q?x=1#frag", b"changed")
    await settle(store)
    third = await sync(store, source, store, backup, MULTIPART)
    assert (third.copied, third.deleted, third.skipped) == (1, 1, len(data) - 2)
    history = [e async for e in iter_versions(store, bak, prefix="mirror/with space/")]
    assert [e.is_delete_marker for e in history] == [True, False]  # the old version stays
    assert await read(store, bak, "mirror/q?x=1#frag") == b"changed"

    # what a snapshot after it must hold (rule 8): the newest entry the backup listing showed,
    # delete markers included; a sync that wrote must be waited for whatever it saw
    fourth = await sync(store, source, store, backup, MULTIPART)
    listed = [e async for e in iter_versions(store, bak, prefix="mirror/")]
    newest = max(e.last_modified for e in listed)
    assert fourth.newest_seen == newest and fourth.copied == fourth.deleted == 0
    assert fourth.held_at(newest) and not fourth.held_at(newest - timedelta(seconds=1))
    assert third.newest_seen is not None and not third.held_at(newest + timedelta(days=1))


async def test_multipart_source_is_not_recopied(
    store: ObjectStore, make_bucket: BucketFactory
) -> None:
    ticking(store)
    src, bak = await make_bucket("src"), await make_bucket("bak")
    body = random.Random(4).randbytes(11 * MiB)
    upload = await store.create_multipart(src, "mp", attrs=ATTRS, tags=TAGS)
    parts = [
        await store.upload_part(src, "mp", upload, 1, body[: 6 * MiB]),
        await store.upload_part(src, "mp", upload, 2, body[6 * MiB :]),
    ]
    await store.complete_multipart(src, "mp", upload, parts)
    await settle(store)
    options = SyncOptions(workers=2)  # default threshold: the source's own layout is kept
    assert (await sync(store, S3Url(src), store, S3Url(bak), options)).copied == 1
    await assert_mirrored(store, src, S3Url(bak), {"mp": body})
    assert await sync(store, S3Url(src), store, S3Url(bak), options) == SyncResult(skipped=1)
    if not is_seaweedfs(store):
        assert (await store.head(bak, "mp")).etag == (await store.head(src, "mp")).etag


async def test_a_delete_marker_is_what_a_snapshot_must_wait_for() -> None:
    """The newest entry of the backup may be a delete marker, which no current listing
    shows: the sync counts it all the same."""
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC), tick=timedelta(seconds=1))
    store = MemoryStore(clock=clock)
    for bucket in ("src", "bak"):
        await store.create_bucket(bucket)
    await store.set_versioning("bak", True)
    await store.put("bak", "gone", b"x")
    marker = await store.delete("bak", "gone")
    assert marker is not None
    stamp = (await anext(iter_versions(store, "bak"))).last_modified
    result = await sync(store, S3Url("src"), store, S3Url("bak"), SyncOptions())
    assert (result.copied, result.deleted, result.newest_seen) == (0, 0, stamp)
    assert not result.held_at(stamp - timedelta(seconds=1)) and result.held_at(stamp)
    await store.create_bucket("empty")
    await store.set_versioning("empty", True)
    empty = await sync(store, S3Url("src"), store, S3Url("empty"), SyncOptions())
    assert empty.newest_seen == NOTHING_LISTED and empty.held_at(stamp)


async def test_dry_run_plans_and_writes_nothing(
    store: ObjectStore, make_bucket: BucketFactory
) -> None:
    src, bak = await make_bucket("src"), await make_bucket("bak")
    await store.put(src, "new", b"12345")
    await store.put(bak, "gone", b"x")
    result = await sync(store, S3Url(src), store, S3Url(bak), SyncOptions(dry_run=True))
    assert result == SyncResult(copied=1, deleted=1, bytes_copied=5, dry_run=True)
    assert [e.key async for e in iter_versions(store, bak)] == ["gone"]


async def test_an_unversioned_backup_is_refused(
    store: ObjectStore, make_bucket: BucketFactory
) -> None:
    src, bak = await make_bucket("src"), await make_bucket("bak", versioned=False)
    await store.put(src, "k", b"1")
    for dry_run in (False, True):
        with pytest.raises(VersioningNotEnabled):
            await sync(store, S3Url(src), store, S3Url(bak), SyncOptions(dry_run=dry_run))
    assert [e async for e in iter_versions(store, bak)] == []


async def test_failed_copies_are_listed_and_the_rest_done() -> None:
    store = MemoryStore()
    for name in ("src", "bak"):
        await store.create_bucket(name)
    await store.set_versioning("bak", True)
    await store.put("src", "ok", b"1")
    await store.put("src", "private", b"2")
    await store.put("bak", "gone", b"3")

    real_copy = store.copy

    async def copy(source, bucket, key, **kw):  # type: ignore[no-untyped-def]
        if source.key == "private":
            raise StorageError("InternalError: boom")
        return await real_copy(source, bucket, key, **kw)

    store.copy = copy  # type: ignore[method-assign]
    result = await sync(store, S3Url("src"), store, S3Url("bak"), SyncOptions(workers=2))
    assert (result.copied, result.deleted, result.failed) == (1, 1, 1)
    assert result.failures[0].key == "private" and "boom" in result.failures[0].reason
    assert store.snapshot_state("bak") == {"ok": b"1"}
