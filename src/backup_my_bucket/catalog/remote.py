"""A catalog in a bucket: the default one in the backup bucket's reserved area, or
``--catalog s3://bucket/prefix``. Indexes are cached locally by checksum."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..clock import Clock
from ..errors import BackupError, CorruptIndex, ObjectNotFound
from ..model import S3Url
from ..storage.iterate import iter_versions
from ..storage.protocol import ObjectStore
from .catalog import Catalog, IndexSize, ManifestFile, identity_of
from .conditional import Doc, conditional_writes, read_doc, swap_doc
from .index import SnapshotMeta, check_snapshot_id, file_sha256
from .lock import ABSENT, LockInfo, LockState, kept_after_pause

UPLOAD_PART = 64 * 1024 * 1024


class S3Catalog(Catalog):
    """``s3://bucket/prefix``: the same layout as a local catalog, as objects."""

    def __init__(self, store: ObjectStore, url: S3Url, cache_dir: Path, clock: Clock) -> None:
        super().__init__(clock)
        self.store = store
        self.url = url
        self.prefix = url.prefix  # a folder: S3Url makes it one
        self.cache_dir = cache_dir
        self.location = str(url)

    def _key(self, *parts: str) -> str:
        return self.prefix + "/".join(parts)

    def _where(self, key: str) -> str:
        return f"s3://{self.url.bucket}/{key}"

    async def _current(self, folder: str) -> dict[str, int]:
        """Names (relative to the catalog) → sizes of the current objects under ``folder``."""
        found: dict[str, int] = {}
        async for v in iter_versions(self.store, self.url.bucket, prefix=self._key(folder)):
            if v.is_latest and not v.is_delete_marker:
                found[v.key.removeprefix(self.prefix)] = v.size
        return found

    async def _manifest_files(self) -> tuple[list[ManifestFile], IndexSize]:
        manifests, indexes = await asyncio.gather(
            self._current("snapshots/"), self._current("index/")
        )
        files = []
        for name in sorted(n for n in manifests if n.endswith(".json")):
            key = self._key(name)
            stem = name.removeprefix("snapshots/").removesuffix(".json")
            try:
                raw = b"".join([c async for c in self.store.get(self.url.bucket, key)])
            except ObjectNotFound:
                continue  # removed since the listing
            files.append(ManifestFile(stem, self._where(key), raw))

        def index_size(snapshot_id: str) -> tuple[int | None, str]:
            index = f"index/{snapshot_id}.parquet"
            return indexes.get(index), self._where(self._key(index))

        return files, index_size

    async def publish(self, meta: SnapshotMeta, index: Path) -> None:
        check_snapshot_id(meta.id, "publish")
        await upload_file(
            self.store, self.url.bucket, self._key("index", f"{meta.id}.parquet"), index
        )
        await self.store.put(
            self.url.bucket, self._key("snapshots", f"{meta.id}.json"), meta.dumps()
        )

    async def remove(self, ids: Sequence[str]) -> None:
        for snapshot_id in ids:
            check_snapshot_id(snapshot_id, "remove")
        for snapshot_id in ids:
            await self.store.delete(self.url.bucket, self._key("snapshots", f"{snapshot_id}.json"))
        for snapshot_id in ids:
            await self.store.delete(self.url.bucket, self._key("index", f"{snapshot_id}.parquet"))

    async def leftovers(self) -> tuple[str, ...]:
        manifests, indexes = await asyncio.gather(
            self._current("snapshots/"), self._current("index/")
        )
        published = {n.removeprefix("snapshots/").removesuffix(".json") for n in manifests}
        return tuple(
            sorted(
                n
                for n in indexes
                if n.endswith(".parquet")
                and n.removeprefix("index/").removesuffix(".parquet") not in published
            )
        )

    async def sweep(self, names: Sequence[str]) -> None:
        for name in names:
            await self.store.delete(self.url.bucket, self._key(name))

    async def index_path(self, meta: SnapshotMeta) -> Path:
        path = self.cache_dir / f"{check_snapshot_id(meta.id, 'index')}.parquet"
        if path.is_file() and file_sha256(path) == meta.index_sha256:
            return path
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.cache_dir, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                async for chunk in self.store.get(
                    self.url.bucket, self._key("index", f"{meta.id}.parquet")
                ):
                    f.write(chunk)
            os.replace(tmp, path)
        except ObjectNotFound as exc:
            Path(tmp).unlink(missing_ok=True)
            where = self._where(self._key("index", f"{meta.id}.parquet"))
            raise CorruptIndex(
                f"snapshot index {where} is missing",
                hint=f"drop the snapshot with `catalog remove {meta.id}`",
            ) from exc
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    async def identity(self) -> str | None:
        return identity_of(
            (await read_doc(self.store, self.url.bucket, self._key("catalog.json"))).data
        )

    async def _create_identity(self, data: bytes) -> str:
        key = self._key("catalog.json")
        current = await read_doc(self.store, self.url.bucket, key)
        await swap_doc(self.store, self.url.bucket, key, data, current, await self._conditional())
        return self._where(key)

    async def _conditional(self) -> bool:
        return await conditional_writes(self.store, self.url.bucket, self._key("probe"))

    # --- lock ---------------------------------------------------------------------------------

    async def _read_lock(self) -> LockState:
        doc = await read_doc(self.store, self.url.bucket, self._key("lock.json"))
        if doc.data is None:
            return ABSENT
        return LockState(LockInfo.loads(doc.data), True, doc.etag)

    async def _swap_lock(self, info: LockInfo, expect: LockState) -> LockState | None:
        key = self._key("lock.json")
        if await self._conditional():
            old = Doc(b"" if expect.exists else None, expect.tag)
            new = await swap_doc(self.store, self.url.bucket, key, info.dumps(), old, True)
            return None if new is None else LockState(info, True, new.etag)
        # Without conditional writes: write, then read back after a pause, and keep the lock
        # only if the token survived (a concurrent writer would have replaced it).
        current = await self._read_lock()
        held = current.info
        ours = expect.info is not None and held is not None and held.token == expect.info.token
        if held is not None and not ours and held.expires > self.clock.now():
            return None
        await self.store.put(self.url.bucket, key, info.dumps())
        return await kept_after_pause(self, info)

    async def _unlink_lock(self) -> None:
        await self.store.delete(self.url.bucket, self._key("lock.json"))


async def upload_file(store: ObjectStore, bucket: str, key: str, path: Path) -> None:
    """Upload a local file without holding it in memory (multipart above one part)."""
    size = path.stat().st_size
    if size <= UPLOAD_PART:
        await store.put(bucket, key, await asyncio.to_thread(path.read_bytes))
        return
    upload = await store.create_multipart(bucket, key)
    try:
        parts = []
        with path.open("rb") as f:  # reads happen in a thread below
            number = 1
            while chunk := await asyncio.to_thread(f.read, UPLOAD_PART):
                parts.append(await store.upload_part(bucket, key, upload, number, chunk))
                number += 1
        await store.complete_multipart(bucket, key, upload, parts)
    except BaseException:
        with contextlib.suppress(BackupError):
            await store.abort_multipart(bucket, key, upload)
        raise
