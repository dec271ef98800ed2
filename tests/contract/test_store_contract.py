"""The ObjectStore contract: the S3 semantics every engine relies on.

Each test runs on the in-memory fake and on the real server (SeaweedFS, or BMB_TEST_ENDPOINT).
Where SeaweedFS deviates from AWS, the fake follows AWS and the test says so explicitly.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from datetime import UTC, datetime, timedelta

import pytest

from backup_my_bucket.errors import (
    BucketNotFound,
    ObjectNotFound,
    PreconditionFailed,
    StorageError,
)
from backup_my_bucket.model import ObjectAttrs, ObjectVersion, Versioning, VersionRef
from backup_my_bucket.storage.iterate import iter_objects, iter_versions
from backup_my_bucket.storage.memory import MemoryStore, chunk_etag
from backup_my_bucket.storage.protocol import MIN_PART_SIZE, ObjectStore
from backup_my_bucket.storage.s3 import S3Store

from ..conftest import BucketFactory, is_seaweedfs, unique_bucket
from ..samples import ATTRS, TAGS

MiB = 1024 * 1024


async def read(store: ObjectStore, bucket: str, key: str, version_id: str | None = None) -> bytes:
    return b"".join([chunk async for chunk in store.get(bucket, key, version_id)])


async def versions(store: ObjectStore, bucket: str, **kw: object) -> list[ObjectVersion]:
    return [v async for v in iter_versions(store, bucket, **kw)]  # type: ignore[arg-type]


async def keys(store: ObjectStore, bucket: str, **kw: object) -> list[str]:
    return [o.key async for o in iter_objects(store, bucket, **kw)]  # type: ignore[arg-type]


# --- buckets ---------------------------------------------------------------------------------


async def test_missing_bucket_is_not_found(store: ObjectStore) -> None:
    with pytest.raises(BucketNotFound):
        await store.check_bucket("bmb-no-such-bucket-4242")
    with pytest.raises(BucketNotFound):
        await store.list_versions_page("bmb-no-such-bucket-4242")


async def test_versioning_states(store: ObjectStore, make_bucket: BucketFactory) -> None:
    bucket = await make_bucket(versioned=False)
    assert await store.get_versioning(bucket) is Versioning.UNVERSIONED
    await store.set_versioning(bucket, True)
    assert await store.get_versioning(bucket) is Versioning.ENABLED
    await store.set_versioning(bucket, False)
    assert await store.get_versioning(bucket) is Versioning.SUSPENDED
    assert await store.get_lifecycle(bucket) == []


# --- order, versions, delete markers --------------------------------------------------------


async def test_keys_list_in_code_point_order(
    store: ObjectStore, make_bucket: BucketFactory
) -> None:
    bucket = await make_bucket()
    names = ["b", "a", "a/b", "a-b", "A", "z\u00e9", "z\u4e2d", "ze", "a b", "a+b", "a%2Fb", "0"]
    names += ["a/b/c", "a/b-c", "a/b c", "a-b/x", "a/b/"]
    random.Random(7).shuffle(names)
    for name in names:
        await store.put(bucket, name, name.encode())
    assert [v.key for v in await versions(store, bucket)] == sorted(names)
    if is_seaweedfs(store):
        # Deviation: SeaweedFS's ListObjectsV2 walks its directory tree, so "a/b" (in
        # directory "a") comes before "a b" and "a-b". Its ListObjectVersions is in key order,
        # which is why the engines build every merge-join on version listings.
        page = await store.list_objects_page(bucket)
        listed = [o.key for o in page.objects]
        assert sorted(listed) == sorted(names) and listed != sorted(names)
        with pytest.raises(StorageError, match="not in strictly ascending key order"):
            await keys(store, bucket)
    else:
        assert await keys(store, bucket) == sorted(names)


async def test_paging_past_a_directory_sibling(
    store: ObjectStore, make_bucket: BucketFactory
) -> None:
    """Keys "a-b" and "a/b": "a-b" sorts first, and a page that ends on it must go on to "a/b".

    Deviation: SeaweedFS walks directory "a" before "a-b" and resumes its walk after "a-b",
    so paging by its own markers loses "a/b" (docs/design.md, "Paging a tree-walking
    server"). The listing every engine uses pages around it and is complete on both stores.
    """
    bucket = await make_bucket()
    for name in ["a/b", "a-b", "b"]:
        await store.put(bucket, name, b"")
    raw: list[str] = []
    marker = ""
    while True:
        page = await store.list_versions_page(bucket, key_marker=marker, max_keys=1)
        raw += [v.key for v in page.entries]
        if not page.is_truncated:
            break
        marker = page.next_key_marker or ""
    if is_seaweedfs(store):
        assert raw == ["a-b", "b"], "SeaweedFS changed how it pages past a directory"
        assert "seaweedfs" in (await store.server(bucket)).lower()
    else:
        assert raw == ["a-b", "a/b", "b"]
    assert [v.key for v in await versions(store, bucket, page_size=1)] == ["a-b", "a/b", "b"]


async def test_versions_newest_first(store: ObjectStore, make_bucket: BucketFactory) -> None:
    bucket = await make_bucket()
    ids = [await store.put(bucket, "k", f"v{i}".encode()) for i in range(3)]
    listed = await versions(store, bucket)
    assert [v.version_id for v in listed] == ids[::-1]
    assert [v.is_latest for v in listed] == [True, False, False]
    assert all(v.last_modified.tzinfo is not None for v in listed)
    assert listed[0].last_modified >= listed[-1].last_modified
    assert await read(store, bucket, "k") == b"v2"
    assert await read(store, bucket, "k", ids[0]) == b"v0"


async def test_delete_marker(store: ObjectStore, make_bucket: BucketFactory) -> None:
    bucket = await make_bucket()
    old = await store.put(bucket, "doomed", b"data")
    await store.put(bucket, "kept", b"x")
    marker = await store.delete(bucket, "doomed")
    assert marker is not None and marker != old
    listed = await versions(store, bucket, prefix="doomed")
    # put and delete may fall in the same second: only the listing's order tells them apart
    assert [(v.version_id, v.is_delete_marker, v.is_latest) for v in listed] == [
        (marker, True, True),
        (old, False, False),
    ]
    assert listed[0].etag is None and listed[1].etag
    assert await keys(store, bucket) == ["kept"]
    with pytest.raises(ObjectNotFound):
        await store.head(bucket, "doomed")
    with pytest.raises(ObjectNotFound):  # AWS: 405; SeaweedFS: 404. Both are "not found" here.
        await store.head(bucket, "doomed", marker)
    assert (await store.head(bucket, "doomed", old)).size == 4
    assert await read(store, bucket, "doomed", old) == b"data"


async def test_delete_marker_only_pages(store: ObjectStore, make_bucket: BucketFactory) -> None:
    """A page made only of delete markers must not end the listing."""
    bucket = await make_bucket()
    for i in range(4):
        await store.put(bucket, f"gone{i}", b"x")
        await store.delete(bucket, f"gone{i}")
        await store.delete(bucket, f"gone{i}")
    await store.put(bucket, "z-live", b"y")
    listed = await versions(store, bucket, page_size=2)
    assert len(listed) == 13
    assert listed[-1].key == "z-live"
    assert await keys(store, bucket, page_size=1) == ["z-live"]


# --- paging ----------------------------------------------------------------------------------


async def test_paging_page_size_one(store: ObjectStore, make_bucket: BucketFactory) -> None:
    bucket = await make_bucket()
    for i in range(5):
        for j in range(i % 3 + 1):
            await store.put(bucket, f"k{i}", f"{i}.{j}".encode())
        if i == 2:
            await store.delete(bucket, "k2")
    full = await versions(store, bucket)
    paged = await versions(store, bucket, page_size=1)
    assert [(v.key, v.version_id) for v in paged] == [(v.key, v.version_id) for v in full]
    assert len(full) == 1 + 2 + 4 + 1 + 2
    assert await keys(store, bucket, page_size=1) == ["k0", "k1", "k3", "k4"]


async def test_version_id_marker_continues_inside_a_key(
    store: ObjectStore, make_bucket: BucketFactory
) -> None:
    bucket = await make_bucket()
    ids = [await store.put(bucket, "k", str(i).encode()) for i in range(4)]
    await store.put(bucket, "l", b"l")
    page = await store.list_versions_page(bucket, key_marker="k", version_id_marker=ids[2])
    assert [(v.key, v.version_id) for v in page.entries] == [
        ("k", ids[1]),
        ("k", ids[0]),
        ("l", page.entries[-1].version_id),
    ]
    first = await store.list_versions_page(bucket, max_keys=2)
    assert first.is_truncated
    assert (first.next_key_marker, first.next_version_id_marker) == ("k", ids[2])
    after_key = await store.list_versions_page(bucket, key_marker="k")
    assert [v.key for v in after_key.entries] == ["l"]


async def test_key_ranges(store: ObjectStore, make_bucket: BucketFactory) -> None:
    bucket = await make_bucket()
    for name in ["a", "b", "c", "d", "e"]:
        await store.put(bucket, name, b"")
    got = await versions(store, bucket, start_after="b", end_before="e")
    assert [v.key for v in got] == ["c", "d"]
    assert await keys(store, bucket, start_after="a", end_before="c") == ["b"]


async def test_delimiter_paging(store: ObjectStore, make_bucket: BucketFactory) -> None:
    bucket = await make_bucket()
    names = ["a/1", "a/2", "b", "c/x/1", "c/y", "d"]
    for name in names:
        await store.put(bucket, name, b"")
    seen_keys: list[str] = []
    seen_prefixes: list[str] = []
    key_marker = ""
    while True:
        page = await store.list_versions_page(
            bucket, delimiter="/", key_marker=key_marker, max_keys=1
        )
        seen_keys += [v.key for v in page.entries]
        seen_prefixes += page.common_prefixes
        if not page.is_truncated:
            break
        assert page.next_key_marker
        key_marker = page.next_key_marker
    assert seen_keys == ["b", "d"]
    assert seen_prefixes == ["a/", "c/"]
    inner = await store.list_versions_page(bucket, prefix="c/", delimiter="/")
    assert inner.common_prefixes == ["c/x/"] and [v.key for v in inner.entries] == ["c/y"]
    objs = await store.list_objects_page(bucket, delimiter="/")
    assert objs.common_prefixes == ["a/", "c/"] and [o.key for o in objs.objects] == ["b", "d"]


async def test_objects_paging_with_delimiter(
    store: ObjectStore, make_bucket: BucketFactory
) -> None:
    bucket = await make_bucket()
    for name in ["a/1", "a/2", "b", "c/1", "d"]:
        await store.put(bucket, name, b"")
    got: list[str] = []
    token: str | None = None
    while True:
        page = await store.list_objects_page(
            bucket, delimiter="/", continuation_token=token, max_keys=1
        )
        got += [o.key for o in page.objects] + page.common_prefixes
        if not page.is_truncated:
            break
        token = page.next_token
    assert got == ["a/", "b", "c/", "d"]


async def test_a_full_page_of_one_thousand(store: ObjectStore, make_bucket: BucketFactory) -> None:
    bucket = await make_bucket()
    await asyncio.gather(*(store.put(bucket, f"k{i:04d}", b"") for i in range(1001)))
    page = await store.list_versions_page(bucket)
    assert len(page.entries) == 1000 and page.is_truncated
    listed = await versions(store, bucket)
    assert len(listed) == 1001
    failures = await store.delete_versions(
        bucket, [VersionRef(bucket, v.key, v.version_id) for v in listed[:1000]]
    )
    assert failures == []
    assert [v.key for v in await versions(store, bucket)] == ["k1000"]


# --- reads, writes, copies -------------------------------------------------------------------


async def test_put_head_get_keep_attrs_and_tags(
    store: ObjectStore, make_bucket: BucketFactory
) -> None:
    bucket = await make_bucket()
    vid = await store.put(bucket, "doc", b"hello world", attrs=ATTRS, tags=TAGS)
    info = await store.head(bucket, "doc")
    assert info.version_id == vid
    assert info.size == 11
    assert info.etag == "5eb63bbbe01eeed093cb22bb8f5acdc3"
    assert info.last_modified.tzinfo == UTC
    assert info.attrs.content_type == ATTRS.content_type
    assert info.attrs.cache_control == ATTRS.cache_control
    assert info.attrs.content_disposition == ATTRS.content_disposition
    assert info.attrs.content_encoding == ATTRS.content_encoding
    assert info.attrs.content_language == ATTRS.content_language
    assert info.attrs.expires == ATTRS.expires
    assert dict(info.attrs.metadata) == dict(ATTRS.metadata)
    assert info.tag_count == 2
    assert await store.get_tags(bucket, "doc") == TAGS
    chunks = [c async for c in store.get(bucket, "doc", chunk_size=4)]
    assert b"".join(chunks) == b"hello world" and max(map(len, chunks)) <= 4
    part = b"".join([c async for c in store.get(bucket, "doc", byte_range=(6, 10))])
    assert part == b"world"


@pytest.mark.parametrize("versioned", [True, False])
async def test_conditional_put(
    store: ObjectStore, make_bucket: BucketFactory, versioned: bool
) -> None:
    """If-None-Match: * creates only; If-Match: <etag> replaces only that content. Anything
    else is 412 (PreconditionFailed) and writes nothing (catalog locks rely on it)."""
    bucket = await make_bucket(versioned=versioned)
    await store.put(bucket, "lock", b"first", if_none_match=True)
    with pytest.raises(PreconditionFailed):
        await store.put(bucket, "lock", b"second", if_none_match=True)
    first = await store.head(bucket, "lock")
    with pytest.raises(PreconditionFailed):
        await store.put(bucket, "lock", b"third", if_match='"00000000000000000000000000000000"')
    assert await read(store, bucket, "lock") == b"first"
    await store.put(bucket, "lock", b"renewed", if_match=first.etag)
    with pytest.raises(PreconditionFailed):  # the old ETag no longer matches
        await store.put(bucket, "lock", b"stale", if_match=first.etag)
    assert await read(store, bucket, "lock") == b"renewed"
    # If-Match on a key with no current object: SeaweedFS answers 412; AWS may answer 404
    # (NoSuchKey). Both mean "not yours"; the fake answers 412.
    with pytest.raises((PreconditionFailed, ObjectNotFound)):
        await store.put(bucket, "nothing", b"x", if_match=first.etag)
    await store.delete(bucket, "lock")  # a delete marker on top: the key is free again
    await store.put(bucket, "lock", b"again", if_none_match=True)
    assert await read(store, bucket, "lock") == b"again"
    assert [v.key for v in await versions(store, bucket)].count("nothing") == 0


async def test_copy_an_old_version_keeps_everything(
    store: ObjectStore, make_bucket: BucketFactory
) -> None:
    src = await make_bucket("src")
    dst = await make_bucket("dst")
    old = await store.put(src, "f", b"first", attrs=ATTRS, tags=TAGS)
    await store.put(src, "f", b"second", attrs=ObjectAttrs(content_type="x/other"), tags={"a": "b"})
    new = await store.copy(VersionRef(src, "f", old), dst, "g")
    info = await store.head(dst, "g", new)
    assert await read(store, dst, "g") == b"first"
    assert info.attrs.content_type == ATTRS.content_type
    assert info.attrs.cache_control == ATTRS.cache_control
    assert info.attrs.expires == ATTRS.expires
    assert dict(info.attrs.metadata) == dict(ATTRS.metadata)
    assert await store.get_tags(dst, "g") == TAGS
    assert info.etag == (await store.head(src, "f", old)).etag


async def test_copy_replacing_attrs_and_tags(
    store: ObjectStore, make_bucket: BucketFactory
) -> None:
    bucket = await make_bucket()
    vid = await store.put(bucket, "f", b"x", attrs=ATTRS, tags=TAGS)
    attrs = ObjectAttrs(content_type="image/png", metadata={"k": "v"}, storage_class="STANDARD")
    await store.copy(VersionRef(bucket, "f", vid), bucket, "f2", attrs=attrs, tags={"n": "1"})
    info = await store.head(bucket, "f2")
    assert info.attrs.content_type == "image/png"
    assert dict(info.attrs.metadata) == {"k": "v"}
    assert info.attrs.cache_control is None
    assert await store.get_tags(bucket, "f2") == {"n": "1"}


async def test_multipart_upload_and_part_copy(
    store: ObjectStore, make_bucket: BucketFactory
) -> None:
    bucket = await make_bucket()
    data = bytes(random.Random(1).randbytes(MIN_PART_SIZE + 1000))
    src = await store.put(bucket, "big", data)
    upload = await store.create_multipart(bucket, "copy", attrs=ATTRS, tags=TAGS)
    parts = [
        await store.upload_part_copy(
            bucket, "copy", upload, 1, VersionRef(bucket, "big", src), (0, MIN_PART_SIZE - 1)
        ),
        await store.upload_part_copy(
            bucket,
            "copy",
            upload,
            2,
            VersionRef(bucket, "big", src),
            (MIN_PART_SIZE, len(data) - 1),
        ),
    ]
    await store.complete_multipart(bucket, "copy", upload, parts)
    info = await store.head(bucket, "copy")
    assert info.size == len(data)
    assert info.etag.endswith("-2")
    assert info.attrs.content_type == ATTRS.content_type
    assert dict(info.attrs.metadata) == dict(ATTRS.metadata)
    assert await store.get_tags(bucket, "copy") == TAGS
    assert await read(store, bucket, "copy") == data

    upload = await store.create_multipart(bucket, "streamed")
    part = await store.upload_part(bucket, "streamed", upload, 1, b"tail only")
    await store.complete_multipart(bucket, "streamed", upload, [part])
    assert await read(store, bucket, "streamed") == b"tail only"
    aborted = await store.create_multipart(bucket, "never")
    await store.abort_multipart(bucket, "never", aborted)
    assert "never" not in await keys(store, bucket)


async def test_open_uploads_until_completed_or_aborted(
    store: ObjectStore, make_bucket: BucketFactory
) -> None:
    """ListMultipartUploads, every page: what a snapshot holds on to (engine/snapshot.py).
    SeaweedFS folds `//` in an upload's key as in an object's (a documented deviation)."""
    bucket = await make_bucket()
    names = ["dir/a b", "dir/ünï", "dir/x\ny", "dir/100%41", "dir//two", "dir/a b", "dirt", "o/k"]
    before = await store.server_time(bucket)
    ids = [await store.create_multipart(bucket, name) for name in names]
    after = await store.server_time(bucket)
    listed = await store.open_uploads(bucket, "dir/", page_size=2)
    folded = [n.replace("//", "/") if is_seaweedfs(store) else n for n in names]
    opened = sorted(zip(folded[:6], ids[:6], strict=True))
    assert sorted((u.key, u.upload_id) for u in listed) == opened
    assert [u.key for u in listed] == sorted(folded[:6])  # in key order
    assert before is not None and after is not None
    assert all(before <= u.initiated.replace(microsecond=0) <= after for u in listed)
    assert all(u.initiated.tzinfo is not None for u in listed)
    assert len(await store.open_uploads(bucket)) == len(names)

    part = await store.upload_part(bucket, names[0], ids[0], 1, b"done")
    await store.complete_multipart(bucket, names[0], ids[0], [part])
    await store.abort_multipart(bucket, names[1], ids[1])
    left = sorted((u.key, u.upload_id) for u in await store.open_uploads(bucket, "dir/"))
    assert left == [o for o in opened if o[1] not in ids[:2]]
    for name, upload in zip(names[2:], ids[2:], strict=True):
        await store.abort_multipart(bucket, name, upload)
    assert await store.open_uploads(bucket) == []


async def test_null_versions_list_chunk_etags_on_seaweedfs(
    store: ObjectStore, make_bucket: BucketFactory
) -> None:
    """Deviation: SeaweedFS's ListObjectVersions lists a ``null`` version (unversioned, written
    before versioning, or while Suspended) larger than one 4 MiB chunk with the ETag of its
    chunks; HEAD and ListObjectsV2 give the real one. AWS (and the fake) list the real one;
    the fake's ``chunk_etags`` mode lists exactly what SeaweedFS does."""
    bucket = await make_bucket(versioned=False)
    rng = random.Random(3)
    bodies = {"small": rng.randbytes(3 * MiB), "single": rng.randbytes(9 * MiB)}
    for key, data in bodies.items():
        await store.put(bucket, key, data)
    parts = (MIN_PART_SIZE, MIN_PART_SIZE, 1000)
    bodies["multi"] = rng.randbytes(sum(parts))
    upload = await store.create_multipart(bucket, "multi")
    done, offset = [], 0
    for number, size in enumerate(parts, start=1):
        done.append(
            await store.upload_part(
                bucket, "multi", upload, number, bodies["multi"][offset : offset + size]
            )
        )
        offset += size
    await store.complete_multipart(bucket, "multi", upload, done)
    await store.set_versioning(bucket, True)
    await store.put(bucket, "single", b"a newer, versioned write")  # the null version stays

    heads = {key: (await store.head(bucket, key, "null")).etag for key in bodies}
    assert heads["small"] == hashlib.md5(bodies["small"]).hexdigest()
    assert heads["single"] == hashlib.md5(bodies["single"]).hexdigest()
    assert heads["multi"].endswith("-3")
    listed = {v.key: v.etag for v in await versions(store, bucket) if v.version_id == "null"}
    chunks = {
        "small": chunk_etag(bodies["small"]),
        "single": chunk_etag(bodies["single"]),
        "multi": chunk_etag(bodies["multi"], parts),
    }
    assert chunks["small"] == heads["small"]  # one chunk: the MD5 itself
    assert chunks["single"].endswith("-3") and chunks["multi"].endswith("-5")
    if is_seaweedfs(store):
        assert listed == chunks
    else:
        assert listed == heads
        assert isinstance(store, MemoryStore)
        store.chunk_etags = True
        listed = {v.key: v.etag for v in await versions(store, bucket) if v.version_id == "null"}
        assert listed == chunks


