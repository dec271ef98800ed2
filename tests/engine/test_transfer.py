"""copy_version: bytes, content headers, metadata, tags and storage class survive every path."""

from __future__ import annotations

import logging
import random
import tracemalloc
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from backup_my_bucket.engine import transfer
from backup_my_bucket.engine.transfer import (
    ByteBudget,
    choose_part_size,
    copy_version,
    multipart_parts,
    split_ranges,
)
from backup_my_bucket.errors import ObjectNotFound, StorageError
from backup_my_bucket.model import CompletedPart, ObjectAttrs, VersionRef
from backup_my_bucket.storage.memory import MemoryStore
from backup_my_bucket.storage.protocol import MIN_PART_SIZE, ObjectStore
from backup_my_bucket.storage.s3 import S3Store

from ..conftest import BucketFactory, is_seaweedfs, unique_bucket
from ..samples import ATTRS, TAGS

MiB = 1024 * 1024
BIG = random.Random(11).randbytes(11 * MiB)  # > 2 parts of S3's minimum 5 MiB


async def read(store: ObjectStore, bucket: str, key: str) -> bytes:
    return b"".join([c async for c in store.get(bucket, key)])


async def assert_same(
    src_store: ObjectStore, src: str, dst_store: ObjectStore, dst: str, key: str, data: bytes
) -> None:
    """Bytes, every content header, user metadata and tags, as the target reports them."""
    got = await dst_store.head(dst, key)
    want = await src_store.head(src, key)
    assert await read(dst_store, dst, key) == data
    assert got.size == len(data)
    assert got.attrs == want.attrs  # content headers, metadata and storage class
    assert await dst_store.get_tags(dst, key) == await src_store.get_tags(src, key)


def test_part_arithmetic() -> None:
    assert multipart_parts("abc123-7") == 7
    assert multipart_parts("abc123") is None and multipart_parts(None) is None
    assert split_ranges(11, 5) == [(0, 4), (5, 9), (10, 10)]
    assert split_ranges(0, 5) == [(0, -1)]
    assert choose_part_size(100) == transfer.DEFAULT_PART_SIZE
    assert choose_part_size(100, 1) == MIN_PART_SIZE
    big = 5 * 1024**4  # 5 TiB: parts must grow to stay within 10,000
    assert choose_part_size(big) * 10_000 >= big


@pytest.mark.parametrize("storage_class", ["STANDARD", "STANDARD_IA"])
async def test_server_side_copy_keeps_everything(
    store: ObjectStore, make_bucket: BucketFactory, storage_class: str
) -> None:
    src, dst = await make_bucket("src"), await make_bucket("dst")
    attrs = ObjectAttrs(**{**_fields(ATTRS), "storage_class": storage_class})
    vid = await store.put(src, "doc", b"hello", attrs=attrs, tags=TAGS)
    await store.put(src, "doc", b"newer")  # the copy must take the version asked for
    for known in (storage_class, None):  # from a listing, or unknown (costs a HEAD)
        new = await copy_version(
            store, VersionRef(src, "doc", vid), store, dst, "doc",
            size=5, etag=None, same_endpoint=True, storage_class=known,
        )  # fmt: skip
        info = await store.head(dst, "doc", new)
        assert await read(store, dst, "doc") == b"hello"
        assert info.etag == "5d41402abc4b2a76b9719d911017c592"  # MD5 kept: ETags compare
        assert info.attrs.content_type == ATTRS.content_type
        assert dict(info.attrs.metadata) == dict(ATTRS.metadata)
        assert info.attrs.expires == ATTRS.expires
        assert (info.attrs.storage_class or "STANDARD") == storage_class
        assert await store.get_tags(dst, "doc") == TAGS


def _fields(attrs: ObjectAttrs) -> dict[str, object]:
    return {name: getattr(attrs, name) for name in attrs.__slots__}  # type: ignore[attr-defined]


async def test_single_part_source_above_threshold_copies_in_parts(
    store: ObjectStore, make_bucket: BucketFactory
) -> None:
    src, dst = await make_bucket("src"), await make_bucket("dst")
    attrs = ObjectAttrs(**{**_fields(ATTRS), "storage_class": "STANDARD_IA"})
    await store.put(src, "big", BIG, attrs=attrs, tags=TAGS)
    listed = await store.head(src, "big")
    await copy_version(
        store, VersionRef(src, "big"), store, dst, "big", size=len(BIG), etag=listed.etag,
        same_endpoint=True, multipart_threshold=6 * MiB, part_size=5 * MiB,
        storage_class="STANDARD_IA",
    )  # fmt: skip
    await assert_same(store, src, store, dst, "big", BIG)
    assert multipart_parts((await store.head(dst, "big")).etag) == 3


