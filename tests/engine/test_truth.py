"""What listings cannot tell (engine/confirm.py), on SeaweedFS and on the fake emulating it.

SeaweedFS lists chunk ETags for ``null`` versions over 4 MiB (unversioned buckets, writes
from before versioning); the fake does the same here (``chunk_etags``), so every test runs
the same scenario on both. Objects of 5, 12 and 40 MiB, single PUT and multipart, beside a
folder-plus-suffix layout; targets unversioned, as a restored bucket usually is.
"""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backup_my_bucket.clock import SYSTEM_CLOCK, Clock, ManualClock
from backup_my_bucket.engine.restore import Reason
from backup_my_bucket.engine.sync import SyncOptions, sync
from backup_my_bucket.engine.verify import verify_versions
from backup_my_bucket.model import NULL_VERSION, ObjectAttrs, S3Url, VersionRef
from backup_my_bucket.storage.memory import MemoryStore
from backup_my_bucket.storage.protocol import ObjectStore
from backup_my_bucket.storage.s3 import S3Store

from ..conftest import BucketFactory
from ..samples import ATTRS, TAGS
from .restore_helpers import desired_at, live, read, restore

MiB = 1024 * 1024
PART = 5 * MiB
SIZES = (5, 12, 40)
SMALL = ["img0-0000.jpg", "img0.idx", "img0/0000.jpg", "img0/0001.jpg"]


@pytest.fixture(params=["memory", pytest.param("seaweedfs", marks=pytest.mark.s3)])
def store(request: pytest.FixtureRequest) -> ObjectStore:
    """Overrides the suite's: the fake lists SeaweedFS's chunk ETags, as the server does."""
    if request.param == "memory":
        fake = MemoryStore(ManualClock(datetime.now(UTC)))
        fake.chunk_etags = True
        return fake
    s3: ObjectStore = request.getfixturevalue("s3_store")
    return s3


async def put_multipart(store: ObjectStore, bucket: str, key: str, data: bytes) -> None:
    upload = await store.create_multipart(bucket, key, attrs=ATTRS, tags=TAGS)
    parts = []
    for number, start in enumerate(range(0, len(data), PART), start=1):
        chunk = data[start : start + PART]
        parts.append(await store.upload_part(bucket, key, upload, number, chunk))
    await store.complete_multipart(bucket, key, upload, parts)


async def fill(store: ObjectStore, bucket: str, seed: int = 1) -> dict[str, bytes]:
    """5, 12 and 40 MiB objects, single PUT and multipart (5 MiB parts), and small ones."""
    rng = random.Random(seed)
    bodies: dict[str, bytes] = {}
    for size in SIZES:
        single, multi = f"single-{size}", f"multi-{size}"
        bodies[single], bodies[multi] = rng.randbytes(size * MiB), rng.randbytes(size * MiB)
        await store.put(bucket, single, bodies[single], attrs=ATTRS, tags=TAGS)
        await put_multipart(store, bucket, multi, bodies[multi])
    for key in SMALL:
        bodies[key] = key.encode()
        await store.put(bucket, key, bodies[key], attrs=ATTRS)
    return bodies


async def contents(store: ObjectStore, bucket: str) -> dict[str, bytes]:
    return {v.key: await read(store, bucket, v.key) for v in await live(store, bucket)}


def clock(store: ObjectStore) -> Clock:
    return store.clock if isinstance(store, MemoryStore) else SYSTEM_CLOCK


def now(store: ObjectStore) -> datetime:
    return clock(store).now()


async def next_second(store: ObjectStore) -> None:
    """S3 stamps whole seconds: what is written after this is strictly newer (the fake's
    clock is moved instead of waited for)."""
    await clock(store).sleep(1.05)


# --- restore and its verification ----------------------------------------------------------