async def test_head_of_one_part_tells_the_layout(
    store: ObjectStore, make_bucket: BucketFactory
) -> None:
    bucket = await make_bucket()
    data = bytes(random.Random(2).randbytes(MIN_PART_SIZE + 1000))
    upload = await store.create_multipart(bucket, "mp")
    parts = [
        await store.upload_part(bucket, "mp", upload, 1, data[:MIN_PART_SIZE]),
        await store.upload_part(bucket, "mp", upload, 2, data[MIN_PART_SIZE:]),
    ]
    await store.complete_multipart(bucket, "mp", upload, parts)
    first = await store.head(bucket, "mp", part_number=1)
    second = await store.head(bucket, "mp", part_number=2)
    assert (first.size, first.parts_count) == (MIN_PART_SIZE, 2)
    assert (second.size, second.parts_count) == (1000, 2)
    assert first.etag == (await store.head(bucket, "mp")).etag  # the whole object's ETag
    await store.put(bucket, "plain", b"12345")
    whole = await store.head(bucket, "plain", part_number=1)
    assert (whole.size, whole.parts_count) == (5, 1)


async def test_batch_delete_of_versions_and_markers(
    store: ObjectStore, make_bucket: BucketFactory
) -> None:
    bucket = await make_bucket()
    v1 = await store.put(bucket, "k", b"1")
    v2 = await store.put(bucket, "k", b"2")
    marker = await store.delete(bucket, "k")
    assert marker is not None
    failures = await store.delete_versions(
        bucket, [VersionRef(bucket, "k", marker), VersionRef(bucket, "k", v1)]
    )
    assert failures == []
    assert [v.version_id for v in await versions(store, bucket)] == [v2]
    assert await read(store, bucket, "k") == b"2"  # removing the marker undeletes
    with pytest.raises(ValueError, match="1000"):
        await store.delete_versions(bucket, [VersionRef(bucket, f"{i}", "x") for i in range(1001)])


