"""``catalog migrate``: move snapshots into the catalog the backup bucket names, once.

Sources: the catalog directories of the old default layout on this machine that hold
snapshots of the backup (``<user data dir>/backup-my-bucket/catalogs/<endpoint>/<bucket>``),
catalogs given with ``--from``, and the catalog the backup named until now when the target is
another one (``--catalog`` makes the target the backup's catalog). Every snapshot not in the
target yet is checked (its index against its checksum) and published there, index first and
manifest last, under the target's lock; then the backup is bound to the target, and the
sources are retired: an old-layout directory is renamed ``<name>.migrated``, a ``--from``
catalog inside the backup location is removed (manifests first), others are left as they are.
Rerunning it is harmless: what is already there is skipped.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CatalogError, CorruptIndex
from ..model import S3Url
from .catalog import Catalog
from .finder import MIGRATED, Finder, find_legacy, legacy_root
from .local import LocalCatalog
from .location import bind, nested_catalog, read_binding
from .lock import Lease
from .remote import S3Catalog


@dataclass(frozen=True, slots=True)
class Source:
    catalog: Catalog
    retire: str  # "rename" | "remove" | "keep"


@dataclass(slots=True)
class MigrateResult:
    catalog: str
    sources: list[str] = field(default_factory=list)
    copied: list[str] = field(default_factory=list)
    present: int = 0
    damaged: list[dict[str, str]] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    bound: bool = False
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "catalog": self.catalog,
            "sources": self.sources,
            "copied": self.copied,
            "already_there": self.present,
            "damaged": self.damaged,
            "retired": self.retired,
            "bound": self.bound,
            "dry_run": self.dry_run,
        }


def sources_for(
    finder: Finder, backup: S3Url, explicit: Sequence[str], root: Path | None = None
) -> list[Source]:
    """``--from`` catalogs, else this machine's old-layout catalogs of ``backup``."""
    if explicit:
        return [Source(finder.open(where), _retire_rule(backup, where)) for where in explicit]
    return [
        Source(LocalCatalog(old.path, finder.clock), "rename")
        for old in find_legacy(root or legacy_root(), backup)
    ]


def _retire_rule(backup: S3Url, where: str) -> str:
    """A catalog moved in from inside the backup location is removed (it would be data)."""
    if where.startswith("s3://") and nested_catalog(backup, S3Url.parse(where)):
        return "remove"
    return "keep"


async def migrate(
    finder: Finder, backup: S3Url, target: Catalog, sources: Sequence[Source], *, dry_run: bool
) -> MigrateResult:
    result = MigrateResult(target.location, dry_run=dry_run)
    binding, doc = await read_binding(finder.store, backup)
    target_id = await target.identity()
    rebind = binding is None or binding.catalog_id != target_id
    all_sources = list(sources)
    previous: Catalog | None = None
    if binding is not None and rebind:
        previous = finder.named(binding)  # refuses one on another machine: run it there
        all_sources.append(Source(previous, "keep"))
    lease: Lease | None = None
    async with contextlib.AsyncExitStack() as stack:
        if not dry_run:
            lease = await stack.enter_async_context(target.lock("migrate"))
            if previous is not None:  # no snapshot or gc through the old one meanwhile
                await stack.enter_async_context(previous.lock("migrate"))
        known = {m.id for m in await target.list()}
        for source in all_sources:
            result.sources.append(source.catalog.location)
            await _carry(source.catalog, target, known, result, dry_run)
        if lease is not None:
            await lease.check("binding the backup to the catalog")
        result.bound = rebind
        now = finder.clock.now()
        if (
            rebind
            and not dry_run
            and await bind(finder.store, backup, target, now, expect=doc) is None
        ):
            raise CatalogError(
                f"the location record of {backup} changed during the migration",
                hint="rerun `catalog migrate`",
            )
    if not dry_run:
        for source in sources:
            retired = await _retire(source)
            if retired:
                result.retired.append(retired)
    return result


async def _carry(
    source: Catalog, target: Catalog, known: set[str], result: MigrateResult, dry_run: bool
) -> None:
    listing = await source.scan()
    for bad in listing.unreadable:
        result.damaged.append({"id": bad.id, "where": bad.where, "problem": bad.problem})
    for meta in listing.snapshots:
        if meta.id in known:
            result.present += 1
            continue
        try:
            reader = await source.open_index(meta)  # size and checksum, before it is copied
        except CorruptIndex as exc:
            result.damaged.append({"id": meta.id, "where": source.location, "problem": exc.message})
            continue
        if not dry_run:
            await target.publish(meta, reader.path)
        known.add(meta.id)
        result.copied.append(meta.id)


async def _retire(source: Source) -> str | None:
    catalog = source.catalog
    if source.retire == "rename" and isinstance(catalog, LocalCatalog):
        new = catalog.root.with_name(catalog.root.name + MIGRATED)
        n = 1
        while new.exists():
            n += 1
            new = catalog.root.with_name(f"{catalog.root.name}{MIGRATED}.{n}")
        catalog.root.rename(new)
        return str(new)
    if source.retire == "remove" and isinstance(catalog, S3Catalog):
        ids = [m.id for m in await catalog.list()]
        await catalog.remove(ids)  # manifests first, then indexes
        await catalog.sweep(await catalog.leftovers())
        for name in ("lock.json", "catalog.json"):
            await catalog.store.delete(catalog.url.bucket, catalog._key(name))
        return catalog.location
    return None
