"""The backup location's reserved area: where a backup keeps its catalog and its records.

Every backup location ``s3://bucket/P/`` (``P/`` empty for a whole bucket) reserves the
folder ``P/.backup-my-bucket/`` (:data:`RESERVED`) for itself:

    P/.backup-my-bucket/location.json   which catalog holds this backup's snapshots (format 1.0)
    P/.backup-my-bucket/history.json    the restorable span (catalog/history.py)
    P/.backup-my-bucket/catalog/        the default catalog (catalog.json, snapshots/, index/,
                                        lock.json)
    P/.backup-my-bucket/probe           tells whether the server honours conditional writes

The reserved folder is excluded from every engine's view of the backup (sync, snapshot,
restore, gc, verify call :func:`reserved_prefix`), and a source with keys under it is refused.
Because the record lives with the data, every machine, profile and spelling of the endpoint
finds the same catalog; a local directory only caches indexes.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .. import __version__
from ..errors import CatalogError, UnsupportedFormat
from ..model import S3Url
from ..storage.protocol import ObjectStore
from ..units import format_time
from .catalog import Catalog
from .conditional import Doc, conditional_writes, read_doc, swap_doc

RESERVED = ".backup-my-bucket/"
LOCATION_FORMAT = "1.0"
_MAJOR = 1


def reserved_prefix(url: S3Url) -> str:
    """The reserved folder of the backup location ``url``: every engine skips these keys."""
    return url.prefix + RESERVED  # S3Url's prefix is always a folder


def nested_catalog(backup: S3Url, catalog: S3Url) -> bool:
    """Whether ``catalog`` lies inside the backup location but outside its reserved folder,
    where it would be synced, snapshotted and restored as data."""
    inside = catalog.bucket == backup.bucket and catalog.prefix.startswith(backup.prefix)
    return inside and not catalog.prefix.startswith(reserved_prefix(backup))


def default_catalog_url(backup: S3Url) -> S3Url:
    return S3Url(backup.bucket, reserved_prefix(backup) + "catalog/")


def record_key(backup: S3Url, name: str) -> str:
    return reserved_prefix(backup) + name


def probe_key(backup: S3Url) -> str:
    """The object that tells whether the server honours conditional writes (conditional.py)."""
    return reserved_prefix(backup) + "probe"


@dataclass(frozen=True, slots=True)
class Binding:
    """``location.json``: the catalog the backup location names as its own."""

    backup: str
    catalog: str  # s3://bucket/prefix/ or a local directory
    catalog_id: str
    bound_at: datetime
    host: str | None = None  # a local catalog: the machine it is on
    tool_version: str = ""
    format_version: str = LOCATION_FORMAT

    @property
    def is_local(self) -> bool:
        return not self.catalog.startswith("s3://")

    def describe(self) -> str:
        return f"{self.catalog} on {self.host}" if self.is_local and self.host else self.catalog

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "backup": self.backup,
            "catalog": self.catalog,
            "catalog_id": self.catalog_id,
            "host": self.host,
            "bound_at": format_time(self.bound_at),
            "tool_version": self.tool_version,
        }

    @classmethod
    def from_json(cls, data: Any, where: str) -> Binding:
        version = str(data.get("format_version", "")) if isinstance(data, dict) else ""
        major = version.partition(".")[0]
        if major.isdigit() and int(major) > _MAJOR:
            raise UnsupportedFormat(
                f"{where} is in format {version}, newer than this tool reads ({LOCATION_FORMAT})",
                hint="upgrade backup-my-bucket",
            )
        try:
            assert isinstance(data, dict)
            return cls(
                backup=str(data["backup"]),
                catalog=str(data["catalog"]),
                catalog_id=str(data["catalog_id"]),
                bound_at=datetime.fromisoformat(str(data["bound_at"])),
                host=data.get("host") if isinstance(data.get("host"), str) else None,
                tool_version=str(data.get("tool_version", "")),
                format_version=version,
            )
        except (AssertionError, KeyError, TypeError, ValueError) as exc:
            raise CatalogError(
                f"{where} is damaged ({exc!r}): cannot tell which catalog holds the snapshots",
                hint="restore its previous version (the bucket is versioned), or rebind the "
                "catalog with `bmb [--catalog ...] catalog migrate --backup ...`",
            ) from exc


async def read_binding(store: ObjectStore, backup: S3Url) -> tuple[Binding | None, Doc]:
    key = record_key(backup, "location.json")
    doc = await read_doc(store, backup.bucket, key)
    if doc.data is None:
        return None, doc
    where = f"s3://{backup.bucket}/{key}"
    try:
        data = json.loads(doc.data)
    except ValueError:
        data = None
    return Binding.from_json(data, where), doc


async def bind(
    store: ObjectStore, backup: S3Url, catalog: Catalog, now: datetime, *, expect: Doc
) -> Binding | None:
    """Make ``catalog`` the backup's catalog if the record is still ``expect`` (absent, or
    the binding being replaced). Returns the new binding, or None when another process
    changed the record first (read it again)."""
    catalog_id = await catalog.ensure_identity()
    local = not catalog.location.startswith("s3://")
    binding = Binding(
        backup=str(backup),
        catalog=catalog.location,
        catalog_id=catalog_id,
        bound_at=now,
        host=socket.gethostname() if local else None,
        tool_version=__version__,
    )
    data = json.dumps(binding.to_json(), indent=2).encode()
    conditional = await conditional_writes(store, backup.bucket, probe_key(backup))
    key = record_key(backup, "location.json")
    done = await swap_doc(store, backup.bucket, key, data, expect, conditional)
    return None if done is None else binding
