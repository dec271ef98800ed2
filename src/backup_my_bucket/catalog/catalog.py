"""Catalogs: where snapshots (manifest + index) are kept, with atomic publish and a lock.

Ordering rules (docs/design.md):
- publish writes the index first and the manifest last; a snapshot is listed only through its
  manifest, so a crash never leaves a listed snapshot without its index;
- remove deletes the manifest first and the index after;
- what a killed publish or remove leaves (an index without its manifest, a temporary file) is
  listed by ``leftovers`` and removed by ``sweep``, under the lock (gc does it);
- snapshot and gc hold the catalog lock (catalog/lock.py) and check it before every
  destructive step.

Snapshots are independent: a damaged manifest or index is reported by :meth:`Catalog.scan`
as that snapshot's problem and never stops the others from being listed or read.
"""

from __future__ import annotations

import json
import logging
import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..clock import Clock
from ..errors import BackupError, CatalogError, CorruptIndex, SnapshotNotFound, UsageError
from ..units import format_time
from .index import IndexReader, SnapshotMeta, check_snapshot_id
from .lock import LOCK_TTL, Lease, LockInfo, LockState, hold

APP_NAME = "backup-my-bucket"
CATALOG_FORMAT = "1.0"
log = logging.getLogger(__name__)


def new_snapshot_id(at: datetime) -> str:
    """Sortable and readable: the instant, then a random suffix (``20261126T100000Z-3f9a1c``)."""
    return f"{at:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class Damaged:
    """A snapshot whose manifest or index cannot be trusted. ``meta`` is known when only the
    index is damaged (its instant then still counts for gc)."""

    id: str
    where: str
    problem: str
    meta: SnapshotMeta | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = self.meta.summary() if self.meta else {"id": self.id}
        data.update(damaged=True, problem=self.problem, where=self.where)
        return data


@dataclass(frozen=True, slots=True)
class Listing:
    """What a catalog holds: every snapshot whose manifest is readable (oldest first), and
    the damaged ones (some of which have a readable manifest, hence are in both)."""

    snapshots: tuple[SnapshotMeta, ...]
    damaged: tuple[Damaged, ...] = ()

    @property
    def healthy(self) -> tuple[SnapshotMeta, ...]:
        bad = {d.id for d in self.damaged}
        return tuple(m for m in self.snapshots if m.id not in bad)

    @property
    def unreadable(self) -> tuple[Damaged, ...]:
        """Damaged manifests: the snapshot's instant is unknown."""
        return tuple(d for d in self.damaged if d.meta is None)


@dataclass(frozen=True, slots=True)
class ManifestFile:
    """A manifest as found: its name (the id it should hold), where it is, its bytes (None
    when it could not be read, with the reason)."""

    stem: str
    where: str
    raw: bytes | None
    error: str = ""


IndexSize = Callable[[str], tuple[int | None, str]]  # id -> (size or None if absent, where)


def build_listing(files: Iterable[ManifestFile], index_size: IndexSize) -> Listing:
    """The listing of a catalog from its manifests and its indexes' sizes: every snapshot whose
    manifest reads (oldest first) and, each on its own, the damaged ones."""
    metas: list[SnapshotMeta] = []
    damaged: list[Damaged] = []
    for file in files:
        parsed = (
            parse_manifest(file.raw, file.where, file.stem)
            if file.raw is not None
            else Damaged(file.stem, file.where, f"manifest is unreadable: {file.error}")
        )
        if isinstance(parsed, Damaged):
            damaged.append(parsed)
            continue
        metas.append(parsed)
        problem = check_index_size(parsed, *index_size(parsed.id))
        if problem is not None:
            damaged.append(problem)
    metas.sort(key=lambda m: (m.at, m.id))
    return Listing(tuple(metas), tuple(damaged))


def parse_manifest(raw: bytes, where: str, stem: str) -> SnapshotMeta | Damaged:
    """A manifest's bytes → its metadata, or what is wrong with it (never an exception)."""
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        return Damaged(stem, where, f"manifest is unreadable ({exc})")
    try:
        meta = SnapshotMeta.from_json(data, where)
    except BackupError as exc:
        return Damaged(stem, where, f"manifest: {exc.message}")
    if meta.id != stem:
        return Damaged(stem, where, f"manifest names another snapshot ({meta.id})")
    return meta


def identity_of(raw: bytes | None) -> str | None:
    """The id a ``catalog.json`` holds (None when absent or unreadable)."""
    try:
        data = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    found = data.get("id") if isinstance(data, dict) else None
    return found if isinstance(found, str) and found else None


def new_identity(now: datetime) -> bytes:
    """A fresh ``catalog.json``: the format and a random id that names the catalog."""
    doc = {
        "format_version": CATALOG_FORMAT,
        "id": secrets.token_hex(8),
        "created": format_time(now),
    }
    return json.dumps(doc, indent=2).encode()


def check_index_size(meta: SnapshotMeta, size: int | None, where: str) -> Damaged | None:
    """The cheap check every listing makes: the index exists and has the recorded size."""
    if size is None:
        return Damaged(meta.id, where, "index is missing", meta)
    if size != meta.index_size:
        return Damaged(
            meta.id, where, f"index is {size} bytes, its manifest says {meta.index_size}", meta
        )
    return None


