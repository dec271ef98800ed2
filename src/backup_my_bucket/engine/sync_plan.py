"""Sync's plan (pure): a merge-join of two key-sorted streams of current versions, keys
relative to each side's folder. Each key becomes one :class:`SyncItem`: ``copy`` (new or
changed), ``skip`` (unchanged) or ``delete`` (gone from the source: the backup gets a delete
marker, older versions stay). What the listings cannot tell is settled next
(:func:`settle_sync`, :mod:`.confirm`). The listings and the execution: :mod:`.sync`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

from ..errors import StorageError
from ..model import ObjectVersion
from .actions import ActionKind
from .confirm import Checker, Verdict
from .filters import KeyFilter
from .snapshot import ListedState
from .workers import first_of_both, in_order


@dataclass(frozen=True, slots=True)
class SyncItem:
    """One key of the plan; ``key`` is relative to the source and backup prefixes."""

    action: ActionKind
    key: str
    source: ObjectVersion | None = None
    backup: ObjectVersion | None = None

    @property
    def size(self) -> int:
        return self.source.size if self.source is not None else 0

    @property
    def reason(self) -> str:
        if self.action is ActionKind.COPY:
            return "missing in the backup" if self.backup is None else "changed"
        return "gone from the source" if self.action is ActionKind.DELETE else "unchanged"

    def to_json(self) -> dict[str, str | int | None]:
        """One planned action (``--dry-run --json``, docs/cli.md): the source version a copy
        reads, or the backup version a delete marker will hide."""
        version = self.source if self.source is not None else self.backup
        return {
            "action": self.action.value,
            "key": self.key,
            "version_id": version.version_id if version is not None else None,
            "size": version.size if version is not None else 0,
            "reason": self.reason,
        }


_MD5 = re.compile(r"^[0-9a-fA-F]{32}$")


def unchanged(source: ObjectVersion, backup: ObjectVersion) -> bool:
    """Whether the backup's current version already holds the source's current content.

    Same size and same ETag. Two single-part MD5 ETags that differ mean different bytes. Any
    other pair (a multipart ``…-N`` ETag on either side, a missing one) is not comparable:
    then a backup copy written strictly after the source version counts as current.
    """
    if source.size != backup.size:
        return False
    if source.etag and source.etag == backup.etag:
        return True
    if _MD5.match(source.etag or "") and _MD5.match(backup.etag or ""):
        return False
    return backup.last_modified > source.last_modified


async def _ascending(
    entries: AsyncIterable[ObjectVersion], side: str
) -> AsyncIterator[ObjectVersion]:
    previous: str | None = None
    async for entry in entries:
        if previous is not None and entry.key <= previous:
            raise StorageError(
                f"the {side} listing is out of order: {entry.key!r} after {previous!r}"
            )
        if entry.is_delete_marker:
            raise ValueError("plan_sync takes current versions, not delete markers")
        previous = entry.key
        yield entry


async def plan_sync(
    source: AsyncIterable[ObjectVersion],
    backup: AsyncIterable[ObjectVersion],
    key_filter: KeyFilter | None = None,
) -> AsyncIterator[SyncItem]:
    """Merge-join two strictly ascending streams of current versions (relative keys)."""
    in_scope = key_filter or KeyFilter()
    src_it = aiter(_ascending(source, "source"))
    bak_it = aiter(_ascending(backup, "backup"))
    src, bak = await first_of_both(src_it, bak_it)
    while src is not None or bak is not None:
        if bak is None or (src is not None and src.key < bak.key):
            assert src is not None
            item = SyncItem(ActionKind.COPY, src.key, src, None)
            src = await anext(src_it, None)
        elif src is None or bak.key < src.key:
            item = SyncItem(ActionKind.DELETE, bak.key, None, bak)
            bak = await anext(bak_it, None)
        else:
            action = ActionKind.SKIP if unchanged(src, bak) else ActionKind.COPY
            item = SyncItem(action, src.key, src, bak)
            src, bak = await anext(src_it, None), await anext(bak_it, None)
        if in_scope(item.key):
            yield item


async def settle_sync(
    plan: AsyncIterable[SyncItem], checker: Checker, workers: int
) -> AsyncIterator[SyncItem]:
    """The plan with what the listings could not tell settled (see :mod:`.confirm`): a copy
    caused only by an untrusted ETag may become a skip, a skip whose headers, metadata (or,
    with ``compare_tags``, tags) differ becomes a copy. A check that fails copies the key:
    a copy never loses anything, and fails visibly if the source cannot be read."""

    def needs(item: SyncItem) -> bool:
        if item.source is None or item.backup is None:
            return False
        return checker.needed(item.source, item.backup, item.action is ActionKind.SKIP)

    async def settle(item: SyncItem) -> SyncItem:
        assert item.source is not None and item.backup is not None
        settled = await checker.settle(item.source, item.backup, unchanged)
        action = ActionKind.SKIP if settled.verdict is Verdict.SAME else ActionKind.COPY
        return dataclasses.replace(item, action=action)

    async for outcome in in_order(plan, settle, needs=needs, workers=workers):
        if outcome.error is not None:
            yield dataclasses.replace(outcome.item, action=ActionKind.COPY)
        else:
            yield outcome.result or outcome.item


async def stopping_at_writes(
    plan: AsyncIterable[SyncItem], listed: ListedState
) -> AsyncIterator[SyncItem]:
    async for item in plan:
        if item.action is not ActionKind.SKIP:
            listed.stop()  # the backup will change: its listing is no snapshot
        yield item
