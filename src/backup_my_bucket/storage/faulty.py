"""Fault injection at the storage seam, for tests: any ObjectStore, made unreliable on purpose.

Each call fails with probability ``rate`` with a transient :class:`StorageError` (as a 503
SlowDown or a dropped connection would end after botocore's own retries). Half of the
injected faults hit *after* the inner call succeeded: the write happened but its answer was
lost, the case that makes retries create duplicate versions. Seeded, so a failing run can be
replayed.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from ..errors import ItemFailure, StorageError
from ..model import (
    CompletedPart,
    KeyPage,
    LifecycleRule,
    ObjectAttrs,
    ObjectInfo,
    ObjectPage,
    OpenUpload,
    Versioning,
    VersionPage,
    VersionRef,
)
from .protocol import ObjectStore, Tags

T = TypeVar("T")


class FaultyStore:
    """Wraps ``inner``; counts what it injected in :attr:`injected` (``before`` the call took
    effect, and ``after``: the answer lost) and the calls it saw in :attr:`calls`."""

    def __init__(self, inner: ObjectStore, rate: float, *, seed: int = 0) -> None:
        self.inner = inner
        self.rate = rate
        self.rng = random.Random(seed)
        self.injected = 0
        self.injected_before = 0
        self.injected_after = 0
        self.calls = 0

    async def _call(self, name: str, make: Callable[[], Awaitable[T]]) -> T:
        self.calls += 1
        roll = self.rng.random()
        if roll < self.rate / 2:
            self.injected += 1
            self.injected_before += 1
            raise StorageError(f"injected fault before {name}: 503 SlowDown")
        result = await make()
        if roll < self.rate:
            self.injected += 1
            self.injected_after += 1
            raise StorageError(f"injected fault after {name}: connection reset")
        return result

    async def create_bucket(self, bucket: str) -> None:
        await self.inner.create_bucket(bucket)

    async def check_bucket(self, bucket: str) -> None:
        await self._call("check_bucket", lambda: self.inner.check_bucket(bucket))

    async def get_versioning(self, bucket: str) -> Versioning:
        return await self._call("get_versioning", lambda: self.inner.get_versioning(bucket))

    async def set_versioning(self, bucket: str, enabled: bool) -> None:
        await self.inner.set_versioning(bucket, enabled)

    async def get_lifecycle(self, bucket: str) -> list[LifecycleRule]:
        return await self._call("get_lifecycle", lambda: self.inner.get_lifecycle(bucket))

    async def list_versions_page(self, bucket: str, **kw: Any) -> VersionPage:
        return await self._call(
            "list_versions", lambda: self.inner.list_versions_page(bucket, **kw)
        )

    async def list_objects_page(self, bucket: str, **kw: Any) -> ObjectPage:
        return await self._call("list_objects", lambda: self.inner.list_objects_page(bucket, **kw))

    async def list_keys_page(self, bucket: str, **kw: Any) -> KeyPage:
        return await self._call("list_objects", lambda: self.inner.list_keys_page(bucket, **kw))

    async def server(self, bucket: str) -> str:
        return await self._call("server", lambda: self.inner.server(bucket))

    async def server_time(self, bucket: str) -> datetime | None:
        return await self._call("server_time", lambda: self.inner.server_time(bucket))

    async def head(
        self, bucket: str, key: str, version_id: str | None = None, **kw: Any
    ) -> ObjectInfo:
        return await self._call("head", lambda: self.inner.head(bucket, key, version_id, **kw))

    async def get(
        self, bucket: str, key: str, version_id: str | None = None, **kw: Any
    ) -> AsyncIterator[bytes]:
        chunks = await self._call(
            "get", lambda: _collect(self.inner.get(bucket, key, version_id, **kw))
        )
        for chunk in chunks:
            yield chunk

    async def get_tags(
        self, bucket: str, key: str, version_id: str | None = None
    ) -> dict[str, str]:
        return await self._call("get_tags", lambda: self.inner.get_tags(bucket, key, version_id))

    async def put(self, bucket: str, key: str, data: bytes, **kw: Any) -> str:
        return await self._call("put", lambda: self.inner.put(bucket, key, data, **kw))

    async def copy(self, source: VersionRef, bucket: str, key: str, **kw: Any) -> str:
        return await self._call("copy", lambda: self.inner.copy(source, bucket, key, **kw))

    async def delete(self, bucket: str, key: str) -> str | None:
        return await self._call("delete", lambda: self.inner.delete(bucket, key))

    async def delete_versions(self, bucket: str, refs: Sequence[VersionRef]) -> list[ItemFailure]:
        return await self._call("delete_versions", lambda: self.inner.delete_versions(bucket, refs))

    async def create_multipart(
        self, bucket: str, key: str, *, attrs: ObjectAttrs | None = None, tags: Tags | None = None
    ) -> str:
        return await self._call(
            "create_multipart",
            lambda: self.inner.create_multipart(bucket, key, attrs=attrs, tags=tags),
        )

    async def upload_part(
        self, bucket: str, key: str, upload_id: str, number: int, data: bytes
    ) -> CompletedPart:
        return await self._call(
            "upload_part", lambda: self.inner.upload_part(bucket, key, upload_id, number, data)
        )

    async def upload_part_copy(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        number: int,
        source: VersionRef,
        byte_range: tuple[int, int],
    ) -> CompletedPart:
        return await self._call(
            "upload_part_copy",
            lambda: self.inner.upload_part_copy(bucket, key, upload_id, number, source, byte_range),
        )

    async def complete_multipart(
        self, bucket: str, key: str, upload_id: str, parts: Sequence[CompletedPart]
    ) -> str:
        return await self._call(
            "complete_multipart",
            lambda: self.inner.complete_multipart(bucket, key, upload_id, parts),
        )

    async def abort_multipart(self, bucket: str, key: str, upload_id: str) -> None:
        await self.inner.abort_multipart(bucket, key, upload_id)

    async def open_uploads(self, bucket: str, prefix: str = "", **kw: Any) -> list[OpenUpload]:
        return await self._call(
            "open_uploads", lambda: self.inner.open_uploads(bucket, prefix, **kw)
        )

    async def close(self) -> None:
        await self.inner.close()


async def _collect(chunks: AsyncIterator[bytes]) -> list[bytes]:
    return [chunk async for chunk in chunks]
