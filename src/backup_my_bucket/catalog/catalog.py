"""Catalogs: where snapshots (manifest + index) are kept, with atomic publish and a lock.

Ordering rules (docs/design.md):
- publish writes the index first and the manifest last; a snapshot is listed only through its
  manifest, so a crash never leaves a listed snapshot without its index;
- remove deletes the manifest first and the index after;
- what a killed publish or remove leaves (an index without its manifest, a temporary file) is
  listed by ``leftovers`` and removed by ``sweep``, under the lock (gc does it);
- snapshot and gc hold the catalog lock; a lock whose holder stopped renewing it expires.
  A local lock also names its holder's host and pid: one whose holder is on this host and
  no longer running is stale at once (taken over with a warning), not after the TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import re
import secrets
import shutil
import socket
import tempfile
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import platformdirs

from ..clock import Clock
from ..errors import (
    BackupError,
    CatalogError,
    Locked,
    ObjectNotFound,
    SnapshotNotFound,
    UsageError,
)
from ..model import S3Url
from ..storage.protocol import ObjectStore
from ..units import format_time
from .index import IndexReader, SnapshotMeta, check_snapshot_id, file_sha256

APP_NAME = "backup-my-bucket"
LOCK_TTL = timedelta(minutes=10)
log = logging.getLogger(__name__)


def new_snapshot_id(at: datetime) -> str:
    """Sortable and readable: the instant, then a random suffix (``20261126T100000Z-3f9a1c``)."""
    return f"{at:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def resolve_id(ref: str, metas: Sequence[SnapshotMeta]) -> SnapshotMeta:
    """``latest``, a full id, or a unique prefix of one."""
    if ref != "latest":
        check_snapshot_id(ref, "snapshot", UsageError)
    if not metas:
        raise SnapshotNotFound("the catalog holds no snapshots", hint="take one with `snapshot`")
    if ref == "latest":
        return max(metas, key=lambda m: (m.at, m.id))
    exact = [m for m in metas if m.id == ref]
    if exact:
        return exact[0]
    found = [m for m in metas if m.id.startswith(ref)]
    if not found:
        raise SnapshotNotFound(
            f"no snapshot {ref!r} in the catalog", hint="list them with `snapshots`"
        )
    if len(found) > 1:
        shown = ", ".join(m.id for m in found[:5])
        raise UsageError(
            f"snapshot id {ref!r} is ambiguous: {shown}{', ...' if len(found) > 5 else ''}",
            hint="type more characters of the id",
        )
    return found[0]


@dataclass(frozen=True, slots=True)
class LockInfo:
    token: str
    purpose: str
    owner: str
    acquired: datetime
    expires: datetime
    host: str | None = None  # the holder's hostname and pid (None in locks of older versions)
    pid: int | None = None

    def dumps(self) -> bytes:
        return json.dumps(
            {
                "token": self.token,
                "purpose": self.purpose,
                "owner": self.owner,
                "acquired": format_time(self.acquired),
                "expires": format_time(self.expires),
                "host": self.host,
                "pid": self.pid,
            }
        ).encode()

    @classmethod
    def loads(cls, raw: bytes) -> LockInfo | None:
        try:
            data = json.loads(raw)
            return cls(
                token=data["token"],
                purpose=data["purpose"],
                owner=data["owner"],
                acquired=datetime.fromisoformat(data["acquired"]),
                expires=datetime.fromisoformat(data["expires"]),
                host=data.get("host") if isinstance(data.get("host"), str) else None,
                pid=data.get("pid") if type(data.get("pid")) is int else None,
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None  # an unreadable lock is treated as stale


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host is running. When it cannot be told: True."""
    if os.name != "posix" or pid <= 0:
        return True  # (os.kill on Windows would terminate the process, not probe it)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # EPERM: it exists, under another user
    try:  # a zombie (killed, not yet reaped by its parent) holds nothing any more
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2 :][:1] != "Z"


