"""Finding a backup's catalog: the one its location record names, whatever the machine.

Reading commands open the catalog ``location.json`` names (the default one in the backup
bucket while there is no record yet); ``--catalog`` opens another one, with a warning when it
is not the backup's. Writing commands (snapshot, gc, migrate, catalog remove) refuse any
catalog but the named one, and bind the backup to the catalog they use when there is no
record yet (create-if-absent: two first snapshots at once agree on one catalog).
"""

from __future__ import annotations

import json
import logging
import socket
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from ..clock import Clock
from ..errors import CatalogError, UsageError
from ..model import S3Url
from ..storage.protocol import ObjectStore
from .catalog import APP_NAME, Catalog
from .conditional import Doc
from .local import LocalCatalog
from .location import Binding, bind, default_catalog_url, nested_catalog, read_binding
from .remote import S3Catalog

log = logging.getLogger(__name__)
MIGRATED = ".migrated"  # the suffix `catalog migrate` gives an old-layout directory it moved


class WrongCatalog(UsageError):
    """A write through a catalog that is not the one the backup bucket names (exit 2)."""


def cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir(APP_NAME)) / "index-cache"


def legacy_root() -> Path:
    """Where versions before the catalog moved into the backup bucket kept catalogs."""
    return Path(platformdirs.user_data_dir(APP_NAME)) / "catalogs"


@dataclass(frozen=True, slots=True)
class LegacyCatalog:
    """A catalog directory of the old default layout (``catalogs/<endpoint>/<bucket>``)."""

    path: Path
    ids: tuple[str, ...]  # its snapshots of the backup asked about


def find_legacy(root: Path, backup: S3Url) -> list[LegacyCatalog]:
    found = []
    for snapshots in sorted(root.glob("*/*/snapshots")):
        if MIGRATED in snapshots.parent.name:
            continue
        ids = []
        for manifest in sorted(snapshots.glob("*.json")):
            try:
                data = json.loads(manifest.read_bytes())
                recorded = S3Url.parse(str(data["backup"]))
            except (OSError, ValueError, KeyError, TypeError, UsageError):
                continue  # a damaged manifest is reported when the catalog is migrated
            if recorded == backup:  # compared as folders
                ids.append(manifest.stem)
        if ids:
            found.append(LegacyCatalog(snapshots.parent, tuple(ids)))
    return found


async def unmigrated(
    catalog: Catalog, backup: S3Url, root: Path | None = None
) -> list[LegacyCatalog]:
    """Old-layout catalogs on this machine holding snapshots of ``backup`` that ``catalog``
    does not have."""
    found = find_legacy(root or legacy_root(), backup)
    if not found:
        return []
    try:
        known = {m.id for m in await catalog.list()}
    except CatalogError:
        known = set()
    return [old for old in found if set(old.ids) - known]


async def refuse_unmigrated(catalog: Catalog, backup: S3Url) -> None:
    """gc would delete versions that snapshots still only in an old local catalog need."""
    old = await unmigrated(catalog, backup)
    if old:
        raise UsageError(
            f"{sum(len(o.ids) for o in old)} snapshot(s) of {backup} are still only in the old "
            f"local catalog {old[0].path}: gc would delete versions they need",
            hint=f"move them first: `bmb catalog migrate --backup {backup}`",
        )


class Finder:
    """Opens catalogs for one invocation: S3 ones through ``store`` (the backup side)."""

    def __init__(self, store: ObjectStore, clock: Clock, cache: Path | None = None) -> None:
        self.store = store
        self.clock = clock
        self.cache = cache or cache_dir()

    def open(self, location: str) -> Catalog:
        if location.startswith("s3://"):
            return S3Catalog(self.store, S3Url.parse(location), self.cache, self.clock)
        return LocalCatalog(Path(location).expanduser().absolute(), self.clock)

    async def binding(self, backup: S3Url) -> Binding | None:
        return (await self._record(backup))[0]

    async def _record(self, backup: S3Url) -> tuple[Binding | None, Doc]:
        await self.store.check_bucket(backup.bucket)  # a missing bucket: exit 10, never "empty"
        return await read_binding(self.store, backup)

    async def for_backup(self, backup: S3Url, explicit: str | None, *, writing: bool) -> Catalog:
        """The catalog of ``backup``: ``explicit`` (--catalog) or the one the bucket names."""
        if explicit is not None:
            refuse_nested(backup, explicit)
        binding, doc = await self._record(backup)
        if explicit is not None:
            catalog = self.open(explicit)
        elif binding is not None:
            catalog = self.named(binding)
        else:
            catalog = self.open(str(default_catalog_url(backup)))
        if binding is None and not writing:
            return catalog
        if binding is None:
            if await bind(self.store, backup, catalog, self.clock.now(), expect=doc):
                return catalog
            binding = await self.binding(backup)  # another process bound it first
        await self.check(backup, catalog, binding, writing=writing)
        return catalog

    async def check(
        self, backup: S3Url, catalog: Catalog, binding: Binding | None, *, writing: bool
    ) -> None:
        """Refuse a write through a catalog that is not the backup's (reading: a warning)."""
        if binding is None:
            return
        found = await catalog.identity()
        if found == binding.catalog_id:
            return
        message = (
            f"{catalog.location} is not the catalog of {backup}: the backup bucket names "
            f"{binding.describe()}"
        )
        if catalog.location == binding.catalog:  # the same place, another catalog
            message += (
                ", whose catalog there has been emptied"
                if found is None
                else f", but the catalog there now is another one (id {found}, not "
                f"{binding.catalog_id}): it was replaced"
            )
        if not writing:
            log.warning("%s (reading it anyway)", message)
            return
        raise WrongCatalog(
            message,
            hint="drop --catalog to use the backup's own catalog, or make this one the "
            "backup's with `bmb --catalog ... catalog migrate --backup ...`",
        )

    def named(self, binding: Binding) -> Catalog:
        if binding.is_local and binding.host and binding.host != socket.gethostname():
            raise CatalogError(
                f"the catalog of {binding.backup} is a local directory on another machine: "
                f"{binding.describe()}",
                hint="run the command there, pass --catalog with a copy of it, or move it into "
                "the backup bucket with `bmb catalog migrate --backup ... --from PATH` there",
            )
        catalog = self.open(binding.catalog)
        if isinstance(catalog, LocalCatalog) and not catalog.root.is_dir():
            raise CatalogError(
                f"the catalog of {binding.backup} should be at {binding.catalog}, which is gone",
                hint="restore the directory, or rebind with `bmb catalog migrate --backup ...`",
            )
        return catalog


def refuse_nested(backup: S3Url, catalog: str) -> None:
    """A catalog inside the backup location (but outside its reserved folder) would be synced,
    snapshotted and restored as if it were backed-up data."""
    if catalog.startswith("s3://") and nested_catalog(backup, S3Url.parse(catalog)):
        raise UsageError(
            f"the catalog {catalog} lies inside the backup location {backup}, where it would be "
            "backed up and restored as data",
            hint="use the backup's own catalog (drop --catalog): move this one there with "
            f"`bmb catalog migrate --backup {backup} --from {catalog}`",
        )
