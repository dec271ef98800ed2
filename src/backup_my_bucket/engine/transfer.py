"""Copy one object version from a store to another, keeping everything that makes it itself.

Bytes, content headers (Content-Type, -Encoding, -Disposition, -Language, Cache-Control,
Expires), user metadata, tags and storage class survive every path:

- **server-side** (same endpoint): one ``CopyObject`` with the COPY directive for a single-part
  source up to the multipart threshold. COPY resets the storage class on S3, so a source in
  another class is copied with its attributes from a HEAD (REPLACE directive, tags still
  copied);
- **server-side in parts**: ``UploadPartCopy`` of every part, concurrently, into an upload
  created with the source's attributes and tags (boto3's managed copy forgets them);
- **across endpoints**: ranged GETs streamed into PUTs. A small object is buffered whole (at
  most :data:`SINGLE_PUT_MAX`); a larger one is sent as a multipart upload whose parts are
  fetched and uploaded a few at a time, so memory stays at ``STREAM_PART_WORKERS x part size``
  whatever the object's size.

Part layout: a source uploaded in parts (ETag ``…-N``) is copied with *the same* part
boundaries (learnt with ``HEAD ?partNumber``), so on S3 the copy's ETag equals the source's and
ETag equality keeps meaning "same content". A single-part source above the threshold is split
in parts of ``part_size``. See docs/design.md ("Sync") for how sync decides "unchanged" when the
two layouts differ.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import weakref
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace

from ..errors import BackupError, StorageError
from ..model import NULL_VERSION, CompletedPart, ObjectAttrs, ObjectInfo, S3Url, VersionRef
from ..storage.protocol import (
    MAX_COPY_SIZE,
    MAX_PART_SIZE,
    MAX_PARTS,
    MIN_PART_SIZE,
    ObjectStore,
    Tags,
)
from .workers import run_pool

MiB = 1024 * 1024
DEFAULT_MULTIPART_THRESHOLD = MAX_COPY_SIZE
"""Single-part sources larger than this are copied in parts (5 GiB: above it S3 requires it)."""
DEFAULT_PART_SIZE = 64 * MiB
STREAM_PART_SIZE = 16 * MiB
"""Default part size when bytes pass through this process (across endpoints)."""
SINGLE_PUT_MAX = 16 * MiB
"""Across endpoints, single-part objects up to this size are buffered and PUT in one request."""
PART_WORKERS = 8
"""Concurrent UploadPartCopy requests per object (server-side: no bytes through us)."""
STREAM_PART_WORKERS = 4
"""Concurrent GET→UploadPart parts per object across endpoints: bounds the memory per object."""

STREAM_MEMORY = 256 * MiB
"""Bytes that cross-endpoint copies may hold in memory at once, all workers together."""

_MULTIPART_ETAG = re.compile(r"^[0-9a-fA-F]+-(\d+)$")

Range = tuple[int, int]  # inclusive byte range, as in HTTP


class ByteBudget:
    """A semaphore counted in bytes: what bounds memory when bytes pass through this process.

    A request larger than the whole budget waits until it can hold the whole budget alone.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self.peak = 0
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def hold(self, nbytes: int) -> AsyncIterator[None]:
        want = min(max(nbytes, 0), self.limit)
        async with self._changed:
            await self._changed.wait_for(lambda: self.held + want <= self.limit)
            self.held += want
            self.peak = max(self.peak, self.held)
        try:
            yield
        finally:
            async with self._changed:
                self.held -= want
                self._changed.notify_all()


_budgets: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ByteBudget] = (
    weakref.WeakKeyDictionary()
)


def memory_budget() -> ByteBudget:
    """The running event loop's budget of :data:`STREAM_MEMORY` bytes (one per loop)."""
    loop = asyncio.get_running_loop()
    budget = _budgets.get(loop)
    if budget is None:
        budget = _budgets[loop] = ByteBudget(STREAM_MEMORY)
    return budget