class Catalog(ABC):
    """Snapshots of one backup location."""

    location: str

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    @abstractmethod
    async def list(self) -> list[SnapshotMeta]:
        """Every published snapshot, oldest first."""

    @abstractmethod
    async def publish(self, meta: SnapshotMeta, index: Path) -> None:
        """Store the index, then the manifest (which makes the snapshot visible)."""

    @abstractmethod
    async def remove(self, ids: Sequence[str]) -> None:
        """Delete manifests first, then indexes."""

    @abstractmethod
    async def leftovers(self) -> tuple[str, ...]:
        """What interrupted runs left: indexes without a manifest, temporary files (names
        relative to the catalog). Only meaningful under the lock: a snapshot being published
        also has an index without a manifest for a moment."""

    @abstractmethod
    async def sweep(self, names: Sequence[str]) -> None:
        """Remove ``names`` (from :meth:`leftovers`); call under the lock."""

    @abstractmethod
    async def index_path(self, meta: SnapshotMeta) -> Path:
        """A local path of the index file (downloaded into a cache for remote catalogs)."""

    @abstractmethod
    async def _read_lock(self) -> LockInfo | None: ...

    @abstractmethod
    async def _create_lock(self, info: LockInfo, replace: LockInfo | None) -> bool:
        """Write the lock unless another holder got there first; True if it is ours."""

    @abstractmethod
    async def _delete_lock(self, info: LockInfo) -> None: ...

    def _holder_gone(self, lock: LockInfo) -> bool:
        """Whether a lock that has not expired is known to be held by nobody (see LocalCatalog)."""
        return False

    async def resolve(self, ref: str) -> SnapshotMeta:
        return resolve_id(ref, await self.list())

    async def open_index(self, meta: SnapshotMeta) -> IndexReader:
        return IndexReader(await self.index_path(meta), meta)

    @contextlib.asynccontextmanager
    async def lock(self, purpose: str, ttl: timedelta = LOCK_TTL) -> AsyncIterator[None]:
        """Hold the catalog lock; renew it in the background; release it at the end."""
        now = self.clock.now()
        info = LockInfo(
            secrets.token_hex(8),
            purpose,
            _owner(),
            now,
            now + ttl,
            socket.gethostname(),
            os.getpid(),
        )
        current = await self._read_lock()
        if current is not None and current.expires > now and self._holder_gone(current):
            log.warning(
                "taking over the catalog lock of %s: its holder, %s (%s), is no longer running",
                self.location,
                current.purpose,
                current.owner,
            )
        elif current is not None and current.expires > now:
            raise Locked(
                f"the catalog {self.location} is locked by {current.purpose} "
                f"({current.owner}, since {format_time(current.acquired)})",
                hint="wait for it to finish; the lock expires at "
                f"{format_time(current.expires)} if its holder stopped",
            )
        if not await self._create_lock(info, current):
            raise Locked(
                f"the catalog {self.location} was locked by another process just now",
                hint="wait for it to finish",
            )
        renewer = asyncio.create_task(self._renew(info, ttl))
        try:
            yield
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            with contextlib.suppress(BackupError, OSError):
                await self._delete_lock(info)

    async def _renew(self, info: LockInfo, ttl: timedelta) -> None:
        while True:
            await asyncio.sleep(ttl.total_seconds() / 3)
            renewed = dataclasses.replace(info, expires=self.clock.now() + ttl)
            with contextlib.suppress(BackupError, OSError):
                await self._create_lock(renewed, info)


