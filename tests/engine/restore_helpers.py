"""Shared pieces of the restore tests: a bucket's full state, and a restore call."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from backup_my_bucket.engine.filters import ALL_KEYS, KeyFilter
from backup_my_bucket.engine.restore import Mode, RestoreResult, run_restore
from backup_my_bucket.engine.versions import current_state, state_at
from backup_my_bucket.model import ObjectAttrs, ObjectVersion, S3Url
from backup_my_bucket.storage.iterate import iter_versions
from backup_my_bucket.storage.protocol import ObjectStore

from ..conftest import is_data

State = dict[str, tuple[bytes, ObjectAttrs, dict[str, str]]]


async def read(store: ObjectStore, bucket: str, key: str) -> bytes:
    return b"".join([chunk async for chunk in store.get(bucket, key)])


async def live(store: ObjectStore, bucket: str, prefix: str = "") -> list[ObjectVersion]:
    """The live versions of the bucket's data (a backup's reserved folder left out)."""
    entries = current_state(iter_versions(store, bucket, prefix=prefix))
    return [v async for v in entries if is_data(v.key)]


async def contents(store: ObjectStore, bucket: str) -> dict[str, bytes]:
    """Every live key of the bucket → its bytes."""
    return {v.key: await read(store, bucket, v.key) for v in await live(store, bucket)}


async def bucket_state(store: ObjectStore, bucket: str, prefix: str = "") -> State:
    """Every live key under ``prefix`` (relative) → bytes, attributes, tags."""
    state: State = {}
    for version in await live(store, bucket, prefix):
        info = await store.head(bucket, version.key)
        cls = info.attrs.storage_class
        attrs = replace(info.attrs, storage_class=None if cls in (None, "STANDARD") else cls)
        tags = await store.get_tags(bucket, version.key)
        state[version.key[len(prefix) :]] = (await read(store, bucket, version.key), attrs, tags)
    return state


async def aiter_list(items: Iterable[ObjectVersion]) -> AsyncIterator[ObjectVersion]:
    for item in items:
        yield item


def desired_at(store: ObjectStore, backup: S3Url, at: datetime) -> AsyncIterable[ObjectVersion]:
    return state_at(iter_versions(store, backup.bucket, prefix=backup.prefix), at)


async def restore(
    store: ObjectStore,
    backup: S3Url,
    target: S3Url,
    desired: AsyncIterable[ObjectVersion],
    *,
    mode: Mode = Mode.ROLLBACK,
    filters: KeyFilter = ALL_KEYS,
    point: str = "test",
    journal_dir: Path | None = None,
    target_store: ObjectStore | None = None,
    **kw: Any,
) -> RestoreResult:
    return await run_restore(
        backup_store=store,
        backup=backup,
        desired=desired,
        target_store=target_store or store,
        target=target,
        point=point,
        mode=mode,
        filters=filters,
        journal_dir=journal_dir,
        workers=kw.pop("workers", 4),
        **kw,
    )
