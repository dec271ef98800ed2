"""The completeness audit: a version listing checked against ListObjectsV2.

ListObjectsV2 is an independent account of a bucket's current keys, and on SeaweedFS a
complete one (it resumes from a tree position, where ListObjectVersions resumes from a key).
While a listing runs, the audit lists the same prefix with ListObjectsV2 and keeps a 64-bit
hash of every key; the listing hands it every key whose newest entry is not a delete marker.
At the end the two multisets are compared by count and sum (no sort, no order needed: on
SeaweedFS ListObjectsV2 is not in key order). When they differ, the keys ListObjectsV2 has and
the listing lacks are named by a second ListObjectsV2 pass and each is confirmed with HEAD:
a key gone since, or written after the listing began (minus a margin for clock skew) and after
the instant the listing is read at (a snapshot's T), is a concurrent change, not a loss.
Confirmed losses raise :class:`~..errors.IncompleteListing`.

The ListObjectsV2 walk splits into ranges like the version listing on a server known to list
in key order (:func:`.current.walk_objects`, ``ordered``); on any other it goes in one sequence
by the server's continuation token, the one walk complete whatever the server's order (a
SeaweedFS behind a proxy that renames it: split by key there, this walk lost the same keys as
the listing it checked, and let it pass). On a tree-walking server it is one sequence: a range
there can only end at the first key past its cut, so each split lists up to a page twice
(SeaweedFS, 24k keys in one folder: 0.64 s of server CPU in 8 ranges, 0.49 s in one), and
one sequence still ends long before the version listing it checks (~4x its server cost).

Cost: one ListObjectsV2 page per 1,000 current keys (about a fifth of a version page's
server time on SeaweedFS), 8 bytes of memory per key on each side.
"""

from __future__ import annotations

import asyncio
import hashlib
from array import array
from datetime import datetime, timedelta
from typing import Any

from ..clock import SYSTEM_CLOCK, Clock
from ..errors import IncompleteListing, NotFoundError
from ..model import KeyHistory, ObjectSummary
from .current import CONCURRENCY, WalkStats, walk_keys, walk_objects
from .protocol import MAX_PAGE, ObjectStore
from .retry import retrying

MARGIN = timedelta(seconds=2)  # a key this close to the listing's start may be a race
_MASK = (1 << 64) - 1


def _hash(key: str) -> int:
    return hash(key) & _MASK


def stable_hash(key: str) -> int:
    """A key's 64-bit hash, the same in every process (``hash()`` is salted per process): what
    a listing range run on a cluster's worker hands the audit (storage/rangejob.py)."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


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
        cut: datetime | None = None,
        stable: bool = False,
        started: datetime | None = None,
        ordered: bool = False,
    ) -> None:
        self.store = store
        self._hash = stable_hash if stable else _hash  # stable: the listing's ranges ran elsewhere
        self.cut = cut  # the instant the listing is read at (a snapshot's T), if any
        self.bucket = bucket
        self.prefix = prefix
        self.skip_prefix = skip_prefix
        self.tree = tree
        self.ordered = ordered  # ListObjectsV2 known to come in key order: ranges may split it
        self.page_size = page_size
        # when the listing began: the server's clock (it stamps the keys), else this one's
        self.started = started if started is not None else clock.now()
        self.stats = WalkStats()
        self._listed = array("Q")  # keys the version listing found live
        self._shown = array("Q")  # keys ListObjectsV2 shows

    def note(self, history: KeyHistory) -> None:
        """A key the version listing found; counted when its newest entry is a version."""
        if history.current is not None:
            self._listed.append(self._hash(history.key))

    def note_hashes(self, hashes: array[int]) -> None:
        """Keys a listing range found live elsewhere, as :func:`stable_hash` es (``stable``)."""
        assert self._hash is stable_hash, "a stable audit takes other processes' hashes"
        self._listed.extend(hashes)

    async def run(self) -> None:
        """List the prefix with ListObjectsV2 (concurrently with the version listing)."""

        def keep(key: str) -> None:
            self._shown.append(self._hash(key))

        await walk_keys(self.store, self.bucket, self.prefix, keep, **self._options(self.stats))

    async def check(self) -> None:
        """Raise IncompleteListing naming the keys the version listing missed."""
        if len(self._listed) == len(self._shown) and sum(self._listed) == sum(self._shown):
            return
        missing = set(self._shown).difference(self._listed)
        if not missing:
            return  # the listing saw more: keys written meanwhile, not a short result
        found: list[ObjectSummary] = []

        def keep(obj: ObjectSummary) -> None:
            if self._hash(obj.key) in missing:
                found.append(obj)

        again = WalkStats()
        await walk_objects(self.store, self.bucket, self.prefix, keep, **self._options(again))
        self.stats.requests += again.requests
        lost = await self._confirm(found)
        if lost:
            where = f"s3://{self.bucket}/{self.prefix}"
            raise IncompleteListing(where, sorted(lost), tree=self.tree)

    async def _confirm(self, found: list[ObjectSummary]) -> list[str]:
        """The keys that are there now and were before the listing began, or at its cut: a
        write stamped at or before the cut is never excused as a race (the margin would
        reach into T's second)."""
        cutoff = self.started - MARGIN
        gate = asyncio.Semaphore(CONCURRENCY)

        def before(stamp: datetime) -> bool:
            return stamp < cutoff or (self.cut is not None and stamp <= self.cut)

        async def lost(obj: ObjectSummary) -> bool:
            if not before(obj.last_modified):
                return False
            async with gate:
                try:
                    info = await retrying(lambda: self.store.head(self.bucket, obj.key))
                except NotFoundError:
                    return False  # deleted since
            return before(info.last_modified)

        verdicts = await asyncio.gather(*(lost(obj) for obj in found))
        return [obj.key for obj, gone in zip(found, verdicts, strict=True) if gone]

    def _options(self, stats: WalkStats) -> dict[str, Any]:
        """How both passes walk ListObjectsV2."""
        return {
            "skip_prefix": self.skip_prefix, "tree": self.tree, "page_size": self.page_size,
            "stats": stats, "concurrency": CONCURRENCY if self.ordered and not self.tree else 1,
        }  # fmt: skip