async def _multipart_source(store: ObjectStore, bucket: str, key: str) -> str:
    """BIG uploaded in parts of 6 MiB + 5 MiB: a layout no default part size reproduces."""
    upload = await store.create_multipart(bucket, key, attrs=ATTRS, tags=TAGS)
    parts = [
        await store.upload_part(bucket, key, upload, 1, BIG[: 6 * MiB]),
        await store.upload_part(bucket, key, upload, 2, BIG[6 * MiB :]),
    ]
    return await store.complete_multipart(bucket, key, upload, parts)


@pytest.mark.parametrize("same_endpoint", [True, False])
async def test_multipart_source_keeps_its_part_layout(
    store: ObjectStore, make_bucket: BucketFactory, same_endpoint: bool
) -> None:
    src, dst = await make_bucket("src"), await make_bucket("dst")
    await _multipart_source(store, src, "mp")
    source = await store.head(src, "mp")
    await copy_version(
        store, VersionRef(src, "mp"), store, dst, "mp", size=len(BIG), etag=source.etag,
        same_endpoint=same_endpoint, storage_class="STANDARD",
    )  # fmt: skip
    await assert_same(store, src, store, dst, "mp", BIG)
    copied = await store.head(dst, "mp")
    assert [(await store.head(dst, "mp", part_number=n)).size for n in (1, 2)] == [6 * MiB, 5 * MiB]
    if is_seaweedfs(store) and same_endpoint:
        # SeaweedFS's UploadPartCopy part ETags are not the part's MD5, so the whole ETag
        # differs even with the same layout (sync then falls back: see docs/design.md)
        assert multipart_parts(copied.etag) == 2
    else:
        assert copied.etag == source.etag  # same layout, same ETag: "unchanged" stays exact


async def test_cross_endpoint_small_object_is_put_whole(
    store: ObjectStore, make_bucket: BucketFactory
) -> None:
    src, dst = await make_bucket("src"), await make_bucket("dst")
    await store.put(src, "s", b"small", attrs=ATTRS, tags=TAGS)
    await store.put(src, "empty", b"", attrs=ATTRS)
    for key, data in (("s", b"small"), ("empty", b"")):
        await copy_version(
            store, VersionRef(src, key), store, dst, key, size=len(data), same_endpoint=False
        )
        await assert_same(store, src, store, dst, key, data)


class _FailingPartStore(MemoryStore):
    async def upload_part_copy(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        number: int,
        source: VersionRef,
        byte_range: tuple[int, int],
    ) -> CompletedPart:
        if number == 2:
            raise StorageError("part 2 refused")
        return await super().upload_part_copy(bucket, key, upload_id, number, source, byte_range)


async def test_a_failed_part_aborts_the_upload() -> None:
    store = _FailingPartStore()
    await store.create_bucket("src")
    await store.create_bucket("dst")
    await store.set_versioning("dst", True)
    await store.put("src", "big", BIG)
    with pytest.raises(StorageError, match="part 2"):
        await copy_version(
            store, VersionRef("src", "big"), store, "dst", "big", size=len(BIG),
            same_endpoint=True, multipart_threshold=6 * MiB, part_size=5 * MiB,
        )  # fmt: skip
    assert store._buckets["dst"].uploads == {}
    assert store.snapshot_state("dst") == {}


async def test_byte_budget_bounds_what_is_held() -> None:
    budget = ByteBudget(10)
    async with budget.hold(6):
        assert budget.held == 6
    async with budget.hold(100):  # larger than the budget: holds all of it, alone
        assert budget.held == 10
    assert budget.held == 0 and budget.peak == 10


