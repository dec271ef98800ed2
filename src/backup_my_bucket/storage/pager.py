"""One range's paging: the step every listing range takes, in this process or in a cluster unit.

:class:`Pager` fetches one page of a :class:`~.ranges.Unit` and applies it (the plain markers,
or TREE paging through :class:`~.treewalk.TreeWalk`); :func:`split_range` cuts what is left of
a range into new ranges after a page. :class:`~.listing.ParallelListing` runs them in its own
tasks; :func:`~.rangejob.list_range` runs them for a bounded number of pages on a cluster's
worker. Both are the same code, so the TREE safety rules hold in either place.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

from ..errors import StorageError
from ..model import VersionPage
from .paging import MAX_CHAR, Paging, fan_out, is_safe, split_keys
from .protocol import MAX_PAGE, ObjectStore
from .ranges import History, ListingStats, Unit, kept
from .retry import retrying
from .treewalk import Insert, TreeWalk

POINT_SUFFIX = ".versions"  # SeaweedFS matches a Prefix against this directory's name


class Pager:
    """Pages ranges of one listing of ``bucket``; ``insert`` puts new ranges after a range
    (TREE paging adds them), ``requests`` bounds the requests in flight."""

    def __init__(
        self,
        store: ObjectStore,
        bucket: str,
        *,
        page_size: int,
        paging: Paging,
        stems: bool,
        stats: ListingStats,
        requests: asyncio.Semaphore,
        insert: Insert,
        on_page: Callable[[int], None] | None = None,
    ) -> None:
        self.store = store
        self.bucket = bucket
        self.page_size = page_size
        self.paging = paging
        self.stems = stems
        self.stats = stats
        self.requests = requests
        self.on_page = on_page
        self.tree = (
            TreeWalk(store, bucket, stats, requests, insert, stems=stems)
            if paging is Paging.TREE
            else None
        )

    async def fetch(self, unit: Unit[Any]) -> VersionPage:
        if unit.point is not None:
            prefix, marker, version, size = unit.point + POINT_SUFFIX, "", "", MAX_PAGE
        else:
            prefix, marker, size = unit.prefix, unit.wire, self.page_size
            version = unit.inside if marker == unit.after else ""
        if marker and marker < prefix:
            raise AssertionError(f"a marker below the prefix: {marker!r} < {prefix!r}")
        async with self.requests:
            page = await retrying(
                lambda: self.store.list_versions_page(
                    self.bucket,
                    prefix=prefix,
                    key_marker=marker,
                    version_id_marker=version,
                    max_keys=size,
                )
            )
        self.stats.pages += 1
        self.stats.versions += len(page.entries)
        if self.on_page is not None:
            self.on_page(len(page.entries))
        return page

    async def step(self, unit: Unit[Any], history: History) -> VersionPage | None:
        """List one page of ``unit`` into ``history``; the page, or None when the range is
        finished (its last key's history may still be open in ``history``)."""
        state = (unit.after, unit.inside, unit.wire, unit.point, unit.until)
        handed = unit.first_page is not None
        page = unit.first_page or await self.fetch(unit)
        unit.first_page = None
        if unit.point is not None:
            assert self.tree is not None
            self.tree.take_point(unit, page, history)
            return None
        if self.tree is not None:
            going_on = await self.tree.page(unit, page, history)
        else:
            going_on = self._naive_page(unit, page, history)
        if not going_on:
            return None
        if not handed and state == (unit.after, unit.inside, unit.wire, unit.point, unit.until):
            raise StorageError(
                f"s3://{self.bucket}: the version listing makes no progress after {unit.after!r}",
                hint="report this server's paging behaviour",
            )
        return page

    def _naive_page(self, unit: Unit[Any], page: VersionPage, history: History) -> bool:
        for entry in kept(unit, page.entries):
            if unit.until is not None and entry.key > unit.until:
                return False  # the next unit lists the rest
            history.take(entry)
        if not page.is_truncated:
            return False
        if not page.next_key_marker:
            raise StorageError(f"s3://{self.bucket}: truncated page without NextKeyMarker")
        unit.after = unit.wire = page.next_key_marker
        unit.inside = page.next_version_id_marker or ""
        return True


def branching_key(page: VersionPage, last_key: str, skip_prefix: str | None) -> str:
    """The key a page's branching depth is read from, with ``last_key`` (the last one the
    range took): the middle one of the page's entries the range took, leaving out those under
    ``skip_prefix`` (a page that has none of them: its first entry; it has one at least).
    The first entry would let keys ahead of the rest (a catalog's folder
    ``.backup-my-bucket/`` before ``obj…``) put the branching at the root, and the split
    would cut one level, not as many as the data has."""
    keys = [
        key
        for entry in page.entries
        if (key := entry.key) <= last_key and not (skip_prefix and key.startswith(skip_prefix))
    ]
    return keys[len(keys) // 2] if keys else page.entries[0].key


def split_range(
    unit: Unit[Any], branch_key: str, last_key: str, budget: int, *, tree: bool
) -> list[Unit[Any]]:
    """Cut what is left of the range after ``last_key`` into new ranges (returned in key order,
    to go right after ``unit``, which keeps the lowest part): one per trie level between the
    range's own and the level where this page's keys still branched (the common prefix of
    ``branch_key``, :func:`branching_key`, and ``last_key``),
    and one per guessed sibling at those levels while ``budget`` ranges may start
    (:func:`.paging.fan_out`): a single page spreads the work as wide as the data goes. On a
    tree-walking server only at markers the walk cannot skip keys from."""
    if unit.point is not None or unit.first_page is not None:
        return []
    deepest = len(os.path.commonprefix([branch_key, last_key]))  # noqa: RUF071  # by character
    floor = max(last_key, unit.wire)
    cuts = split_keys(floor, unit.until, unit.prefix, deepest)
    if tree:
        cuts = [c for c in cuts if is_safe(c, unit.prefix, unit.cleared)]
    budget = max(1, budget)
    cuts = cuts[-budget:]  # the deepest: nearest the data
    spread = fan_out(cuts, unit.until, budget)
    # a sibling differs from its level's cut by one character above '/': as safe as it
    if not tree or all(is_safe(c, unit.prefix, unit.cleared) for c in spread):
        cuts = spread
    if not cuts:
        return []
    until, prefix = unit.until, unit.prefix
    new: list[Unit[Any]] = []
    for cut in cuts:  # shallowest first: each new unit takes (cut, the previous cut]
        # below its prefix (a guessed sibling's unit): every key of the prefix is after it
        wire = cut if cut >= prefix else ""
        new.insert(0, Unit(after=cut, until=until, prefix=prefix, wire=wire, cleared=unit.cleared))
        until, prefix = cut, cut[: -len(MAX_CHAR)]
    # key order: unit -> the deepest new unit -> ... -> the shallowest -> the old next
    unit.until, unit.prefix = until, prefix
    return new
