"""A catalog in a local directory (``--catalog PATH``)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from ..clock import Clock
from ..errors import CatalogError
from ..storage.scratch import pid_alive
from .catalog import Catalog, IndexSize, ManifestFile, identity_of
from .index import SnapshotMeta, check_snapshot_id
from .lock import ABSENT, LockInfo, LockState, kept_after_pause


class LocalCatalog(Catalog):
    """A directory: ``catalog.json``, ``snapshots/<id>.json``, ``index/<id>.parquet``,
    ``lock.json``."""

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

    async def _manifest_files(self) -> tuple[list[ManifestFile], IndexSize]:
        files = []
        for path in sorted((self.root / "snapshots").glob("*.json")):
            try:
                files.append(ManifestFile(path.stem, str(path), path.read_bytes()))
            except OSError as exc:
                files.append(ManifestFile(path.stem, str(path), None, str(exc)))

        def index_size(snapshot_id: str) -> tuple[int | None, str]:
            index = self.root / "index" / f"{snapshot_id}.parquet"
            return (index.stat().st_size if index.is_file() else None), str(index)

        return files, index_size

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

    async def identity(self) -> str | None:
        try:
            return identity_of((self.root / "catalog.json").read_bytes())
        except OSError:
            return None

    async def _create_identity(self, data: bytes) -> str:
        self._dirs()
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".catalog.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            with contextlib.suppress(FileExistsError):  # another process named it first
                _create_from(tmp, self.root / "catalog.json")
        finally:
            Path(tmp).unlink(missing_ok=True)
        return str(self.root / "catalog.json")

    # --- lock ---------------------------------------------------------------------------------

    async def _read_lock(self) -> LockState:
        try:
            raw = (self.root / "lock.json").read_bytes()
        except FileNotFoundError:
            return ABSENT
        info = LockInfo.loads(raw)
        return LockState(info, True, info.token if info else None)

    def _holder_gone(self, lock: LockInfo) -> bool:
        """A holder on this host whose process is gone (killed, crashed) holds nothing."""
        return (
            lock.host == socket.gethostname()
            and lock.pid is not None
            and lock.pid != os.getpid()
            and not pid_alive(lock.pid)
        )

    async def _swap_lock(self, info: LockInfo, expect: LockState) -> LockState | None:
        self._dirs()
        path = self.root / "lock.json"
        # The whole lock is written to a temporary file first, so a reader never sees an empty
        # or partial lock.json: link() creates it only if absent, replace() swaps it at once.
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".lock.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(info.dumps())
            if not expect.exists:
                try:
                    _create_from(tmp, path)
                    return LockState(info, True, info.token)
                except FileExistsError:
                    if (await self._read_lock()).info is not None:
                        return None
                    # an unreadable lock.json (damaged) holds nothing, as on S3: replace it
            else:
                current = await self._read_lock()
                if current.info is not None and current.tag != expect.tag:
                    return None
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
        if expect.info is not None and expect.info.token == info.token:
            return LockState(info, True, info.token)  # a renewal of our own lock
        # Taking over a stale lock: another process may be doing the same.
        return await kept_after_pause(self, info)

    async def _unlink_lock(self) -> None:
        (self.root / "lock.json").unlink(missing_ok=True)


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
    _atomic(path, lambda f: f.write(data))


def _atomic_copy(src: Path, dst: Path) -> None:
    def fill(out: BinaryIO) -> None:
        with src.open("rb") as inp:
            shutil.copyfileobj(inp, out, 1 << 20)

    _atomic(dst, fill)


def _atomic(path: Path, fill: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` whole or not at all: a synced temporary file renamed into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