async def test_object_lock_refuses_deletion_and_head_shows_it(
    store: ObjectStore, make_bucket: BucketFactory
) -> None:
    """Retention in force and a legal hold refuse a version's deletion (AccessDenied on
    both); HEAD of the version shows the lock, which is all gc may go by."""
    if isinstance(store, MemoryStore):
        bucket = await make_bucket("lock")
    else:
        assert isinstance(store, S3Store)
        bucket = unique_bucket("lock")
        await (await store.botocore()).create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    held, retained, free = [await store.put(bucket, k, b"x") for k in ("a", "b", "c")]
    for key in ("a", "b", "c"):
        await store.put(bucket, key, b"newer")
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    if isinstance(store, MemoryStore):
        store.lock(bucket, "a", held, legal_hold=True)
        store.lock(bucket, "b", retained, mode="GOVERNANCE", until=until)
    else:
        assert isinstance(store, S3Store)
        await (await store.botocore()).put_object_legal_hold(
            Bucket=bucket, Key="a", VersionId=held, LegalHold={"Status": "ON"}
        )
        await (await store.botocore()).put_object_retention(
            Bucket=bucket, Key="b", VersionId=retained,
            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until},
        )  # fmt: skip
    now = datetime.now(UTC)
    hold, retention = await store.head(bucket, "a", held), await store.head(bucket, "b", retained)
    assert hold.legal_hold and hold.lock_mode is None and hold.locked(now)
    assert (retention.lock_mode, retention.lock_until, retention.legal_hold) == (
        "GOVERNANCE", until, False
    )  # fmt: skip
    assert retention.locked(now) and not retention.locked(until)
    assert not (await store.head(bucket, "c", free)).locked(now)
    refs = [VersionRef(bucket, k, v) for k, v in (("a", held), ("b", retained), ("c", free))]
    failures = await store.delete_versions(bucket, refs)
    assert [(f.key, f.version_id) for f in failures] == [("a", held), ("b", retained)]
    assert all(f.reason.startswith("AccessDenied") for f in failures)
    left = [v.version_id for v in await versions(store, bucket)]
    assert held in left and retained in left and free not in left and len(left) == 5


