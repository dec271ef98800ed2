"""The one version listing every engine uses: parallel, in key order, bounded memory, and
complete on servers that page by walking a tree.

The keyspace (under a prefix) is cut into *units*: key ranges ``(after, until]``. One unit
starts with the whole range. After each page, while fewer units than workers are running, a
unit splits what is left of its range at a synthetic key ``X + U+10FFFF``, one per trie level
(a breadth-first walk of the key trie: it spreads work over a flat bucket as well as over a
directory tree) and hands the rest to new units right after itself. Each unit lists with the
``Prefix`` of its trie node, so no unit reads into its neighbour's keys.

Two ways to page (:class:`Paging`, chosen from what the server says it is):
- ``NAIVE``: follow NextKeyMarker/NextVersionIdMarker, exact on servers that page in key
  order (AWS and most others);
- ``TREE``: SeaweedFS pages in the order of a depth-first walk of its filer tree and loses
  keys beside directories and versioned stems (docs/design.md, "Paging a tree-walking
  server"; :mod:`.treewalk`). A page is trusted only below the first key the walk may have
  left behind (:func:`.paging.risks`; a directory the page ended in is probed first, and
  usually nothing stands beside it); the unit resumes just below it, with a marker the walk
  cannot skip keys from (:func:`.paging.is_safe`). A page that trusts nothing above the
  listed position splits its unit in key order around the stem ``x``: the key ``x``
  (through SeaweedFS's ``Prefix=x.versions``), its siblings ``x<c>…``, ``x/`` (which takes
  the page as its first one), and what follows ``x/``.

A listing of a whole prefix is checked against ListObjectsV2 by :mod:`.audit` while it runs
(``ListingOptions.audit``; always where the server is SeaweedFS): a short one ends its
results with IncompleteListing after the last row.

Units form a list in key order. The consumer reads the first unit's rows as they arrive and
moves on when it is finished; units further ahead keep listing into a buffer that spills to a
temporary file when all of them together hold more than a fixed number of rows (the fullest
unit writes out first), so memory stays bounded however large the bucket, and a bucket of
moderate size never touches the disk.

A key never spans two units, so each unit groups versions into key histories on its own and
reduces each history to a result (a snapshot row, say).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from ..clock import SYSTEM_CLOCK, Clock
from ..errors import StorageError
from ..model import KeyHistory, Versioning, VersionPage
from .audit import Audit
from .paging import MAX_CHAR, Paging, fan_out, is_safe, paging_for, split_keys
from .protocol import MAX_PAGE, ObjectStore
from .ranges import History, ListingStats, Unit, kept
from .retry import retrying
from .scratch import scratch_prefix, sweep_stale
from .treewalk import TreeWalk

R = TypeVar("R")

BUFFER_ROWS = 100_000  # rows held in memory by all the units ahead of the consumer
MIN_SPILL = 2_000  # rows a unit writes out at once
POINT_SUFFIX = ".versions"  # SeaweedFS matches a Prefix against this directory's name


@dataclass(frozen=True, slots=True)
class ListingOptions:
    """How listings run: ``page_size`` (MaxKeys), ``paging`` (None: from the server),
    ``audit`` (check the listing against ListObjectsV2; always on where paging is TREE),
    ``clock`` (when a listing starts: the audit's line between old keys and concurrent
    writes)."""

    page_size: int = MAX_PAGE
    paging: Paging | None = None
    audit: bool = True
    clock: Clock = SYSTEM_CLOCK


class ParallelListing(Generic[R]):
    """List every version under ``prefix`` with ``workers`` concurrent requests, in key order.

    ``reduce`` turns each key's history into a result (or None to drop the key); results come
    out of :meth:`results` in ascending key order. ``skip_prefix`` excludes a sub-prefix (a
    catalog stored inside the bucket). ``after`` starts the listing after that key.
    """

    def __init__(
        self,
        store: ObjectStore,
        bucket: str,
        reduce: Callable[[KeyHistory], R | None],
        *,
        prefix: str = "",
        workers: int = 16,
        skip_prefix: str | None = None,
        options: ListingOptions | None = None,
        after: str = "",
        audit: bool = True,
        spill_dir: str | None = None,
        on_page: Callable[[int], None] | None = None,
        cut: datetime | None = None,
    ) -> None:
        options = options or ListingOptions()
        self.cut = cut  # the instant the results are read at, if any: the audit's too
        self.options = options
        self.store = store
        self.bucket = bucket
        self.reduce = reduce
        self.prefix = prefix
        self.workers = max(1, workers)
        self.skip_prefix = skip_prefix or None
        self.page_size = options.page_size
        self.paging = options.paging
        self.spill_dir = spill_dir
        self.on_page = on_page
        self.stats = ListingStats()
        self._wake = asyncio.Event()
        self._requests = asyncio.Semaphore(self.workers)
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._error: BaseException | None = None
        start = after if after >= prefix else ""  # a marker below the prefix lists it all
        self._head: Unit[R] = Unit(after=start, until=None, prefix=prefix, wire=start)
        self._buffered = 0  # rows in memory in units other than the head
        sweep_stale("list", spill_dir)  # what killed runs left
        self._tree: TreeWalk | None = None  # TREE paging, once the server is known
        self._auditable = audit and not after  # a whole prefix, and the caller wants it
        self.audit: Audit | None = None

    # --- workers -----------------------------------------------------------------------------

    def _start(self, unit: Unit[R]) -> None:
        self._running += 1
        task = asyncio.create_task(self._run(unit))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, unit: Unit[R]) -> None:
        try:
            await self._list_unit(unit)
        except BaseException as exc:  # surfaced by the consumer
            if self._error is None:
                self._error = exc
        finally:
            unit.done = True
            self._running -= 1
            self._wake.set()

    async def _fetch(self, unit: Unit[R]) -> VersionPage:
        if unit.point is not None:
            prefix, marker, version, size = unit.point + POINT_SUFFIX, "", "", MAX_PAGE
        else:
            prefix, marker, size = unit.prefix, unit.wire, self.page_size
            version = unit.inside if marker == unit.after else ""
        if marker and marker < prefix:
            raise AssertionError(f"a marker below the prefix: {marker!r} < {prefix!r}")
        async with self._requests:
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

    async def _list_unit(self, unit: Unit[R]) -> None:
        history = History(self.bucket, lambda h: self._emit(unit, h))
        while True:
            state = (unit.after, unit.inside, unit.wire, unit.point, unit.until)
            handed = unit.first_page is not None
            page = unit.first_page or await self._fetch(unit)
            unit.first_page = None
            if unit.point is not None:
                assert self._tree is not None
                self._tree.take_point(unit, page, history)
                break
            if self._tree is not None:
                going_on = await self._tree.page(unit, page, history)
            else:
                going_on = self._naive_page(unit, page, history)
            if not going_on:
                break
            if not handed and state == (unit.after, unit.inside, unit.wire, unit.point, unit.until):
                raise StorageError(
                    f"s3://{self.bucket}: the version listing makes no progress after "
                    f"{unit.after!r}",
                    hint="report this server's paging behaviour",
                )
            if self._running < self.workers and history.key is not None and page.entries:
                self._split(unit, page.entries[0].key, history.key)
            self._wake.set()
        history.close()

    def _naive_page(self, unit: Unit[R], page: VersionPage, history: History) -> bool:
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

    # --- TREE paging -------------------------------------------------------------------------

    def _insert(self, unit: Unit[R], new: list[Unit[R]]) -> None:
        """Put ``new`` (in key order) right after ``unit`` and start listing them."""
        following = unit.next
        for u in reversed(new):
            u.next, following = following, u
        unit.next = following
        for u in new:
            self.stats.units += 1
            self._start(u)

    def _split(self, unit: Unit[R], first_key: str, last_key: str) -> None:
        """Hand what is left of the unit's range after last_key to new units, one per trie
        level between the unit's own and the level where this page's keys still branched
        (their common prefix), and one per guessed sibling at those levels while workers are
        idle (:func:`.paging.fan_out`): a single page spreads the work as wide as the data
        goes."""
        if unit.point is not None or unit.first_page is not None:
            return
        deepest = len(os.path.commonprefix([first_key, last_key]))  # noqa: RUF071  # by character
        floor = max(last_key, unit.wire)
        cuts = split_keys(floor, unit.until, unit.prefix, deepest)
        if self.paging is Paging.TREE:
            cuts = [c for c in cuts if is_safe(c, unit.prefix, unit.cleared)]
        budget = max(1, self.workers - self._running)
        cuts = cuts[-budget:]  # the deepest: nearest the data
        spread = fan_out(cuts, unit.until, budget)
        # a sibling differs from its level's cut by one character above '/': as safe as it
        if self.paging is not Paging.TREE or all(
            is_safe(c, unit.prefix, unit.cleared) for c in spread
        ):
            cuts = spread
        if not cuts:
            return
        until, prefix, following = unit.until, unit.prefix, unit.next
        new: list[Unit[R]] = []
        for cut in cuts:  # shallowest first: each new unit takes (cut, the previous cut]
            # below its prefix (a guessed sibling's unit): every key of the prefix is after it
            wire = cut if cut >= prefix else ""
            new.insert(
                0, Unit(after=cut, until=until, prefix=prefix, wire=wire, cleared=unit.cleared)
            )
            until, prefix = cut, cut[: -len(MAX_CHAR)]
        # key order: unit -> the deepest new unit -> ... -> the shallowest -> the old next
        unit.until, unit.prefix = until, prefix
        del following
        self._insert(unit, new)

    # --- rows --------------------------------------------------------------------------------

    def _emit(self, unit: Unit[R], history: KeyHistory) -> None:
        if self.skip_prefix is not None and history.key.startswith(self.skip_prefix):
            return
        if self.audit is not None:
            self.audit.note(history)
        row = self.reduce(history)
        if row is None:
            return
        unit.rows.append(row)
        if not unit.is_head:
            self._buffered += 1
            if self._buffered > BUFFER_ROWS:
                self._spill(unit if len(unit.rows) >= MIN_SPILL else self._fullest())

    def _fullest(self) -> Unit[R]:
        fullest, node = self._head.next, self._head.next
        while node is not None:
            if fullest is None or len(node.rows) > len(fullest.rows):
                fullest = node
            node = node.next
        assert fullest is not None  # rows are buffered, so some unit ahead holds them
        return fullest

    def _spill(self, unit: Unit[R]) -> None:
        if unit.spill_file is None:
            prefix = scratch_prefix("list")
            fd, unit.spill_file = tempfile.mkstemp(prefix=prefix, dir=self.spill_dir)
            os.close(fd)
        with open(unit.spill_file, "ab") as f:
            unit.spilled.append(f.tell())
            pickle.dump(list(unit.rows), f, protocol=pickle.HIGHEST_PROTOCOL)
        self.stats.spilled_rows += len(unit.rows)
        self._buffered -= len(unit.rows)
        unit.rows.clear()

    # --- the ordered consumer ----------------------------------------------------------------

    async def _prepare(self) -> None:
        """Ask the server what it is: how to page it (unless forced), whether to audit."""
        known = paging_for(await self.store.server(self.bucket))
        self.paging = self.paging or known
        if self.paging is Paging.TREE:
            versioning = await self.store.get_versioning(self.bucket)
            self._tree = TreeWalk(
                self.store, self.bucket, self.stats, self._requests, self._insert,
                stems=versioning is not Versioning.UNVERSIONED,
            )  # fmt: skip
        if self._auditable and (self.options.audit or known is Paging.TREE):
            self.audit = Audit(
                self.store, self.bucket, self.prefix, skip_prefix=self.skip_prefix,
                tree=known is Paging.TREE, page_size=self.page_size, clock=self.options.clock,
                cut=self.cut,
            )  # fmt: skip
        head = self._head
        if head.after and not head.after.startswith(self.prefix):
            head.done = True  # after every key under the prefix: nothing to list
            return
        if self._tree is not None and head.after:
            await self._tree.clear_hazards(head, head.after)
            self._tree.resume(head, head.after, "")

    async def results(self) -> AsyncIterator[R]:
        """Every reduced result, in ascending key order."""
        await self._prepare()
        head: Unit[R] | None = self._head
        assert head is not None
        if not head.done:
            self._start(head)
        audit = self.audit
        if audit is not None:
            auditing = asyncio.create_task(audit.run())
            self._tasks.add(auditing)
        try:
            while head is not None:
                head.is_head = True
                self._head = head
                self._buffered -= len(head.rows)
                if head.spill_file is not None:
                    for chunk in self._read_spill(head):
                        for row in chunk:
                            yield row
                while True:
                    while head.rows:
                        yield head.rows.popleft()
                    if self._error is not None:
                        raise self._error
                    if head.done and not head.rows:
                        break
                    self._wake.clear()
                    await self._wake.wait()
                if self._error is not None:
                    raise self._error
                head = head.next
            if audit is not None:
                await auditing
                await audit.check()
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._remove_spills()

    def _remove_spills(self) -> None:
        """A listing that stops early (an error, a consumer that stopped) leaves no file."""
        unit: Unit[R] | None = self._head
        while unit is not None:
            if unit.spill_file is not None:
                with contextlib.suppress(OSError):
                    os.unlink(unit.spill_file)
                unit.spill_file, unit.spilled = None, []
            unit = unit.next

    def _read_spill(self, unit: Unit[R]) -> Iterator[list[R]]:
        assert unit.spill_file is not None
        path, unit.spill_file = unit.spill_file, None
        offsets, unit.spilled = unit.spilled, []
        try:
            with open(path, "rb") as f:
                for _ in offsets:
                    chunk: list[R] = pickle.load(f)
                    yield chunk
        finally:
            os.unlink(path)
