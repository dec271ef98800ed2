"""With ``bucket_facts_ttl`` (the CLI's stores: FRESH_FOR), S3Store asks a bucket's HeadBucket
and versioning status once per that many seconds: a command's phases (sync, the catalog, the
snapshot) each ask, and on AWS each ask is a round trip. A change made through the store is
seen at once, an error is never kept, an older answer is asked again; a store without it (a
library user's) asks every time."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from backup_my_bucket.errors import BucketNotFound
from backup_my_bucket.model import Versioning
from backup_my_bucket.storage.s3 import S3Store
from backup_my_bucket.storage.s3.config import FRESH_FOR

from ..conftest import S3Server, unique_bucket

pytestmark = pytest.mark.s3


@pytest.fixture
async def cli_store(s3_server: S3Server) -> AsyncIterator[S3Store]:
    async with S3Store(s3_server.config(bucket_facts_ttl=FRESH_FOR)) as store:
        yield store


class Sent:
    """The requests a store sends from now on, by operation: botocore's and the fast path's."""

    def __init__(self, store: S3Store) -> None:
        self.store = store
        self.botocore: Counter[str] = Counter()
        self.fast_before = self._fast()

    def _fast(self) -> Counter[str]:
        return Counter(self.store._fast.served) if self.store._fast is not None else Counter()

    async def watch(self) -> Sent:
        def count(model: Any, **_: Any) -> None:
            self.botocore[model.name] += 1

        (await self.store.botocore()).meta.events.register("before-call.s3", count)
        return self

    def counts(self) -> Counter[str]:
        return self.botocore + (self._fast() - self.fast_before)


async def _count_requests(store: S3Store) -> Sent:
    return await Sent(store).watch()


async def test_bucket_checks_and_versioning_are_asked_once(
    cli_store: S3Store, s3_store: S3Store
) -> None:
    bucket = unique_bucket("memo")
    await cli_store.create_bucket(bucket)
    sent, plain = await _count_requests(cli_store), await _count_requests(s3_store)
    for _ in range(3):
        for store in (cli_store, s3_store):
            await store.check_bucket(bucket)
            assert await store.get_versioning(bucket) is Versioning.UNVERSIONED
    assert sent.counts() == Counter({"HeadBucket": 1, "GetBucketVersioning": 1})
    assert plain.counts() == Counter({"HeadBucket": 3, "GetBucketVersioning": 3})  # every time
    await cli_store.set_versioning(bucket, True)  # through the store: seen at once
    assert await cli_store.get_versioning(bucket) is Versioning.ENABLED
    assert sent.counts()["GetBucketVersioning"] == 2


async def test_an_error_is_not_kept_and_old_answers_are_asked_again(
    s3_server: S3Server,
) -> None:
    bucket = unique_bucket("memo")
    async with S3Store(s3_server.config(bucket_facts_ttl=0.2)) as store:
        with pytest.raises(BucketNotFound):
            await store.check_bucket(bucket)
        await store.create_bucket(bucket)
        await store.check_bucket(bucket)  # the error was not remembered
        await store.get_versioning(bucket)
        sent = await _count_requests(store)
        await asyncio.sleep(0.3)  # older than the ttl: asked again
        await store.check_bucket(bucket)
        await store.get_versioning(bucket)
        await store.get_versioning(bucket)
        assert sent.counts() == Counter({"HeadBucket": 1, "GetBucketVersioning": 1})