# --- odd keys --------------------------------------------------------------------------------

ODD_KEYS = [
    "caf\u00e9/\u65e5\u672c\u8a9e/\U0001f600.txt",
    "with space/and  two",
    "trailing space ",
    "new\nline",
    "plus+and%25percent&amp<lt>",
    "q?x=1#frag",
    "/".join(["s" * 254] * 4) + "/end",  # 1,023 bytes made of <=255-byte segments
    "empty-object",
]


async def test_odd_keys_round_trip(store: ObjectStore, make_bucket: BucketFactory) -> None:
    bucket = await make_bucket()
    for key in ODD_KEYS:
        data = b"" if key == "empty-object" else key.encode()
        await store.put(bucket, key, data)
    assert await keys(store, bucket) == sorted(ODD_KEYS)
    assert await keys(store, bucket, page_size=1) == sorted(ODD_KEYS)
    listed = await versions(store, bucket, page_size=2)
    assert [v.key for v in listed] == sorted(ODD_KEYS)
    for i, key in enumerate(ODD_KEYS):
        expected = b"" if key == "empty-object" else key.encode()
        assert await read(store, bucket, key) == expected
        assert (await store.head(bucket, key)).size == len(expected)
        copy = await store.copy(VersionRef(bucket, key), bucket, f"~copy/{i}")
        assert (await store.head(bucket, f"~copy/{i}", copy)).size == len(expected)
    assert len(ODD_KEYS[6].encode()) == 1023