@pytest.mark.s3
async def test_cross_endpoint_streams_with_bounded_memory(
    s3_store: S3Store,
    second_s3_store: S3Store,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two SeaweedFS servers: the bytes pass through us, a few parts at a time."""
    for name in (None, "botocore", "botocore.endpoint"):  # a --debug test may have left
        caplog.set_level(logging.WARNING, logger=name)  # these on: request logs repr bodies
    src, dst = unique_bucket("xsrc"), unique_bucket("xdst")
    await s3_store.create_bucket(src)
    await second_s3_store.create_bucket(dst)
    await second_s3_store.set_versioning(dst, True)
    data = random.Random(5).randbytes(41 * MiB)
    await s3_store.put(src, "big", data, attrs=ATTRS, tags=TAGS)
    await s3_store.put(src, "small", b"tiny", attrs=ATTRS, tags=TAGS)
    budget = ByteBudget(12 * MiB)  # two 5 MiB parts at a time
    monkeypatch.setattr(transfer, "memory_budget", lambda: budget)
    del data
    tracemalloc.start()
    try:
        for key, size in (("big", 41 * MiB), ("small", 4)):
            await copy_version(
                s3_store, VersionRef(src, key), second_s3_store, dst, key, size=size,
                same_endpoint=False, multipart_threshold=8 * MiB, part_size=5 * MiB,
            )  # fmt: skip
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert budget.peak <= 12 * MiB
    # each part in flight is held about twice (our buffer, the HTTP layer's): far below 41 MiB
    assert peak < 2 * budget.limit + 4 * MiB, f"copying 41 MiB held {peak / MiB:.1f} MiB"
    for key in ("big", "small"):
        want = b"".join([c async for c in s3_store.get(src, key)])
        await assert_same(s3_store, src, second_s3_store, dst, key, want)


async def test_a_listing_etag_is_checked_by_head(
    store: ObjectStore, make_bucket: BucketFactory
) -> None:
    """SeaweedFS lists chunk ETags (``…-3``) for single PUTs in unversioned buckets: a copy
    decides its path from HEAD, so such an object is still one CopyObject, not parts."""
    src, dst = await make_bucket("src", versioned=False), await make_bucket("dst")
    await store.put(src, "big", BIG, attrs=ATTRS, tags=TAGS)
    md5 = (await store.head(src, "big")).etag
    await copy_version(
        store, VersionRef(src, "big"), store, dst, "big", size=len(BIG),
        etag="0123456789abcdef0123456789abcdef-3", same_endpoint=True, storage_class="STANDARD",
    )  # fmt: skip
    assert (await store.head(dst, "big")).etag == md5
    await assert_same(store, src, store, dst, "big", BIG)


ODD_KEYS = [
    "caf\u00e9/\u65e5\u672c\u8a9e/\U0001f600.txt",
    "with space/and  two",
    "trailing space ",
    "new\nline",
    "plus+and%25percent&amp<lt>",
    "q?x=1#frag",
    "tilde~star*quote'(paren)",
]


@pytest.mark.s3
async def test_fast_copy_signs_every_odd_key(s3_store: S3Store) -> None:
    """CopyObject's fast path (no botocore pipeline) must really be taken, odd keys and
    versions included: a wrong signature would silently fall back to the slow path."""
    fast = s3_store._fast
    assert fast is not None
    src, dst = unique_bucket("fsrc"), unique_bucket("fdst")
    for bucket in (src, dst):
        await s3_store.create_bucket(bucket)
        await s3_store.set_versioning(bucket, True)
    before = fast.copies
    for key in ODD_KEYS:
        old = await s3_store.put(src, key, b"old " + key.encode(), attrs=ATTRS, tags=TAGS)
        await s3_store.put(src, key, b"new")
        new = await s3_store.copy(VersionRef(src, key, old), dst, key)
        assert new != "null"
        assert await read(s3_store, dst, key) == b"old " + key.encode()
        assert await s3_store.get_tags(dst, key) == TAGS
    assert fast.copies - before == len(ODD_KEYS)
    with pytest.raises(ObjectNotFound):  # errors still come through botocore's translation
        await s3_store.copy(VersionRef(src, "no-such-key"), dst, "x")


@pytest.mark.s3
async def test_fast_listing_signs_every_odd_prefix_and_marker(s3_store: S3Store) -> None:
    """ListObjectVersions' fast path must really be taken with odd prefixes and markers, and
    answer exactly what botocore's path answers."""
    fast = s3_store._fast
    assert fast is not None
    bucket = unique_bucket("flist")
    await s3_store.create_bucket(bucket)
    await s3_store.set_versioning(bucket, True)
    for key in ODD_KEYS:
        await s3_store.put(bucket, key, b"1")
        await s3_store.put(bucket, key, b"2")
    await s3_store.delete(bucket, ODD_KEYS[0])
    first = await s3_store.list_versions_page(bucket, max_keys=3)
    assert first.is_truncated and first.next_key_marker and first.next_version_id_marker
    queries = [{"prefix": key} for key in ODD_KEYS] + [{"key_marker": key} for key in ODD_KEYS]
    queries.append(
        {"key_marker": first.next_key_marker, "version_id_marker": first.next_version_id_marker}
    )
    before = fast.listings
    fast_pages = [await s3_store.list_versions_page(bucket, max_keys=2, **q) for q in queries]
    assert fast.listings - before == len(queries)
    s3_store._fast = None
    try:
        slow_pages = [await s3_store.list_versions_page(bucket, max_keys=2, **q) for q in queries]
    finally:
        s3_store._fast = fast
    assert fast_pages == slow_pages
    assert all(page.entries for page in fast_pages[: len(ODD_KEYS)])


@pytest.mark.s3
async def test_fast_head_answers_what_botocore_answers(s3_store: S3Store) -> None:
    """HEAD's fast path must really be taken (odd keys, version ids, null, locks, multipart)
    and read every field exactly as botocore's path does; errors still go through botocore."""
    fast = s3_store._fast
    assert fast is not None
    bucket = unique_bucket("fhead")
    await (await s3_store.botocore()).create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    refs: list[tuple[str, str | None]] = []
    for key in ODD_KEYS:
        old = await s3_store.put(bucket, key, b"old " + key.encode(), attrs=ATTRS, tags=TAGS)
        await s3_store.put(bucket, key, b"new")
        refs += [(key, old), (key, None)]
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    locked = refs[0][1]
    await (await s3_store.botocore()).put_object_retention(
        Bucket=bucket, Key=ODD_KEYS[0], VersionId=locked,
        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until},
    )  # fmt: skip
    await (await s3_store.botocore()).put_object_legal_hold(
        Bucket=bucket, Key=ODD_KEYS[1], VersionId=refs[2][1], LegalHold={"Status": "ON"}
    )
    plain = unique_bucket("fhead")  # unversioned: null versions
    await s3_store.create_bucket(plain)
    await s3_store.put(plain, "obj", b"x" * 10, attrs=ObjectAttrs(storage_class="STANDARD"))
    before = fast.heads
    fast_heads = [await s3_store.head(bucket, k, v) for k, v in refs]
    fast_heads += [await s3_store.head(plain, "obj", v) for v in (None, "null")]
    assert fast.heads - before == len(refs) + 2
    s3_store._fast = None
    try:
        slow_heads = [await s3_store.head(bucket, k, v) for k, v in refs]
        slow_heads += [await s3_store.head(plain, "obj", v) for v in (None, "null")]
    finally:
        s3_store._fast = fast
    assert fast_heads == slow_heads
    assert fast_heads[0].lock_until == until and fast_heads[0].locked(datetime.now(UTC))
    assert fast_heads[2].legal_hold and fast_heads[4].attrs == replace(ATTRS, storage_class=None)
    assert fast_heads[4].tag_count == len(TAGS) and fast_heads[5].tag_count == 0
    # Deviation: SeaweedFS's PutObjectRetention and PutObjectLegalHold reset the version's
    # Content-Type to application/octet-stream (the other attributes stay); AWS keeps it
    for locked_head in (fast_heads[0], fast_heads[2]):
        octets = replace(ATTRS, content_type="application/octet-stream", storage_class=None)
        assert locked_head.attrs == octets
    with pytest.raises(ObjectNotFound):  # a delete marker, a missing key: botocore's answer
        await s3_store.head(bucket, "no-such-key")


