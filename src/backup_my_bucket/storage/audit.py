"""The completeness audit: a version listing checked against ListObjectsV2.

ListObjectsV2 is an independent account of a bucket's current keys, and on SeaweedFS a
complete one (it resumes from a tree position, where ListObjectVersions resumes from a key).
While a listing runs, the audit lists the same prefix with ListObjectsV2 and keeps a 64-bit
hash of every key; the listing hands it every key whose newest entry is not a delete marker.
At the end the two multisets are compared by count and sum (no sort, no order needed: on
SeaweedFS ListObjectsV2 is not in key order). When they differ, the keys ListObjectsV2 has and
the listing lacks are named by a second ListObjectsV2 pass and each is confirmed with HEAD:
a key gone since, or written after the listing began (minus a margin for clock skew), is a
concurrent change, not a loss. Confirmed losses raise :class:`~..errors.IncompleteListing`.

The ListObjectsV2 walk splits into ranges like the version listing, on a tree-walking server
only where walk order and key order agree (see :meth:`Audit._walk`).

Cost: one ListObjectsV2 page per 1,000 current keys (about a fifth of a version page's
server time on SeaweedFS), 8 bytes of memory per key on each side.
"""

from __future__ import annotations

import asyncio
import os
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from ..clock import SYSTEM_CLOCK, Clock
from ..errors import IncompleteListing, NotFoundError
from ..model import KeyHistory, ObjectSummary
from .paging import MAX_CHAR, is_safe, split_keys
from .protocol import MAX_PAGE, ObjectStore
from .retry import retrying

MARGIN = timedelta(seconds=2)  # a key this close to the listing's start may be a race
CONCURRENCY = 8  # ListObjectsV2 requests at once (each is cheap for the server)
_MASK = (1 << 64) - 1


def _hash(key: str) -> int:
    return hash(key) & _MASK


@dataclass
class AuditStats:
    requests: int = 0
    keys: int = 0
    ranges: int = 1


class Audit:
    """Check one version listing of ``prefix`` in ``bucket`` (see the module docstring)."""

    def __init__(
        self,
        store: ObjectStore,
        bucket: str,
        prefix: str = "",
        *,
        skip_prefix: str | None = None,
        tree: bool = False,
        page_size: int = MAX_PAGE,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.store = store
        self.bucket = bucket
        self.prefix = prefix
        self.skip_prefix = skip_prefix
        self.tree = tree
        self.page_size = page_size
        self.started = clock.now()
        self.stats = AuditStats()
        self._listed = array("Q")  # keys the version listing found live
        self._shown = array("Q")  # keys ListObjectsV2 shows

    def note(self, history: KeyHistory) -> None:
        """A key the version listing found; counted when its newest entry is a version."""
        if history.current is not None:
            self._listed.append(_hash(history.key))

    async def run(self) -> None:
        """List the prefix with ListObjectsV2 (concurrently with the version listing)."""

        def keep(obj: ObjectSummary) -> None:
            self._shown.append(_hash(obj.key))

        await self._walk(keep)
        self.stats.keys = len(self._shown)

    async def check(self) -> None:
        """Raise IncompleteListing naming the keys the version listing missed."""
        if len(self._listed) == len(self._shown) and sum(self._listed) == sum(self._shown):
            return
        missing = set(self._shown).difference(self._listed)
        if not missing:
            return  # the listing saw more: keys written meanwhile, not a short result
        found: list[ObjectSummary] = []

        def keep(obj: ObjectSummary) -> None:
            if _hash(obj.key) in missing:
                found.append(obj)

        await self._walk(keep)
        lost = await self._confirm(found)
        if lost:
            where = f"s3://{self.bucket}/{self.prefix}"
            raise IncompleteListing(where, sorted(lost))

    async def _confirm(self, found: list[ObjectSummary]) -> list[str]:
        """The keys that are there now and were before the listing began."""
        cutoff = self.started - MARGIN
        gate = asyncio.Semaphore(CONCURRENCY)

        async def lost(obj: ObjectSummary) -> bool:
            if obj.last_modified >= cutoff:
                return False
            async with gate:
                try:
                    info = await retrying(lambda: self.store.head(self.bucket, obj.key))
                except NotFoundError:
                    return False  # deleted since
            return info.last_modified < cutoff

        verdicts = await asyncio.gather(*(lost(obj) for obj in found))
        return [obj.key for obj, gone in zip(found, verdicts, strict=True) if gone]

    # --- the ListObjectsV2 walk --------------------------------------------------------------

    async def _walk(self, keep: Callable[[ObjectSummary], None]) -> None:
        """ListObjectsV2 over the prefix, ``keep`` called for every key (in no set order).

        The walk splits into ranges like the version listing's (each new range takes what
        follows a trie node). On a server that lists in key order the range that split narrows
        its Prefix and goes on after its last key. A tree-walking server (SeaweedFS) can only
        be resumed by its continuation token, and lists in walk order: there a range splits
        only at a name one level below the prefix that a walk cannot skip keys from
        (``X`` + U+10FFFF, no ``/`` in ``X`` past the prefix), where walk order and key order
        agree on what lies before the cut and what after; the range goes on with its token and
        ends at the first key past the cut.
        """
        gate = asyncio.Semaphore(CONCURRENCY)
        tasks: set[asyncio.Task[None]] = set()

        async def walk_range(after: str, until: str | None, prefix: str) -> None:
            token: str | None = None
            highest = after
            while True:
                async with gate:
                    page = await retrying(
                        lambda: self.store.list_objects_page(
                            self.bucket,
                            prefix=prefix,  # noqa: B023  # awaited in the loop
                            start_after=after if token is None else "",  # noqa: B023
                            continuation_token=token,  # noqa: B023
                            max_keys=self.page_size,
                        )
                    )
                self.stats.requests += 1
                lowest = None
                for obj in page.objects:
                    key = obj.key
                    if key <= after or not key.startswith(self.prefix):
                        continue  # below StartAfter (a tree walk shows them after it)
                    if until is not None and key > until:
                        return  # the rest belongs to the range after this one
                    highest = max(highest, key)
                    lowest = key if lowest is None else min(lowest, key)
                    if self.skip_prefix is None or not key.startswith(self.skip_prefix):
                        keep(obj)
                if not page.is_truncated:
                    return
                token = page.next_token
                if len(tasks) >= CONCURRENCY or lowest is None:
                    continue
                deepest = len(os.path.commonprefix([lowest, highest]))  # noqa: RUF071
                cuts = split_keys(highest, until, prefix, deepest)
                if self.tree:
                    cuts = [
                        c for c in cuts if "/" not in c[len(prefix) :] and is_safe(c, prefix, ())
                    ]
                cuts = cuts[-(CONCURRENCY - len(tasks)) :]
                for cut in cuts:  # shallowest first: each new range takes (cut, previous cut]
                    start(cut, until, prefix)
                    until = cut
                    if not self.tree:
                        prefix = cut[: -len(MAX_CHAR)]
                if cuts and not self.tree:  # go on after the last key, in the narrowed node
                    after, token = max(after, highest), None

        def start(after: str, until: str | None, prefix: str) -> None:
            self.stats.ranges += after != ""
            tasks.add(asyncio.create_task(walk_range(after, until, prefix)))

        start("", None, self.prefix)
        try:
            while tasks:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    tasks.discard(task)
                    task.result()  # an error ends the audit (and the listing) with it
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