async def test_key_pages_are_the_object_pages_keys(
    store: ObjectStore, make_bucket: BucketFactory
) -> None:
    """The audit's first pass reads ListObjectsV2 for its keys alone: page by page the same
    keys, truncation and token as the whole pages, odd keys and a folder beside a file that
    shares its prefix included."""
    bucket = await make_bucket()
    names = [*ODD_KEYS, "a", "a/b", "a-b", "a/b/c", "a b", "a+b"]
    for key in names:
        await store.put(bucket, key, b"")
    for options in ({}, {"max_keys": 1}, {"max_keys": 3, "prefix": "a"},
                    {"max_keys": 2, "start_after": "a-b"}):  # fmt: skip
        token: str | None = None
        pages = 0
        while True:
            whole = await store.list_objects_page(bucket, continuation_token=token, **options)
            page = await store.list_keys_page(bucket, continuation_token=token, **options)
            assert page.keys == [o.key for o in whole.objects]
            assert (page.is_truncated, page.next_token) == (whole.is_truncated, whole.next_token)
            pages += 1
            if not page.is_truncated:
                break
            token = page.next_token
        assert pages > 1 or not options


async def test_a_1024_byte_key(store: ObjectStore, make_bucket: BucketFactory) -> None:
    bucket = await make_bucket()
    key = "/".join(["k" * 255] * 3 + ["k" * 254, "x"])
    assert len(key.encode()) == 1024
    await store.put(bucket, key, b"x")
    assert await keys(store, bucket) == [key]


async def test_double_slash_and_leading_slash(
    store: ObjectStore, make_bucket: BucketFactory
) -> None:
    """AWS keeps `a//b` and `/lead` exactly. SeaweedFS folds them (a documented deviation):
    the tool never normalises keys, so on SeaweedFS such keys come back changed."""
    bucket = await make_bucket()
    await store.put(bucket, "a//b", b"1")
    await store.put(bucket, "/lead", b"2")
    listed = await keys(store, bucket)
    if is_seaweedfs(store):
        assert listed == ["a/b", "lead"], "SeaweedFS changed how it stores `//` keys"
    else:
        assert listed == ["/lead", "a//b"]
