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
markers. A deletion the server refuses (Object Lock, a missing permission) is left alone and
reported as a warning, not a failure: it is not data, and nothing reads it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import NotFoundError
from ..model import ObjectVersion, S3Url, VersionRef
from ..storage.iterate import iter_histories
from ..storage.protocol import MAX_DELETE_BATCH, ObjectStore
from ..storage.retry import retrying
from .location import reserved_prefix


@dataclass(frozen=True, slots=True)
class Tidied:
    """Noncurrent entries of the reserved folder deleted (or, in a dry run, found), and their
    bytes."""

    deleted: int = 0
    nbytes: int = 0
    refused: int = 0  # deletions the server refused (Object Lock...): left where they are
    reason: str = ""  # the first refusal's

    def warnings(self) -> tuple[str, ...]:
        """What gc reports when some could not be deleted (they are not data: no failure)."""
        if not self.refused:
            return ()
        return (
            f"{self.refused} old version(s) of the catalog's records could not be deleted "
            f"({self.reason}); they stay, unread",
        )


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
    refused: set[tuple[str, str | None]] = set()
    reason = ""
    for start in range(0, len(found), MAX_DELETE_BATCH):
        batch = found[start : start + MAX_DELETE_BATCH]
        refs = [VersionRef(backup.bucket, e.key, e.version_id) for e in batch]
        failures = await retrying(lambda: store.delete_versions(backup.bucket, refs))  # noqa: B023
        refused.update((f.key, f.version_id) for f in failures)
        reason = reason or (f"{failures[0].key}: {failures[0].reason}" if failures else "")
    kept = sum(e.size for e in found if (e.key, e.version_id) in refused)
    return Tidied(len(found) - len(refused), nbytes - kept, len(refused), reason)
