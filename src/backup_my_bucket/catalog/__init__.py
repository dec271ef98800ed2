"""Snapshot indexes and the catalogs that store them (local, or in a bucket: by default the
backup bucket's reserved folder, see location.py)."""

from ..storage.scratch import pid_alive
from .catalog import Catalog, Damaged, Listing, new_snapshot_id, resolve_id
from .local import LocalCatalog
from .lock import LockInfo
from .remote import S3Catalog

__all__ = [
    "Catalog",
    "Damaged",
    "Listing",
    "LocalCatalog",
    "LockInfo",
    "S3Catalog",
    "new_snapshot_id",
    "pid_alive",
    "resolve_id",
]