class LocalCatalog(Catalog):
    """A directory: ``snapshots/<id>.json``, ``index/<id>.parquet``, ``lock.json``."""

    def __init__(self, root: Path, clock: Clock) -> None:
        super().__init__(clock)
        self.root = root
        self.location = str(root)

    def _dirs(self) -> tuple[Path, Path]:
        manifests, indexes = self.root / "snapshots", self.root / "index"
        try:
            manifests.mkdir(parents=True, exist_ok=True)
            indexes.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CatalogError(
                f"cannot use catalog directory {self.root}: {exc.strerror}",
                hint="choose a writable place with --catalog",
            ) from exc
        return manifests, indexes

    async def list(self) -> list[SnapshotMeta]:
        manifests = self.root / "snapshots"
        if not manifests.is_dir():
            return []
        metas = []
        for path in sorted(manifests.glob("*.json")):
            try:
                raw = json.loads(path.read_bytes())
            except (OSError, ValueError) as exc:
                raise CatalogError(
                    f"snapshot manifest {path} is unreadable: {exc}",
                    hint="the file was damaged; remove it or restore it from a copy",
                ) from exc
            metas.append(SnapshotMeta.from_json(raw, str(path)))
        return sorted(metas, key=lambda m: (m.at, m.id))

    async def publish(self, meta: SnapshotMeta, index: Path) -> None:
        check_snapshot_id(meta.id, "publish")
        manifests, indexes = self._dirs()
        try:
            _atomic_copy(index, indexes / f"{meta.id}.parquet")
            _atomic_write(manifests / f"{meta.id}.json", meta.dumps())
        except OSError as exc:
            raise CatalogError(f"cannot write to catalog {self.root}: {exc.strerror}") from exc

    async def remove(self, ids: Sequence[str]) -> None:
        for snapshot_id in ids:
            check_snapshot_id(snapshot_id, "remove")
        for snapshot_id in ids:
            (self.root / "snapshots" / f"{snapshot_id}.json").unlink(missing_ok=True)
        for snapshot_id in ids:
            (self.root / "index" / f"{snapshot_id}.parquet").unlink(missing_ok=True)

    async def leftovers(self) -> tuple[str, ...]:
        manifests, indexes = self.root / "snapshots", self.root / "index"
        if not indexes.is_dir():
            return ()
        published = {p.name.removesuffix(".json") for p in manifests.glob("*.json")}
        found = [
            f"index/{p.name}"
            for p in indexes.glob("*.parquet")
            if not p.name.startswith(".") and p.name.removesuffix(".parquet") not in published
        ]
        for folder in (manifests, indexes):  # _atomic_write/_atomic_copy's temporary files
            found += [f"{folder.name}/{p.name}" for p in folder.glob(".*.tmp")]
        return tuple(sorted(found))

    async def sweep(self, names: Sequence[str]) -> None:
        for name in names:
            (self.root / name).unlink(missing_ok=True)

    async def index_path(self, meta: SnapshotMeta) -> Path:
        return self.root / "index" / f"{check_snapshot_id(meta.id, 'index')}.parquet"

    async def _read_lock(self) -> LockInfo | None:
        try:
            return LockInfo.loads((self.root / "lock.json").read_bytes())
        except FileNotFoundError:
            return None

    def _holder_gone(self, lock: LockInfo) -> bool:
        """A holder on this host whose process is gone (killed, crashed) holds nothing."""
        return (
            lock.host == socket.gethostname()
            and lock.pid is not None
            and lock.pid != os.getpid()
            and not pid_alive(lock.pid)
        )

    async def _create_lock(self, info: LockInfo, replace: LockInfo | None) -> bool:
        self._dirs()
        path = self.root / "lock.json"
        # The whole lock is written to a temporary file first, so a reader never sees an empty
        # or partial lock.json: link() creates it only if absent, replace() swaps it at once.
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".lock.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(info.dumps())
            if replace is None:
                try:
                    _create_from(tmp, path)
                    return True
                except FileExistsError:
                    if await self._read_lock() is not None:
                        return False
                    # an unreadable lock.json (damaged) holds nothing, as on S3: replace it
            else:
                current = await self._read_lock()
                if current is not None and current.token != replace.token:
                    return False
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
        if replace is not None and replace.token == info.token:
            return True  # a renewal of our own lock
        # Taking over a stale lock: another process may be doing the same. Keep the lock
        # only if our token survives a pause (as on S3).
        await asyncio.sleep(0.05)
        after = await self._read_lock()
        return after is not None and after.token == info.token

    async def _delete_lock(self, info: LockInfo) -> None:
        current = await self._read_lock()
        if current is not None and current.token == info.token:
            (self.root / "lock.json").unlink(missing_ok=True)