async def test_restore_into_an_unversioned_bucket_verifies_and_a_rerun_copies_nothing(
    store: ObjectStore, make_bucket: BucketFactory, tmp_path: Path
) -> None:
    bak, target = await make_bucket("bak"), await make_bucket("tgt", versioned=False)
    bodies = await fill(store, bak)
    await next_second(store)
    point = desired_at(store, S3Url(bak), now(store))
    first = await restore(store, S3Url(bak), S3Url(target), point, journal_dir=tmp_path)
    assert first.failures == () and first.verified
    assert first.copied == len(bodies) and first.failed == 0
    assert await contents(store, target) == bodies
    listed = {v.key: v.etag for v in await live(store, target)}
    if isinstance(store, S3Store):  # what made verification fail: the listing is not the truth
        assert listed["single-12"] != hashlib.md5(bodies["single-12"]).hexdigest()

    again = await restore(
        store, S3Url(bak), S3Url(target), desired_at(store, S3Url(bak), now(store)),
        journal_dir=tmp_path,
    )  # fmt: skip
    assert (again.copied, again.failed, again.deleted) == (0, 0, 0) and again.verified
    assert again.skipped == len(bodies)
    # every restored object is newer than its version: headers compared, HEAD of both (the
    # target's HEAD also settles its chunk ETag); never more than 2 requests per key
    assert again.checks <= 2 * len(bodies)
    assert await contents(store, target) == bodies


async def test_restore_from_null_versions_written_before_versioning(
    store: ObjectStore, make_bucket: BucketFactory, tmp_path: Path
) -> None:
    """A backup bucket used unversioned first: its oldest objects are ``null`` versions that
    the listing (so the snapshot) records with chunk ETags."""
    bak = await make_bucket("bak", versioned=False)
    bodies = await fill(store, bak)
    await store.set_versioning(bak, True)
    bodies["single-5"] = b"a versioned write on top of the null version"
    await store.put(bak, "single-5", bodies["single-5"])
    await next_second(store)
    at = now(store)
    for versioned in (False, True):
        target = await make_bucket("tgt", versioned=versioned)
        for run in range(2):
            done = await restore(
                store, S3Url(bak), S3Url(target), desired_at(store, S3Url(bak), at),
                journal_dir=tmp_path,
            )  # fmt: skip
            assert done.failures == () and done.verified, (versioned, run)
            assert done.copied == (0 if run else len(bodies)), (versioned, run)
        assert await contents(store, target) == bodies


async def test_a_real_difference_is_still_restored(
    store: ObjectStore, make_bucket: BucketFactory, tmp_path: Path
) -> None:
    """Trusting nothing would skip nothing; trusting the listing would skip this: bytes of
    the same size under an untrusted (chunk) ETag on both sides, really different."""
    bak, target = await make_bucket("bak"), await make_bucket("tgt", versioned=False)
    bodies = await fill(store, bak)
    await next_second(store)
    at, journal = now(store), {"journal_dir": tmp_path}  # SeaweedFS part copies: proven by it
    await restore(store, S3Url(bak), S3Url(target), desired_at(store, S3Url(bak), at), **journal)
    other = bytes(reversed(bodies["single-12"]))
    await store.put(target, "single-12", other, attrs=ATTRS, tags=TAGS)
    done = await restore(
        store, S3Url(bak), S3Url(target), desired_at(store, S3Url(bak), at), **journal
    )
    assert done.copied == 1 and done.verified and done.plan.by_reason[Reason.CHANGED.value] == 1
    assert await read(store, target, "single-12") == bodies["single-12"]


# --- verify ----------------------------------------------------------------------------------


