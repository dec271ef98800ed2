"""The store on another event loop than asyncio's own: an application that imports us may
run uvloop, whose transports are not subclasses of asyncio.Transport."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from backup_my_bucket.model import VersionRef
from backup_my_bucket.storage.s3 import S3Store

from ..conftest import S3Server, unique_bucket

pytestmark = pytest.mark.s3


def test_the_fast_path_serves_requests_on_uvloop(s3_server: S3Server) -> None:
    async def round_trip() -> None:
        assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
        async with S3Store(s3_server.config()) as store:
            bucket = unique_bucket("uvloop")
            await store.create_bucket(bucket)
            await store.set_versioning(bucket, True)
            version = await store.put(bucket, "a/b c", b"data")
            await store.copy(VersionRef(bucket, "a/b c", version), bucket, "copy")
            page = await store.list_versions_page(bucket)
            assert sorted(e.key for e in page.entries) == ["a/b c", "copy"]
            assert b"".join([c async for c in store.get(bucket, "copy")]) == b"data"
            fast = store._fast
            assert fast is not None and fast.enabled
            assert fast.served["CopyObject"] == 1
            assert fast.served["ListObjectVersions"] == 1

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(round_trip())
