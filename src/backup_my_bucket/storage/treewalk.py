"""Paging a server that walks a tree (SeaweedFS) so that no key is lost.

SeaweedFS answers a version page with the S3-smallest MaxKeys of the first MaxKeys+1
versions a depth-first walk of its filer tree meets, and resumes the walk from a marker by
starting each directory level at the marker's component (docs/design.md, "Paging a
tree-walking server"; :mod:`.seaweedfs_model`). :class:`TreeWalk` pages a unit of
:class:`~.listing.ParallelListing` around that:

- a page is trusted only below the first key the walk may have left behind
  (:func:`.paging.risks`); a directory the page ended in is first checked for a key or
  sibling beside it with a one-key probe (``Prefix=x``, ``Delimiter=/``), and usually has none;
- the unit resumes just below that key, or from its last key, with a marker the walk cannot
  skip keys from (:func:`.paging.is_safe`; a directory a marker would skip is probed, and
  listed by a unit of its own when it is there);
- a page that trusts nothing above what the unit listed splits the unit in key order around
  the stem ``x``: the key ``x`` (through SeaweedFS's ``Prefix=x.versions``), its siblings
  ``x<c>…`` (marker ``x + "\0"`` starts the walk past the directory), ``x/``, and what
  follows ``x/`` (marker ``x.`` + U+10FFFF).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ..errors import StorageError
from ..model import NULL_VERSION, ObjectVersion, VersionPage
from .paging import MAX_CHAR, RiskKind, hazards, is_safe, predecessor, risks
from .protocol import MAX_PAGE, ObjectStore
from .ranges import History, ListingStats, Unit, before, kept
from .retry import retrying

Insert = Callable[[Unit[Any], list[Unit[Any]]], None]


class TreeWalk:
    """The TREE paging of one listing: ``insert`` puts new units after a unit and starts them."""

    def __init__(
        self,
        store: ObjectStore,
        bucket: str,
        stats: ListingStats,
        requests: asyncio.Semaphore,
        insert: Insert,
        *,
        stems: bool,
    ) -> None:
        self.store = store
        self.bucket = bucket
        self.stats = stats
        self.requests = requests
        self.insert = insert
        self.stems = stems  # keys may be ``.versions`` directories (the bucket was versioned)

    async def page(self, unit: Unit[Any], page: VersionPage, history: History) -> bool:
        """Take what can be trusted of a truncated or final page; say whether to go on."""
        mine = kept(unit, page.entries)
        until = unit.until
        beyond = until is not None and bool(mine) and mine[-1].key > until
        if not page.is_truncated or beyond:
            # untruncated: the walk ran to the end; a key past ``until`` in the page: the
            # walk passed the range's end, so every key of the range is in the page
            for entry in mine:
                if until is not None and entry.key > until:
                    break
                history.take(entry)
            return False
        last = page.next_key_marker
        if not last:
            raise StorageError(f"s3://{self.bucket}: truncated page without NextKeyMarker")
        if last < unit.prefix:
            # only keys SeaweedFS matched through ``k.versions`` (``Prefix=k.v``): none of the
            # unit's own keys came, and the marker must not stay below the prefix. A marker
            # at the prefix leaves out the key equal to it: that one is listed on its own.
            if unit.after < unit.prefix:
                p = unit.prefix
                rest: Unit[Any] = Unit(
                    after=p, until=unit.until, prefix=p, wire=p, cleared=unit.cleared
                )
                unit.after, unit.inside, unit.point, unit.until = p, "", p, p
                self.stats.points += 1
                self.insert(unit, [rest])
            else:
                unit.wire = max(unit.wire, unit.prefix)
            return True
        if last < unit.after or (last == unit.after and not unit.inside):
            raise StorageError(
                f"s3://{self.bucket}: a version page ended at {last!r}, not after {unit.after!r}"
            )
        risk = None
        found = risks(last, unit.after, bool(unit.inside), unit.prefix, stems=self.stems)
        for candidate in found:
            if candidate.kind is RiskKind.DIR and await self._alone(candidate.at):
                continue  # no key x, no sibling x<c>… (c < '/'): nothing walked late
            risk = candidate
            break
        if risk is not None and until is not None and risk.at > until:
            risk = None  # the whole range lies below the first risk
        if risk is None:
            if until is not None and last > until:
                for entry in mine:
                    if entry.key <= until:
                        history.take(entry)
                return False
            if self._relist_tail(unit, mine, last, history):
                return True
            for entry in mine:
                history.take(entry)
            await self.clear_hazards(unit, last)
            self.resume(unit, last, page.next_version_id_marker or "")
            return True
        accepted = [] if risk.trapped else [e for e in mine if e.key < risk.at]
        self.stats.relisted += len(mine) - len(accepted)
        if not accepted:
            self._descend(unit, risk.at, page, into_dir=risk.kind is RiskKind.DIR)
            return True
        for entry in accepted:
            history.take(entry)
        listed = accepted[-1].key
        marker = predecessor(risk.at)
        if (
            listed <= marker
            and marker >= unit.prefix
            and is_safe(marker, unit.prefix, unit.cleared)
        ):
            unit.after, unit.inside, unit.wire = listed, "", marker
        else:
            await self.clear_hazards(unit, listed)
            self.resume(unit, listed, "")
        return True

    def _relist_tail(
        self, unit: Unit[Any], mine: list[ObjectVersion], last: str, history: History
    ) -> bool:
        """When a marker at ``last`` would skip a directory ``d`` (``f.bin`` skips ``f/``) and
        the page holds at most two keys from ``d`` on, take the page below ``d`` and list
        those keys again from just below ``d``: cheaper than asking whether ``d/`` exists."""
        skipped = [d for d in hazards(last, unit.prefix) if d not in unit.cleared]
        if not skipped:
            return False
        first = skipped[0]
        below = [e for e in mine if e.key < first]
        marker = predecessor(first)
        if (
            not below
            or len({e.key for e in mine if e.key >= first}) > 2
            or marker < below[-1].key
            or marker < unit.prefix
            or not is_safe(marker, unit.prefix, unit.cleared)
        ):
            return False
        for entry in below:
            history.take(entry)
        self.stats.relisted += len(mine) - len(below)
        unit.after, unit.inside, unit.wire = below[-1].key, "", marker
        return True

    async def _probe(self, prefix: str, delimiter: str = "") -> VersionPage:
        """A one-key page: light for the server, so it does not queue behind full pages
        (a unit waits for it before its next page)."""
        self.stats.probes += 1
        return await retrying(
            lambda: self.store.list_versions_page(
                self.bucket, prefix=prefix, delimiter=delimiter, max_keys=1
            )
        )

    async def _alone(self, x: str) -> bool:
        """Whether the directory ``x`` has no key ``x`` and no sibling ``x<c>…`` (c < '/')
        beside it: the walk meets ``x`` first, then names after ``x/`` only."""
        page = await self._probe(x, "/")
        return not page.entries and page.common_prefixes[:1] == [x + "/"]

    async def clear_hazards(self, unit: Unit[Any], key: str) -> None:
        """Directories a walk from ``key`` would skip: the absent ones need no unit."""
        for d in hazards(key, unit.prefix):
            if d not in unit.cleared:
                page = await self._probe(d + "/")
                if not page.entries and not page.is_truncated:
                    unit.cleared |= {d}

    def resume(self, unit: Unit[Any], key: str, inside: str) -> None:
        """Go on after ``key`` (or after version ``inside`` of it), splitting the unit where
        the walk from that marker would skip a directory (:meth:`_chain`)."""
        wire = key + "\0" if not inside and key in unit.cleared else key  # past dir ``key``
        first, *rest = self._chain(key, inside, wire, unit.until, unit.prefix, unit.cleared)
        unit.after, unit.inside, unit.wire = first.after, first.inside, first.wire
        unit.until, unit.cleared = first.until, first.cleared
        self.insert(unit, rest)

    def _chain(
        self,
        after: str,
        inside: str,
        wire: str,
        until: str | None,
        prefix: str,
        cleared: frozenset[str],
    ) -> list[Unit[Any]]:
        """Units for ``(after, until]``, the first listing from ``wire``.

        A walk from ``wire`` skips each directory ``d`` (:func:`.paging.hazards`) not in
        ``cleared``: the first unit then ends at the deepest one's siblings, and every
        skipped ``d`` (deepest first) gets a unit for ``d/`` and one for what follows it, up to
        the next shallower one's siblings. Everything stays in key order.
        """
        skipped = [d for d in hazards(wire, prefix) if d not in cleared]
        first_until = before(until, skipped[-1] + "." + MAX_CHAR) if skipped else until
        first: Unit[Any] = Unit(
            after=after,
            until=first_until,
            prefix=prefix,
            wire=wire,
            inside=inside,
            cleared=cleared | frozenset(skipped),
        )
        units = [first]
        for depth in range(len(skipped) - 1, -1, -1):
            d = skipped[depth]
            outer = until if depth == 0 else before(until, skipped[depth - 1] + "." + MAX_CHAR)
            units += self._around(d, until, outer, prefix, cleared | frozenset(skipped[:depth]))
        return units

    def _around(
        self,
        d: str,
        until: str | None,
        outer: str | None,
        prefix: str,
        cleared: frozenset[str],
        page: VersionPage | None = None,
    ) -> list[Unit[Any]]:
        """Units for the directory ``d/`` (``page`` its first page, if given) and for the keys
        after it up to ``outer``."""
        units: list[Unit[Any]] = []
        inner = d + "/"
        if until is None or inner <= until:
            units.append(
                Unit(
                    after="",
                    until=before(until, inner + MAX_CHAR),
                    prefix=inner,
                    cleared=frozenset(c for c in cleared if c.startswith(inner)),
                    first_page=page,
                )
            )
        rest = inner + MAX_CHAR
        if outer is None or rest < outer:
            # "d." + MAX starts the walk past d/ and d's siblings below '/'
            units += self._chain(rest, "", d + "." + MAX_CHAR, outer, prefix, cleared | {d})
        return units

    def _descend(self, unit: Unit[Any], x: str, page: VersionPage, into_dir: bool) -> None:
        """Nothing of the page above the listed position is trusted: split the unit around
        ``x`` in key order. The key ``x`` (through ``x.versions``), its siblings ``x<c>…``
        (c < '/'), the directory ``x/``, then the rest. The page goes to the unit it ended
        in: ``x/`` (``into_dir``) or the siblings'."""
        self.stats.descents += 1
        until, cleared, prefix = unit.until, unit.cleared, unit.prefix
        siblings = before(until, x + "." + MAX_CHAR)
        around = self._around(x, until, until, prefix, cleared, page if into_dir else None)
        if unit.after > x or (unit.after == x and not unit.inside):
            # the unit is already among x's siblings (the page went into x/): it goes on there
            self.insert(unit, around)
            unit.until, unit.cleared = siblings, cleared | {x}
            self.resume(unit, unit.after, unit.inside)  # units it adds come first
            return
        among: Unit[Any] = Unit(
            after=x,
            until=siblings,
            prefix=x,
            wire=x + "\0",  # starts the walk past the directory x
            cleared=cleared | {x},
            first_page=None if into_dir else page,
        )
        if not self.stems:  # no key x beside a directory x in a never-versioned bucket
            self.insert(unit, around)
            unit.after, unit.inside, unit.wire = among.after, "", among.wire
            unit.until, unit.prefix, unit.cleared = among.until, among.prefix, among.cleared
            unit.first_page = among.first_page
            return
        self.stats.points += 1
        if unit.after != x:
            unit.after, unit.inside = x, ""
            unit.nulls = [e for e in page.entries if e.key == x and e.version_id == NULL_VERSION]
        unit.point, unit.until = x, x
        self.insert(unit, [among, *around])

    def take_point(self, unit: Unit[Any], page: VersionPage, history: History) -> None:
        key = unit.point
        versions = [e for e in page.entries if e.key == key]
        for null in unit.nulls:  # a file ``key`` written before versioning: walked in order
            if all(v.version_id != null.version_id for v in versions):
                newer = [v for v in versions if v.last_modified >= null.last_modified]
                versions.insert(len(newer), null)
        if unit.inside:
            ids = [v.version_id for v in versions]
            versions = versions[ids.index(unit.inside) + 1 :] if unit.inside in ids else []
        if page.is_truncated and all(e.key == key for e in page.entries):
            raise StorageError(
                f"s3://{self.bucket}: cannot list every version of {key!r}: SeaweedFS pages "
                f"more than {MAX_PAGE} versions of a key beside a directory or sibling keys "
                "of the same name in a way that loses some",
                hint="delete old versions of that key (gc), or report this to SeaweedFS",
            )
        for entry in versions:
            history.take(entry)