class S3Catalog(Catalog):
    """``s3://bucket/prefix``: the same layout as objects; indexes are cached locally."""

    def __init__(self, store: ObjectStore, url: S3Url, cache_dir: Path, clock: Clock) -> None:
        super().__init__(clock)
        self.store = store
        self.url = url
        self.prefix = url.prefix  # a folder: S3Url makes it one
        self.cache_dir = cache_dir
        self.location = str(url)

    def _key(self, *parts: str) -> str:
        return self.prefix + "/".join(parts)

    async def list(self) -> list[SnapshotMeta]:
        from ..storage.iterate import iter_versions

        metas = []
        names: list[str] = []
        async for v in iter_versions(self.store, self.url.bucket, prefix=self._key("snapshots/")):
            if v.is_latest and not v.is_delete_marker and v.key.endswith(".json"):
                names.append(v.key)
        for key in names:
            raw = b"".join([c async for c in self.store.get(self.url.bucket, key)])
            try:
                data = json.loads(raw)
            except ValueError as exc:
                raise CatalogError(
                    f"snapshot manifest s3://{self.url.bucket}/{key} is unreadable"
                ) from exc
            metas.append(SnapshotMeta.from_json(data, f"s3://{self.url.bucket}/{key}"))
        return sorted(metas, key=lambda m: (m.at, m.id))

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
        from ..storage.iterate import iter_versions

        current: dict[str, set[str]] = {"snapshots/": set(), "index/": set()}
        for folder, names in current.items():
            async for v in iter_versions(self.store, self.url.bucket, prefix=self._key(folder)):
                if v.is_latest and not v.is_delete_marker:
                    names.add(v.key.removeprefix(self.prefix))
        published = {
            n.removeprefix("snapshots/").removesuffix(".json") for n in current["snapshots/"]
        }
        return tuple(
            sorted(
                n
                for n in current["index/"]
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
        except BaseException:  # a failed or interrupted download leaves nothing behind
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    async def _read_lock(self) -> LockInfo | None:
        try:
            raw = b"".join(
                [c async for c in self.store.get(self.url.bucket, self._key("lock.json"))]
            )
        except ObjectNotFound:
            return None
        return LockInfo.loads(raw)

    async def _create_lock(self, info: LockInfo, replace: LockInfo | None) -> bool:
        # S3 has no portable create-if-absent: write, then read back and keep the lock only if
        # the token survived (a concurrent writer would have replaced it).
        current = await self._read_lock()
        foreign = current is not None and (replace is None or current.token != replace.token)
        if foreign and current is not None and current.expires > self.clock.now():
            return False
        await self.store.put(self.url.bucket, self._key("lock.json"), info.dumps())
        await asyncio.sleep(0.05)
        after = await self._read_lock()
        return after is not None and after.token == info.token

    async def _delete_lock(self, info: LockInfo) -> None:
        current = await self._read_lock()
        if current is not None and current.token == info.token:
            await self.store.delete(self.url.bucket, self._key("lock.json"))


UPLOAD_PART = 64 * 1024 * 1024


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


def _create_from(tmp: str, path: Path) -> None:
    """Create ``path`` with ``tmp``'s content, atomically, only if it does not exist
    (FileExistsError otherwise). On a file system without hard links: O_EXCL, then write."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(Path(tmp).read_bytes())


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_copy(src: Path, dst: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out, src.open("rb") as inp:
            shutil.copyfileobj(inp, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def default_catalog_dir(endpoint_url: str | None, backup: S3Url) -> Path:
    """A directory per backup location under the user data dir."""
    host = re.sub(r"[^0-9A-Za-z.-]+", "_", (endpoint_url or "aws").split("://")[-1]).strip("_")
    name = backup.bucket + (
        "__" + re.sub(r"[^0-9A-Za-z.-]+", "_", backup.prefix).strip("_") if backup.prefix else ""
    )
    return Path(platformdirs.user_data_dir(APP_NAME)) / "catalogs" / host / name


def catalog_json(meta: SnapshotMeta) -> dict[str, Any]:
    return meta.to_json()