async def test_verify_trusts_chunk_etags_only_as_far_as_they_go(
    store: ObjectStore, make_bucket: BucketFactory
) -> None:
    """A snapshot of null versions records chunk ETags, HEAD shows the MD5: not a mismatch.
    Other bytes of the same size written over the null version are."""
    bak = await make_bucket("bak", versioned=False)
    bodies = await fill(store, bak)
    await store.set_versioning(bak, True)
    await next_second(store)
    rows = [v async for v in desired_at(store, S3Url(bak), now(store))]
    assert {v.version_id for v in rows} == {NULL_VERSION}
    assert any("-" in (v.etag or "") for v in rows)

    async def check() -> list[tuple[str, str]]:
        result = await verify_versions(store, S3Url(bak), _aiter(rows), read_share=1.0)
        assert result.checked == len(bodies)
        return [(p.key, p.problem) for p in result.problems]

    assert await check() == []
    await store.set_versioning(bak, False)  # Suspended: a write replaces the null version
    await store.put(bak, "single-12", bytes(reversed(bodies["single-12"])))
    await store.put(bak, "img0.idx", b"IMG0.IDX")  # small: the listing's ETag is the MD5
    await store.set_versioning(bak, True)
    assert await check() == [("img0.idx", "etag"), ("single-12", "etag")]


async def _aiter(items):  # type: ignore[no-untyped-def]
    for item in items:
        yield item


# --- sync --------------------------------------------------------------------------------------


async def test_sync_of_an_unversioned_source_reruns_without_requests(
    store: ObjectStore, make_bucket: BucketFactory
) -> None:
    src, bak = await make_bucket("src", versioned=False), await make_bucket("bak")
    bodies = await fill(store, src)
    await next_second(store)
    first = await sync(store, S3Url(src), store, S3Url(bak), SyncOptions(workers=4))
    assert (first.copied, first.failed) == (len(bodies), 0)
    again = await sync(store, S3Url(src), store, S3Url(bak), SyncOptions(workers=4))
    assert (again.copied, again.skipped, again.checks) == (0, len(bodies), 0)
    await next_second(store)
    await store.put(src, "single-12", bytes(reversed(bodies["single-12"])))  # same size
    changed = await sync(store, S3Url(src), store, S3Url(bak), SyncOptions(workers=4))
    # the source is read with ListObjectsV2, whose ETags are the objects' own (not the
    # chunk ETags of its version listing): the change shows without a HEAD
    assert changed.copied == 1 and changed.checks == 0
    assert await read(store, bak, "single-12") == bytes(reversed(bodies["single-12"]))


BROKEN = ObjectAttrs(content_type="application/x-broken", metadata={"origin": "bug"})


async def test_a_metadata_only_change_is_backed_up_and_rolled_back(
    store: ObjectStore, make_bucket: BucketFactory
) -> None:
    """copy-object onto itself with REPLACE: same bytes, size and ETag; only LastModified
    and the headers tell. sync backs it up, a rollback undoes it, reruns do nothing."""
    src, bak = await make_bucket("src", versioned=False), await make_bucket("bak")
    bodies = await fill(store, src)
    await next_second(store)
    await sync(store, S3Url(src), store, S3Url(bak), SyncOptions(workers=4))
    await next_second(store)
    point = now(store)
    await next_second(store)
    for key in ("single-12", "img0.idx"):
        await store.copy(VersionRef(src, key), src, key, attrs=BROKEN)
    assert (await store.head(src, "img0.idx")).attrs.content_type == "application/x-broken"
    await next_second(store)  # a copy in the same second would make the rerun check (a tie)

    synced = await sync(store, S3Url(src), store, S3Url(bak), SyncOptions(workers=4))
    assert (synced.copied, synced.failed) == (2, 0)
    assert synced.checks <= 2 * 2 + 1  # HEAD of both for the two, and maybe a chunk ETag
    assert dict((await store.head(bak, "img0.idx")).attrs.metadata) == {"origin": "bug"}
    rerun = await sync(store, S3Url(src), store, S3Url(bak), SyncOptions(workers=4))
    assert (rerun.copied, rerun.checks) == (0, 0)

    back = await restore(store, S3Url(bak), S3Url(src), desired_at(store, S3Url(bak), point))
    assert back.failed == 0 and back.verified
    assert back.plan.by_reason[Reason.ATTRIBUTES_CHANGED.value] == 2
    # Deviation: SeaweedFS's UploadPartCopy gives the backup's multipart copies other ETags
    # than the source's originals (the same bytes): the first rollback copies them once more
    # (a part copy of a part copy keeps the ETag, so never again). AWS keeps the ETag.
    multipart = 3 if isinstance(store, S3Store) else 0
    assert back.plan.by_reason.get(Reason.CHANGED.value, 0) == multipart
    assert back.copied == 2 + multipart
    for key in ("single-12", "img0.idx"):
        info = await store.head(src, key)
        assert info.attrs.content_type == ATTRS.content_type
        assert dict(info.attrs.metadata) == dict(ATTRS.metadata)
    assert await contents(store, src) == bodies
    again = await restore(store, S3Url(bak), S3Url(src), desired_at(store, S3Url(bak), point))
    assert (again.copied, again.failed) == (0, 0) and again.verified


