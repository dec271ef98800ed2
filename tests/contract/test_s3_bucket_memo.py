"""S3Store asks a bucket's HeadBucket and versioning status once per FRESH_FOR seconds: a
command's phases (sync, the catalog, the snapshot) each ask, and on AWS each ask is a round
trip. A change made through the store is seen at once, an error is never kept, and past
FRESH_FOR the store asks the server again (a long-lived daemon sees outside changes)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from backup_my_bucket.errors import BucketNotFound
from backup_my_bucket.model import Versioning
from backup_my_bucket.storage.s3 import S3Store
from backup_my_bucket.storage.s3 import store as s3_store_module

from ..conftest import unique_bucket

pytestmark = pytest.mark.s3


def _count_requests(store: S3Store) -> Counter[str]:
    sent: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        sent[model.name] += 1

    store.client.meta.events.register("before-call.s3", count)
    return sent


async def test_bucket_checks_and_versioning_are_asked_once(s3_store: S3Store) -> None:
    bucket = unique_bucket("memo")
    await s3_store.create_bucket(bucket)
    sent = _count_requests(s3_store)
    for _ in range(3):
        await s3_store.check_bucket(bucket)
        assert await s3_store.get_versioning(bucket) is Versioning.UNVERSIONED
    assert sent == Counter({"HeadBucket": 1, "GetBucketVersioning": 1})
    await s3_store.set_versioning(bucket, True)  # through the store: seen at once
    assert await s3_store.get_versioning(bucket) is Versioning.ENABLED
    assert sent["GetBucketVersioning"] == 2


async def test_an_error_is_not_kept_and_old_answers_are_asked_again(
    s3_store: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = unique_bucket("memo")
    with pytest.raises(BucketNotFound):
        await s3_store.check_bucket(bucket)
    await s3_store.create_bucket(bucket)
    await s3_store.check_bucket(bucket)  # the error was not remembered
    sent = _count_requests(s3_store)
    monkeypatch.setattr(s3_store_module, "FRESH_FOR", 0.0)
    await s3_store.check_bucket(bucket)
    await s3_store.get_versioning(bucket)
    await s3_store.get_versioning(bucket)
    assert sent == Counter({"HeadBucket": 1, "GetBucketVersioning": 2})