@pytest.mark.s3
async def test_fast_object_listing_answers_what_botocore_answers(s3_store: S3Store) -> None:
    """ListObjectsV2 (the listing audit's pages) takes the fast path with odd prefixes, start
    markers and continuation tokens, and answers exactly what botocore's path answers."""
    fast = s3_store._fast
    assert fast is not None
    bucket = unique_bucket("olist")
    await s3_store.create_bucket(bucket)
    for key in ODD_KEYS:
        await s3_store.put(bucket, key, key.encode())
    first = await s3_store.list_objects_page(bucket, max_keys=2)
    assert first.is_truncated and first.next_token
    queries: list[dict[str, str]] = [{"prefix": key} for key in ODD_KEYS]
    queries += [{"start_after": key} for key in ODD_KEYS]
    queries.append({"continuation_token": first.next_token})
    before = fast.listings
    fast_pages = [await s3_store.list_objects_page(bucket, max_keys=2, **q) for q in queries]
    assert fast.listings - before == len(queries)
    s3_store._fast = None
    try:
        slow_pages = [await s3_store.list_objects_page(bucket, max_keys=2, **q) for q in queries]
    finally:
        s3_store._fast = fast
    assert fast_pages == slow_pages
    assert all(page.objects for page in fast_pages[: len(ODD_KEYS)])
