"""Pure functions over version histories: the vocabulary every engine speaks.

A *history* is every version and delete marker of one key, newest first in the order the
listing gave. Within one key the listing's order wins over timestamps: S3 keeps whole seconds,
so a write and a delete in the same second tie, and only the order tells which came last.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable
from datetime import datetime

from ..errors import StorageError, VersioningNotEnabled
from ..model import KeyHistory, ObjectVersion, Versioning
from ..storage.protocol import ObjectStore

__all__ = ["KeyHistory", "current_state", "histories", "require_versioning", "state_at"]


def _check_order(previous: str | None, key: str) -> None:
    if previous is not None and key <= previous:
        raise StorageError(
            f"version listing out of order: {key!r} after {previous!r}",
            hint="the server must list keys in ascending order; report this server's behaviour",
        )


async def histories(entries: AsyncIterable[ObjectVersion]) -> AsyncIterator[KeyHistory]:
    """Group a key-ordered version listing into one history per key."""
    key: str | None = None
    previous: str | None = None
    group: list[ObjectVersion] = []
    async for entry in entries:
        if entry.key != key:
            if key is not None:
                yield KeyHistory(key, tuple(group))
                previous = key
            _check_order(previous, entry.key)
            key, group = entry.key, []
        group.append(entry)
    if key is not None:
        yield KeyHistory(key, tuple(group))


async def state_at(
    entries: AsyncIterable[ObjectVersion], at: datetime
) -> AsyncIterator[ObjectVersion]:
    """For each key, the version live at ``at``; keys deleted or not yet written are skipped."""
    async for history in histories(entries):
        live = history.live_at(at)
        if live is not None:
            yield live


async def current_state(entries: AsyncIterable[ObjectVersion]) -> AsyncIterator[ObjectVersion]:
    """For each key, its current version (the bucket as a reader sees it now)."""
    async for history in histories(entries):
        if history.current is not None:
            yield history.current


async def require_versioning(store: ObjectStore, bucket: str) -> None:
    """Refuse to treat an unversioned bucket as a backup: history there would be destroyed."""
    if await store.get_versioning(bucket) is not Versioning.ENABLED:
        raise VersioningNotEnabled(bucket)


class Seen:
    """The oldest and the newest entry (versions and delete markers alike) seen in a listing.
    The oldest: where a backup's history begins when nothing recorded it (see
    catalog/history.py); the newest: whether a snapshot cut at a given second holds everything
    the listing showed (``SyncResult.held_at``)."""

    def __init__(self) -> None:
        self.oldest: datetime | None = None
        self.newest: datetime | None = None

    def add(self, entries: Iterable[ObjectVersion]) -> None:
        for entry in entries:
            stamp = entry.last_modified
            if self.oldest is None or stamp < self.oldest:
                self.oldest = stamp
            if self.newest is None or stamp > self.newest:
                self.newest = stamp

    def stretch(self, oldest: datetime, newest: datetime) -> None:
        """Take in the oldest and the newest stamp of entries listed elsewhere."""
        if self.oldest is None or oldest < self.oldest:
            self.oldest = oldest
        if self.newest is None or newest > self.newest:
            self.newest = newest

    async def tap(self, entries: AsyncIterable[ObjectVersion]) -> AsyncIterator[ObjectVersion]:
        """Pass a listing through, noting its oldest and newest entries."""
        async for entry in entries:
            self.add((entry,))
            yield entry
