"""A light S3Store (storage/s3/light.py) serves a command's requests without building
botocore's client, and builds it, once, the first time a request needs it: a request the fast
path does not serve, a bucket name botocore's rules must address, many tasks at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from backup_my_bucket.errors import ObjectNotFound, PreconditionFailed
from backup_my_bucket.model import ObjectAttrs, Versioning, VersionRef
from backup_my_bucket.storage.iterate import iter_versions
from backup_my_bucket.storage.s3 import S3Store, fastpath

from ..conftest import S3Server, unique_bucket

pytestmark = pytest.mark.s3
BIG = 6 * 1024 * 1024 + 7  # over the multipart threshold botocore uses for uploads


@pytest.fixture
async def light(s3_server: S3Server) -> AsyncIterator[S3Store]:
    async with S3Store(s3_server.config()) as store:
        assert store._light is not None, "the test server's settings open light"
        yield store


async def test_a_commands_requests_build_no_botocore_client(
    light: S3Store, s3_store: S3Store
) -> None:
    """Bucket checks, versioning, conditional writes, reads (whole, ranged, large), HEADs,
    copies, listings and deletes, on real layouts: the fast path answers them all as
    botocore would (checked through another store), and no client is built."""
    bucket = unique_bucket("light")
    await s3_store.create_bucket(bucket)
    await s3_store.set_versioning(bucket, True)
    await light.check_bucket(bucket)
    assert await light.get_versioning(bucket) is Versioning.ENABLED
    keys = ["img0/a.bin", "img0-b.bin", "img0.idx", "odd key+%?#/é.txt"]
    versions = {key: await light.put(bucket, key, key.encode() * 3) for key in keys}
    assert all(v != "null" for v in versions.values())
    with pytest.raises(PreconditionFailed):
        await light.put(bucket, "img0.idx", b"again", if_none_match=True)
    with pytest.raises(PreconditionFailed):
        await light.put(bucket, "img0.idx", b"again", if_match='"0"')
    info = await light.head(bucket, "img0.idx")
    replaced = await light.put(bucket, "img0.idx", b"swapped", if_match=info.etag)
    big = bytes(range(256)) * (BIG // 256) + b"tail"
    await light.put(bucket, "big.bin", big)
    for key in keys:
        got = b"".join([c async for c in light.get(bucket, key, versions[key], chunk_size=5)])
        assert got == key.encode() * 3
    assert b"".join([c async for c in light.get(bucket, "img0.idx")]) == b"swapped"
    ranged = b"".join([c async for c in light.get(bucket, "big.bin", byte_range=(10, 20))])
    assert ranged == big[10:21]
    assert b"".join([c async for c in light.get(bucket, "big.bin")]) == big
    copied = await light.copy(VersionRef(bucket, "img0-b.bin", versions["img0-b.bin"]), bucket, "c")
    marker = await light.delete(bucket, "img0/a.bin")
    assert marker is not None
    listed = [v async for v in iter_versions(light, bucket)]
    theirs = [v async for v in iter_versions(s3_store, bucket)]
    assert listed == theirs
    assert {(v.key, v.version_id) for v in listed} >= {
        ("img0.idx", replaced),
        ("c", copied),
        ("img0/a.bin", marker),
    }
    served = light._fast.served if light._fast is not None else {}
    for op in ("HeadBucket", "GetBucketVersioning", "PutObject", "GetObject", "HeadObject",
               "CopyObject", "ListObjectVersions", "DeleteObject"):  # fmt: skip
        assert served[op] > 0, op
    assert light.clients_built == 0


async def test_a_request_the_fast_path_does_not_serve_builds_the_client_once(
    light: S3Store, s3_store: S3Store
) -> None:
    bucket = unique_bucket("light")
    await s3_store.create_bucket(bucket)
    await s3_store.put(bucket, "k", b"v", attrs=ObjectAttrs(metadata={"a": "1"}))
    await light.check_bucket(bucket)
    assert light.clients_built == 0
    tags = await asyncio.gather(*(light.get_tags(bucket, "k") for _ in range(20)))
    assert tags == [{}] * 20 and light.clients_built == 1
    assert (await light.head(bucket, "k")).attrs.metadata == {"a": "1"}
    await light.put(bucket, "k2", b"x", attrs=ObjectAttrs(content_type="text/plain"))
    assert (await s3_store.head(bucket, "k2")).attrs.content_type == "text/plain"
    assert light.clients_built == 1
    client = await light.botocore()
    sessions = list((client._endpoint.http_session._sessions or {}).values())
    assert sessions, "botocore's requests went through its own HTTP sessions"
    await light.close()
    assert all(session.closed for session in sessions)


async def test_many_tasks_asking_at_once_build_one_client(s3_server: S3Server) -> None:
    bucket = unique_bucket("light")
    async with S3Store(s3_server.config()) as store:
        await store.create_bucket(bucket)  # CreateBucket: botocore's
        assert store.clients_built == 1
    async with S3Store(s3_server.config()) as store:
        results = await asyncio.gather(
            *(store.get_lifecycle(bucket) for _ in range(16)),
            *(store.get_tags(bucket, "nothing-here") for _ in range(4)),
            return_exceptions=True,
        )
        assert results[:16] == [[]] * 16
        assert all(isinstance(r, ObjectNotFound) for r in results[16:])
        assert store.clients_built == 1


async def test_a_bucket_name_for_botocores_rules_builds_the_client(
    light: S3Store, s3_store: S3Store
) -> None:
    """A name the light store does not address itself ("--" here) is addressed by botocore's
    rules: the client is built, and the fast path goes on at botocore's address."""
    bucket = unique_bucket("light").replace("-", "--", 1)
    await s3_store.create_bucket(bucket)
    await s3_store.put(bucket, "k", b"v")
    assert light.clients_built == 0
    assert b"".join([c async for c in light.get(bucket, "k")]) == b"v"
    assert light.clients_built == 1
    assert light._fast is not None and light._fast.served["GetObject"] == 1


async def test_an_object_over_the_fast_limit_is_read_by_botocore(
    light: S3Store, s3_store: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A GET whose answer is larger than the fast path reads is cut at its headers and sent
    through botocore, which streams it; later GETs of the store go there at once."""
    monkeypatch.setattr(fastpath, "BODY_LIMIT", 4096)
    bucket = unique_bucket("light")
    await s3_store.create_bucket(bucket)
    data = bytes(range(256)) * 40
    await s3_store.put(bucket, "big", data)
    await s3_store.put(bucket, "small", b"s")
    assert b"".join([c async for c in light.get(bucket, "big", chunk_size=999)]) == data
    assert light.clients_built == 1 and light._fast is not None and not light._fast.gets
    assert b"".join([c async for c in light.get(bucket, "small")]) == b"s"
    assert light._fast.served["GetObject"] == 0 and light._fast.enabled