def resolve_id(ref: str, metas: Sequence[SnapshotMeta]) -> SnapshotMeta:
    """``latest``, a full id, or a unique prefix of one."""
    return _resolve(ref, [m.id for m in metas], {m.id: m for m in metas}, {})


def _resolve(
    ref: str, ids: Sequence[str], metas: dict[str, SnapshotMeta], damaged: dict[str, Damaged]
) -> SnapshotMeta:
    if ref != "latest":
        check_snapshot_id(ref, "snapshot", UsageError)
    if not ids:
        raise SnapshotNotFound("the catalog holds no snapshots", hint="take one with `snapshot`")
    if ref == "latest":
        found = [max(ids, key=lambda i: (metas[i].at, i) if i in metas else (_id_time(i), i))]
    elif ref in ids:
        found = [ref]
    else:
        found = [i for i in ids if i.startswith(ref)]
    if not found:
        raise SnapshotNotFound(
            f"no snapshot {ref!r} in the catalog", hint="list them with `snapshots`"
        )
    if len(found) > 1:
        shown = ", ".join(sorted(found)[:5])
        raise UsageError(
            f"snapshot id {ref!r} is ambiguous: {shown}{', ...' if len(found) > 5 else ''}",
            hint="type more characters of the id",
        )
    chosen = found[0]
    if chosen in damaged and chosen not in metas:
        bad = damaged[chosen]
        raise CorruptIndex(
            f"snapshot {chosen} is damaged: {bad.problem} ({bad.where})",
            hint="pick another snapshot (`snapshots` lists them), or drop this one with "
            f"`catalog remove {chosen}`",
        )
    return metas[chosen]


def _id_time(snapshot_id: str) -> datetime:
    """The instant an id starts with (ids of damaged manifests still sort by time)."""
    try:
        return datetime.strptime(snapshot_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


class Catalog(ABC):
    """Snapshots of one backup location (and those carried over from others by promote)."""

    location: str

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    async def scan(self) -> Listing:
        """Every snapshot, oldest first, with the damaged ones named (cheap checks only:
        a manifest that parses, an index of the recorded size; the checksum is verified
        when the index is opened)."""
        return build_listing(*await self._manifest_files())

    @abstractmethod
    async def _manifest_files(self) -> tuple[list[ManifestFile], IndexSize]:
        """Every manifest's bytes, and how to find an index's size."""

    async def list(self) -> list[SnapshotMeta]:
        """Every snapshot whose manifest is readable, oldest first."""
        return list((await self.scan()).snapshots)

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
    async def identity(self) -> str | None:
        """The catalog's id (``catalog.json``), None while it has none."""

    async def ensure_identity(self) -> str:
        """The catalog's id, created once (create-if-absent) when it has none."""
        found = await self.identity()
        if found is not None:
            return found
        where = await self._create_identity(new_identity(self.clock.now()))
        found = await self.identity()  # whoever won a race named it
        if found is None:
            raise CatalogError(
                f"{where} cannot be written or read back",
                hint="the file was damaged; restore it from a copy, or remove it to give the "
                "catalog a new id (then `catalog migrate` to bind it again)",
            )
        return found

    @abstractmethod
    async def _create_identity(self, data: bytes) -> str:
        """Write ``catalog.json`` unless one exists (then keep it); return where it is."""

    # --- the lock (catalog/lock.py) -----------------------------------------------------------

    @abstractmethod
    async def _read_lock(self) -> LockState: ...

    @abstractmethod
    async def _swap_lock(self, info: LockInfo, expect: LockState) -> LockState | None: ...

    async def _delete_lock(self, info: LockInfo) -> None:
        """Release: remove the lock if it is still ours (never another holder's)."""
        current = await self._read_lock()
        if current.info is not None and current.info.token == info.token:
            await self._unlink_lock()

    @abstractmethod
    async def _unlink_lock(self) -> None: ...

    def _holder_gone(self, lock: LockInfo) -> bool:
        """Whether a lock that has not expired is known to be held by nobody (see LocalCatalog)."""
        return False

    def lock(self, purpose: str, ttl: timedelta = LOCK_TTL) -> AbstractAsyncContextManager[Lease]:
        """Hold the catalog lock; renew it in the background; release it at the end."""
        return hold(self, purpose, ttl)

    # --- reading ------------------------------------------------------------------------------

    async def resolve(self, ref: str) -> SnapshotMeta:
        """``latest``, an id or a unique prefix; a damaged manifest is an error only for the
        snapshot it belongs to (``latest`` never skips silently to an older one)."""
        listing = await self.scan()
        damaged = {d.id: d for d in listing.unreadable}
        metas = {m.id: m for m in listing.snapshots}
        return _resolve(ref, [*metas, *damaged], metas, damaged)

    async def open_index(self, meta: SnapshotMeta) -> IndexReader:
        return IndexReader(await self.index_path(meta), meta)
