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

A unit's paging step is :class:`.pager.Pager` (and :func:`.pager.split_range`). Here the units
run it in tasks of this process; with ``remote`` (a Dask cluster's, engine/cluster.py) each
unit hands it out as bounded jobs (:mod:`.rangejob`: a few pages each, read-only), and this
process keeps the units' order, their rows (buffered and spilled as above), the audit and
the consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from ..clock import SYSTEM_CLOCK, Clock
from ..errors import AccessDenied, UsageError
from ..model import KeyHistory, Versioning
from .audit import Audit
from .pager import Pager, branching_key, split_range
from .paging import Paging, lists_in_key_order, paging_for
from .protocol import MAX_PAGE, ObjectStore
from .rangejob import RangeJob, RangeResult, RangeRunner, RangeState
from .ranges import History, ListingStats, Unit
from .scratch import scratch_prefix, sweep_stale

R = TypeVar("R")

PAST = timedelta(seconds=10)
"""A cut this far before the listing begins reads a past moment (not a snapshot's just-ended
second): on an unknown server, refused unless the paging is given (:meth:`_refuse_past`)."""
BUFFER_ROWS = 100_000  # rows held in memory by all the units ahead of the consumer
MIN_SPILL = 2_000  # rows a unit writes out at once


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

    ``remote`` runs the ranges' paging elsewhere (a Dask cluster, :mod:`.rangejob`): then
    ``reduce`` must pickle, and ``on_span`` (if given) hears the oldest and the newest stamp
    of the entries each job listed.
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
        remote: RangeRunner | None = None,
        on_span: Callable[[datetime, datetime], None] | None = None,
    ) -> None:
        options = options or ListingOptions()
        self.remote = remote
        self.on_span = on_span
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
        self._pager: Pager | None = None  # once the server is known
        self._stems = True  # TREE: keys may be ``.versions`` directories
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

    async def _list_unit(self, unit: Unit[R]) -> None:
        if self.remote is not None:
            await self._list_remote(unit, self.remote)
            return
        assert self._pager is not None
        history = History(self.bucket, lambda h: self._emit(unit, h))
        while (page := await self._pager.step(unit, history)) is not None:
            if self._running < self.workers and history.key is not None and page.entries:
                self._split(unit, branching_key(page, history.key, self.skip_prefix), history.key)
            self._wake.set()
        history.close()

    def _insert(self, unit: Unit[R], new: list[Unit[R]]) -> None:
        """Put ``new`` (in key order) right after ``unit`` and start listing them."""
        following = unit.next
        for u in reversed(new):
            u.next, following = following, u
        unit.next = following
        for u in new:
            self.stats.units += 1
            self._start(u)

    def _split(self, unit: Unit[R], branch_key: str, last_key: str) -> None:
        """Hand what is left of the unit's range to new units (:func:`.pager.split_range`)."""
        budget = self.workers - self._running
        tree = self.paging is Paging.TREE
        self._insert(unit, split_range(unit, branch_key, last_key, budget, tree=tree))

    # --- ranges on a cluster ---------------------------------------------------------------

    async def _list_remote(self, unit: Unit[R], remote: RangeRunner) -> None:
        """List ``unit`` as bounded jobs on ``remote`` (:mod:`.rangejob`): this process keeps
        the range's place in the order, its rows, the audit and the new ranges' order."""
        assert self.paging is not None
        carry: KeyHistory | None = None
        auditing = self.audit is not None
        while True:
            job: RangeJob[R] = RangeJob(
                self.bucket, RangeState.of(unit), self.reduce, self.page_size, self.paging,
                self._stems, pages=remote.pages, budget=max(0, self.workers - self._running),
                carry=carry, skip_prefix=self.skip_prefix, audit=auditing,
                span=self.on_span is not None,
            )  # fmt: skip
            async with self._requests:
                result: RangeResult[R] = await remote.run(job)
            self.stats.add(result.stats)
            if self.on_page is not None:
                self.on_page(result.stats.versions)
            if self.audit is not None:
                self.audit.note_hashes(result.live)
            if self.on_span is not None and result.oldest is not None:
                assert result.newest is not None
                self.on_span(result.oldest, result.newest)
            for row in result.rows:
                self._add(unit, row)
            self._insert(unit, [state.unit() for state in result.added])
            if result.state is None:
                return
            result.state.apply(unit)
            carry = result.carry
            self._wake.set()

    # --- rows --------------------------------------------------------------------------------

    def _emit(self, unit: Unit[R], history: KeyHistory) -> None:
        if self.skip_prefix is not None and history.key.startswith(self.skip_prefix):
            return
        if self.audit is not None:
            self.audit.note(history)
        row = self.reduce(history)
        if row is not None:
            self._add(unit, row)

    def _add(self, unit: Unit[R], row: R) -> None:
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
        server = await self.store.server(self.bucket)
        known = paging_for(server)
        ordered = lists_in_key_order(server, told=self.paging)
        self.paging = self.paging or known
        if self.paging is Paging.TREE:
            versioning = await self.store.get_versioning(self.bucket)
            self._stems = versioning is not Versioning.UNVERSIONED
        self._pager = Pager(
            self.store, self.bucket, page_size=self.page_size, paging=self.paging,
            stems=self._stems, stats=self.stats, requests=self._requests, insert=self._insert,
            on_page=self.on_page,
        )  # fmt: skip
        # a server known, or said (--list-paging tree), to walk a tree is always audited
        seaweedfs = known is Paging.TREE or self.paging is Paging.TREE
        started = None  # the margin for races is measured on the server's clock
        if (self._auditable and (self.options.audit or seaweedfs)) or self.cut is not None:
            with contextlib.suppress(AccessDenied):  # no HeadBucket: on this machine's
                started = await self.store.server_time(self.bucket)
        if not (seaweedfs or ordered):
            self._refuse_past(server, started)
        if self._auditable and (self.options.audit or seaweedfs):
            self.audit = Audit(
                self.store, self.bucket, self.prefix, skip_prefix=self.skip_prefix,
                tree=seaweedfs, page_size=self.page_size, clock=self.options.clock,
                cut=self.cut, stable=self.remote is not None, started=started,
                ordered=ordered,
            )  # fmt: skip
        head = self._head
        if head.after and not head.after.startswith(self.prefix):
            head.done = True  # after every key under the prefix: nothing to list
            return
        tree = self._pager.tree
        if tree is not None and head.after:
            await tree.clear_hazards(head, head.after)
            tree.resume(head, head.after, "")

    def _refuse_past(self, server: str, started: datetime | None) -> None:
        """A listing read at a moment well before it begins, on a server not known to page
        completely, is refused: the audit can only check keys live now, so a key deleted
        since that moment and lost by the paging would be missed silently (a SeaweedFS
        behind a proxy that renames it loses such keys). ``--list-paging`` says how."""
        now = started if started is not None else self.options.clock.now()
        if self.cut is None or self.cut >= now - PAST:
            return
        raise UsageError(
            f"s3://{self.bucket} answers as {server or 'an unnamed server'!r}, whose version "
            "listing is not known to be complete, and a listing at a past moment cannot be "
            "checked (the audit sees only keys live now)",
            hint="pass --list-paging naive if the server lists in key order (most S3 "
            "services do), or --list-paging tree if it is SeaweedFS behind a proxy",
        )

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
