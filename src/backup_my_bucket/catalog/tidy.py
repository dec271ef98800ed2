"""A backup location's reserved folder kept to its current entries (design rule 25).

In a versioned bucket every write of a record (the lock at each command that takes it, the
history, a catalog document) leaves the version it replaced, and a removed snapshot's manifest
and index stay as noncurrent versions behind a delete marker. Nothing reads them — every read
takes a key's current version, every conditional write compares the current ETag — yet every
listing of the location walks them, and a removed index is as large as its snapshot. gc calls
:func:`tidy_reserved` under the catalog lock to delete them.

An entry is deleted only when three signs agree that it is not its key's current one: it is
not the first entry of its key in the listing (newest first), the server flags it not latest,
and it is not the version a HEAD of the key shows now. A delete marker on top of a key is
never deleted (that would bring the version under it back), so a removed snapshot leaves two
markers. A deletion the server refuses is handed back: gc reports it as it reports its own
(rule 17: kept by Object Lock, or a failure, exit 3).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ItemFailure, NotFoundError
from ..model import ObjectVersion, S3Url, VersionRef
from ..storage.iterate import iter_histories
from ..storage.protocol import MAX_DELETE_BATCH, ObjectStore
from ..storage.retry import retrying
from .location import reserved_prefix


@dataclass(frozen=True, slots=True)
class Tidied:
    """Noncurrent entries of the reserved folder deleted (or, in a dry run, found), their
    bytes, and the deletions the server refused (gc sorts them as it sorts its own: rule 17)."""

    deleted: int = 0
    nbytes: int = 0
    refused: tuple[ItemFailure, ...] = ()


async def noncurrent(store: ObjectStore, bucket: str, prefix: str) -> list[ObjectVersion]:
    """The entries under ``prefix`` that are surely not their key's current one (module
    docstring), in listing order."""
    found: list[ObjectVersion] = []
    async for history in iter_histories(store, bucket, prefix=prefix):
        older = [e for e in history.versions[1:] if not e.is_latest and e.version_id]
        if not older:
            continue
        try:
            head = await retrying(lambda: store.head(bucket, history.key))  # noqa: B023
            shown: str | None = head.version_id
        except NotFoundError:
            shown = None  # a delete marker on top (never deleted here), or the key is gone
        found += [e for e in older if e.version_id != shown]
    return found


async def tidy_reserved(store: ObjectStore, backup: S3Url, *, dry_run: bool = False) -> Tidied:
    """Delete the noncurrent entries of ``backup``'s reserved folder (call under the catalog
    lock); with ``dry_run``, only count them."""
    found = await noncurrent(store, backup.bucket, reserved_prefix(backup))
    nbytes = sum(e.size for e in found)
    if dry_run or not found:
        return Tidied(len(found), nbytes)
    refused: list[ItemFailure] = []
    for start in range(0, len(found), MAX_DELETE_BATCH):
        batch = found[start : start + MAX_DELETE_BATCH]
        refs = [VersionRef(backup.bucket, e.key, e.version_id) for e in batch]
        refused += await retrying(lambda: store.delete_versions(backup.bucket, refs))  # noqa: B023
    left = {(f.key, f.version_id) for f in refused}
    kept = sum(e.size for e in found if (e.key, e.version_id) in left)
    return Tidied(len(found) - len(left), nbytes - kept, tuple(refused))