async def test_tags_only_with_compare_tags(store: ObjectStore, make_bucket: BucketFactory) -> None:
    """A change of tags alone moves no LastModified: only --compare-tags sees it (2 tag
    reads per unchanged key), in sync as in a rollback restore."""
    src, bak = await make_bucket("src", versioned=False), await make_bucket("bak")
    await store.put(src, "doc", b"same bytes", attrs=ATTRS, tags=TAGS)
    await next_second(store)
    await sync(store, S3Url(src), store, S3Url(bak), SyncOptions(workers=2))
    await next_second(store)
    point = now(store)
    await next_second(store)
    await retag(store, src, "doc", {"project": "changed"})

    plain = await sync(store, S3Url(src), store, S3Url(bak), SyncOptions(workers=2))
    assert (plain.copied, plain.checks) == (0, 0)  # the documented limit
    tagged = SyncOptions(workers=2, compare_tags=True)
    noticed = await sync(store, S3Url(src), store, S3Url(bak), tagged)
    assert (noticed.copied, noticed.checks) == (1, 2)
    assert await store.get_tags(bak, "doc") == {"project": "changed"}

    await retag(store, src, "doc", {"tier": "lost"})
    desired = desired_at(store, S3Url(bak), point)
    kept = await restore(store, S3Url(bak), S3Url(src), desired)
    assert kept.copied == 0
    desired = desired_at(store, S3Url(bak), point)
    back = await restore(store, S3Url(bak), S3Url(src), desired, compare_tags=True)
    assert back.copied == 1 and back.plan.by_reason[Reason.TAGS_CHANGED.value] == 1
    assert await store.get_tags(src, "doc") == TAGS


async def retag(store: ObjectStore, bucket: str, key: str, tags: dict[str, str]) -> None:
    if isinstance(store, MemoryStore):
        store.set_tags(bucket, key, tags)
    else:
        assert isinstance(store, S3Store)
        tag_set = [{"Key": k, "Value": v} for k, v in tags.items()]
        await (await store.botocore()).put_object_tagging(
            Bucket=bucket, Key=key, Tagging={"TagSet": tag_set}
        )


async def test_a_source_whose_versioning_cannot_be_read_is_read_from_its_versions() -> None:
    """s3:GetBucketVersioning is optional on the source (docs/operations.md): denied, the
    source is listed by its versions, whose chunk ETags cost a HEAD where ListObjectsV2's
    cost none; the result is the same."""
    for denied in (False, True):
        start = datetime(2026, 1, 1, tzinfo=UTC)
        store = MemoryStore(clock=ManualClock(start, tick=timedelta(seconds=1)))
        store.chunk_etags = True
        for bucket in ("src", "bak"):
            await store.create_bucket(bucket)
        await store.set_versioning("bak", True)
        if denied:
            store.denied.add(("src", "get_versioning"))
        body = random.Random(7).randbytes(12 * MiB)
        await store.put("src", "big", body)
        assert (await sync(store, S3Url("src"), store, S3Url("bak"), SyncOptions())).copied == 1
        await store.put("src", "big", bytes(reversed(body)))  # same size, new bytes
        changed = await sync(store, S3Url("src"), store, S3Url("bak"), SyncOptions())
        assert (changed.copied, changed.checks) == (1, 1 if denied else 0), denied
        assert await read(store, "bak", "big") == bytes(reversed(body))