def multipart_parts(etag: str | None) -> int | None:
    """The part count of a multipart ETag (``"<md5>-N"``), or None for a single-part one."""
    match = _MULTIPART_ETAG.match(etag or "")
    return int(match.group(1)) if match else None


def split_ranges(size: int, part_size: int) -> list[Range]:
    """Consecutive inclusive ranges of ``part_size`` covering ``size`` bytes (one for 0 bytes)."""
    if size == 0:
        return [(0, -1)]
    return [(start, min(start + part_size, size) - 1) for start in range(0, size, part_size)]


def choose_part_size(size: int, requested: int | None = None) -> int:
    """A part size within S3's limits: ≥ 5 MiB, ≤ 5 GiB, and at most 10,000 parts."""
    wanted = requested or DEFAULT_PART_SIZE
    fewest = -(-size // MAX_PARTS)  # ceil: the smallest size that keeps ≤ 10,000 parts
    fewest = -(-fewest // MiB) * MiB
    return min(max(wanted, fewest, MIN_PART_SIZE), MAX_PART_SIZE)


async def source_layout(store: ObjectStore, src: VersionRef, size: int, parts: int) -> list[Range]:
    """The byte ranges of the source's own parts.

    Every SDK uploads fixed-size parts, so the first part's length usually gives them all; when
    the sizes do not add up that way, each part is asked for.
    """
    first = await store.head(src.bucket, src.key, src.version_id, part_number=1)
    count = first.parts_count or parts
    if count <= 1:
        return split_ranges(size, max(size, 1))
    step = first.size
    if step > 0 and (count - 1) * step < size <= count * step:
        return split_ranges(size, step)
    ranges: list[Range] = []
    start = 0
    for number in range(1, count + 1):
        part = await store.head(src.bucket, src.key, src.version_id, part_number=number)
        ranges.append((start, start + part.size - 1))
        start += part.size
    return ranges


def _standard(storage_class: str | None) -> bool:
    return storage_class in (None, "", "STANDARD")


async def copy_version(
    source: ObjectStore,
    src: VersionRef,
    target: ObjectStore,
    bucket: str,
    key: str,
    *,
    size: int,
    etag: str | None = None,
    same_endpoint: bool,
    multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
    part_size: int | None = None,
    storage_class: str | None = None,
) -> str:
    """Copy version ``src`` of ``source`` to ``bucket``/``key`` of ``target``; return the new
    version id in the target.

    ``size`` and ``etag`` are the source version's (from a listing); ``storage_class`` too, when
    known: None means "unknown" and costs a HEAD on the server-side path. ``same_endpoint``
    says both stores talk to one S3 service, so the bytes can stay there.
    """
    limit = min(multipart_threshold, MAX_COPY_SIZE)
    info: ObjectInfo | None = None
    if etag is None or storage_class is None or multipart_parts(etag) or not same_endpoint:
        # HEAD is the authority on ETags: some servers list internal chunk ETags (SeaweedFS)
        info = await source.head(src.bucket, src.key, src.version_id)
        etag, storage_class, size = info.etag, info.attrs.storage_class, info.size
    parts = multipart_parts(etag)
    in_parts = parts is not None or size > limit
    if same_endpoint and not in_parts:
        attrs: ObjectAttrs | None = None
        if not _standard(storage_class):  # COPY would reset the class: REPLACE, same attrs
            info = info or await source.head(src.bucket, src.key, src.version_id)
            attrs = info.attrs
        return await target.copy(src, bucket, key, attrs=attrs)

    info = info or await source.head(src.bucket, src.key, src.version_id)
    tags = await source.get_tags(src.bucket, src.key, src.version_id)
    # pin the version: every part must come from the one version the HEAD described
    pinned = (
        src
        if src.version_id or info.version_id == NULL_VERSION
        else replace(src, version_id=info.version_id)
    )
    if info.size == 0 or (not same_endpoint and not in_parts and info.size <= SINGLE_PUT_MAX):
        async with memory_budget().hold(info.size):
            data = await read_range(source, pinned, (0, info.size - 1))
            return await target.put(bucket, key, data, attrs=info.attrs, tags=tags)
    if parts is not None:
        ranges = await source_layout(source, pinned, info.size, parts)
    else:
        ranges = split_ranges(
            info.size,
            choose_part_size(
                info.size, part_size or (DEFAULT_PART_SIZE if same_endpoint else STREAM_PART_SIZE)
            ),
        )
    return await _multipart(source, pinned, target, bucket, key, info, tags, ranges, same_endpoint)


@dataclass(frozen=True, slots=True)
class CopyBetween:
    """Copies from the folder ``source`` (in ``stores[0]``) to the folder ``target`` (in
    ``stores[1]``) of exact versions named by relative key: what restore's and sync's copy
    units share (engine/executor.py: picklable, no store held)."""

    source: S3Url
    target: S3Url
    same_endpoint: bool
    multipart_threshold: int | None = None
    part_size: int | None = None

    async def __call__(
        self,
        stores: Sequence[ObjectStore],
        key: str,
        version_id: str | None,
        *,
        size: int,
        etag: str | None,
        storage_class: str | None,
    ) -> str:
        """Copy version ``version_id`` of relative ``key``; return the target's version id.
        ``storage_class`` None (unknown) costs a HEAD."""
        ref = VersionRef(self.source.bucket, self.source.key(key), version_id)
        return await copy_version(
            stores[0], ref, stores[1], self.target.bucket, self.target.key(key),
            size=size, etag=etag, storage_class=storage_class,
            same_endpoint=self.same_endpoint,
            multipart_threshold=self.multipart_threshold or DEFAULT_MULTIPART_THRESHOLD,
            part_size=self.part_size,
        )  # fmt: skip


async def read_range(store: ObjectStore, src: VersionRef, byte_range: Range) -> bytearray:
    """The bytes of an inclusive range, read into one preallocated buffer (no second copy)."""
    size = byte_range[1] - byte_range[0] + 1
    buffer = bytearray(size)
    if size == 0:
        return buffer  # "bytes=0--1" is no range at all
    filled = 0
    async for chunk in store.get(src.bucket, src.key, src.version_id, byte_range=byte_range):
        if filled + len(chunk) > size:
            raise StorageError(f"s3://{src.bucket}/{src.key}: a ranged GET returned too much")
        buffer[filled : filled + len(chunk)] = chunk
        filled += len(chunk)
    if filled != size:
        raise StorageError(f"s3://{src.bucket}/{src.key}: the object is shorter than listed")
    return buffer  # a bytearray is a bytes-like body: no copy to hand it over


async def _multipart(
    source: ObjectStore,
    src: VersionRef,
    target: ObjectStore,
    bucket: str,
    key: str,
    info: ObjectInfo,
    tags: Tags,
    ranges: list[Range],
    same_endpoint: bool,
) -> str:
    """One multipart upload fed part by part; aborted if any part fails for good."""
    upload = await target.create_multipart(bucket, key, attrs=info.attrs, tags=tags or None)

    async def copy_part(item: tuple[int, Range]) -> CompletedPart:
        number, byte_range = item
        if same_endpoint:
            return await target.upload_part_copy(bucket, key, upload, number, src, byte_range)
        async with memory_budget().hold(byte_range[1] - byte_range[0] + 1):
            data = await read_range(source, src, byte_range)
            return await target.upload_part(bucket, key, upload, number, data)

    try:
        done: list[CompletedPart] = []
        workers = PART_WORKERS if same_endpoint else STREAM_PART_WORKERS
        numbered = list(enumerate(ranges, start=1))
        async for outcome in run_pool(numbered, copy_part, workers=min(workers, len(numbered))):
            if outcome.error is not None:
                raise outcome.error
            assert outcome.result is not None
            done.append(outcome.result)
        done.sort(key=lambda part: part.number)
        return await target.complete_multipart(bucket, key, upload, done)
    except BaseException:
        with contextlib.suppress(BackupError):
            await target.abort_multipart(bucket, key, upload)
        raise
