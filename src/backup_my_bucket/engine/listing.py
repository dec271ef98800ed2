"""Parallel version listing that still yields keys in order, with bounded memory.

The keyspace (under a prefix) is cut into *units*: key ranges ``(after, until]``. One unit
starts with the whole range. After each page, while fewer units than workers are running, a
unit splits what is left of its range at a synthetic key: it keeps the keys that share one
more leading character with the key it just listed, and hands the rest to a new unit right
after itself. This is a breadth-first walk of the key *trie*, so it spreads work over a flat
bucket (no ``/`` at all) as well as over a directory tree, and it costs no extra requests:
a new unit simply starts its listing at the split key (``KeyMarker``).

Every unit's range is the tail of one trie node: all keys after ``after`` that start with the
unit's ``prefix`` (``until`` is ``prefix`` + the last code point). A unit lists with that
``Prefix``, so its last page ends where its range ends: no unit reads into its neighbour's
keys, and every version is listed exactly once however often the ranges split.

Units form a list in key order. The consumer reads the first unit's rows as they arrive and
moves on when it is finished; units further ahead keep listing into a buffer that spills to a
temporary file when all of them together hold more than a fixed number of rows (the fullest
unit writes out first), so memory stays bounded however large the bucket, and a bucket of
moderate size never touches the disk.

A key never spans two units (the split is on key values), so each unit groups versions into
key histories on its own and reduces each history to a result (a snapshot row, say).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import tempfile
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ..errors import StorageError
from ..model import ObjectVersion
from ..storage.protocol import MAX_PAGE, ObjectStore
from ..storage.retry import retrying
from .scratch import scratch_prefix, sweep_stale
from .versions import KeyHistory

R = TypeVar("R")

MAX_CHAR = "\U0010ffff"
BUFFER_ROWS = 100_000  # rows held in memory by all the units ahead of the consumer
MIN_SPILL = 2_000  # rows a unit writes out at once


def split_key(last_key: str, until: str | None, common: str = "") -> str | None:
    """A key m with last_key < m < until that cuts off the keys after last_key's branch.

    The unit keeps keys <= m: those that share ``last_key``'s prefix one character past the
    point where it diverges from ``until`` (or past ``common``, a prefix every key of the
    range has); the rest go to a new unit. None if no such cut.
    """
    cuts = split_keys(last_key, until, common)
    return cuts[0] if cuts else None


def split_keys(last_key: str, until: str | None, common: str = "", deepest: int = 0) -> list[str]:
    """Cut points between last_key and until, one per trie level, shallowest (largest) first.

    Level d cuts at ``last_key[:d+1] + MAX_CHAR``: everything after last_key's branch at
    that depth. The first level is where last_key leaves ``until`` (or ``common``); levels go
    down to ``deepest`` (the depth where the page just listed was still branching).
    """
    bound = until or ""
    depth = len(common)
    while depth < len(last_key) and depth < len(bound) and last_key[depth] == bound[depth]:
        depth += 1
    cuts: list[str] = []
    for level in range(depth, max(depth, deepest) + 1):
        if level >= len(last_key) or last_key[level] == MAX_CHAR:
            break
        cut = last_key[: level + 1] + MAX_CHAR
        if not last_key < cut or (until is not None and not cut < until):
            break
        if cuts and not cut < cuts[-1]:
            break
        cuts.append(cut)
    return cuts


@dataclass(eq=False)
class _Unit(Generic[R]):
    after: str  # exclusive lower bound (S3 KeyMarker semantics)
    until: str | None  # inclusive upper bound; None: to the end
    prefix: str  # every key of the range starts with it; the listing's Prefix
    rows: deque[R] = field(default_factory=deque)
    spilled: list[int] = field(default_factory=list)  # offsets of pickled chunks
    spill_file: str | None = None
    done: bool = False
    is_head: bool = False
    next: _Unit[R] | None = None


@dataclass
class ListingStats:
    pages: int = 0
    versions: int = 0
    units: int = 1
    spilled_rows: int = 0


class ParallelListing(Generic[R]):
    """List every version under ``prefix`` with ``workers`` concurrent requests, in key order.

    ``reduce`` turns each key's history into a result (or None to drop the key); results come
    out of :meth:`results` in ascending key order. ``skip_prefix`` excludes a sub-prefix (a
    catalog stored inside the bucket).
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
        page_size: int = MAX_PAGE,
        spill_dir: str | None = None,
        on_page: Callable[[int], None] | None = None,
    ) -> None:
        self.store = store
        self.bucket = bucket
        self.reduce = reduce
        self.prefix = prefix
        self.workers = max(1, workers)
        self.skip_prefix = skip_prefix or None
        self.page_size = page_size
        self.spill_dir = spill_dir
        self.on_page = on_page
        self.stats = ListingStats()
        self._wake = asyncio.Event()
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._error: BaseException | None = None
        self._head: _Unit[R] = _Unit(after="", until=None, prefix=prefix)
        self._buffered = 0  # rows in memory in units other than the head
        sweep_stale("list", spill_dir)  # what killed runs left

    # --- workers -----------------------------------------------------------------------------

    def _start(self, unit: _Unit[R]) -> None:
        self._running += 1
        task = asyncio.create_task(self._run(unit))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, unit: _Unit[R]) -> None:
        try:
            await self._list_unit(unit)
        except BaseException as exc:  # surfaced by the consumer
            if self._error is None:
                self._error = exc
        finally:
            unit.done = True
            self._running -= 1
            self._wake.set()

    async def _list_unit(self, unit: _Unit[R]) -> None:
        key_marker, version_marker = unit.after, ""
        key: str | None = None
        group: list[ObjectVersion] = []
        past_range = False
        while not past_range:
            page = await retrying(
                lambda: self.store.list_versions_page(
                    self.bucket,
                    prefix=unit.prefix,
                    key_marker=key_marker,  # noqa: B023  # awaited before the loop moves on
                    version_id_marker=version_marker,  # noqa: B023
                    max_keys=self.page_size,
                )
            )
            self.stats.pages += 1
            self.stats.versions += len(page.entries)
            if self.on_page is not None:
                self.on_page(len(page.entries))
            first_key = page.entries[0].key if page.entries else None
            for entry in page.entries:
                if unit.until is not None and entry.key > unit.until:
                    past_range = True  # the next unit lists the rest
                    break
                if entry.key != key:
                    if key is not None:
                        self._emit(unit, KeyHistory(key, tuple(group)))
                    if key is not None and entry.key < key:
                        raise StorageError(
                            f"s3://{self.bucket}: version listing out of order "
                            f"({entry.key!r} after {key!r})"
                        )
                    key, group = entry.key, []
                group.append(entry)
            if past_range or not page.is_truncated:
                break
            if not page.next_key_marker:
                raise StorageError(f"s3://{self.bucket}: truncated page without NextKeyMarker")
            key_marker = page.next_key_marker
            version_marker = page.next_version_id_marker or ""
            if self._running < self.workers and key is not None and first_key is not None:
                self._split(unit, first_key, key)
            self._wake.set()
        if key is not None:
            self._emit(unit, KeyHistory(key, tuple(group)))

    def _split(self, unit: _Unit[R], first_key: str, last_key: str) -> None:
        """Hand what is left of the unit's range after last_key to new units, one per trie
        level between the unit's own and the level where this page's keys still branched
        (their common prefix): a single page spreads the work as wide as the data goes."""
        deepest = len(os.path.commonprefix([first_key, last_key]))  # noqa: RUF071  # by character
        cuts = split_keys(last_key, unit.until, unit.prefix, deepest)
        cuts = cuts[-max(1, self.workers - self._running) :]  # the deepest: nearest the data
        until, prefix, following = unit.until, unit.prefix, unit.next
        for cut in cuts:  # shallowest first: each new unit takes (cut, the previous cut]
            new: _Unit[R] = _Unit(after=cut, until=until, prefix=prefix, next=following)
            following = new
            until, prefix = cut, cut[: -len(MAX_CHAR)]
            self.stats.units += 1
            self._start(new)
        # key order: unit -> the deepest new unit -> ... -> the shallowest -> the old next
        unit.until, unit.prefix, unit.next = until, prefix, following

    def _emit(self, unit: _Unit[R], history: KeyHistory) -> None:
        if self.skip_prefix is not None and history.key.startswith(self.skip_prefix):
            return
        row = self.reduce(history)
        if row is None:
            return
        unit.rows.append(row)
        if not unit.is_head:
            self._buffered += 1
            if self._buffered > BUFFER_ROWS:
                self._spill(unit if len(unit.rows) >= MIN_SPILL else self._fullest())

    def _fullest(self) -> _Unit[R]:
        fullest, node = self._head.next, self._head.next
        while node is not None:
            if fullest is None or len(node.rows) > len(fullest.rows):
                fullest = node
            node = node.next
        assert fullest is not None  # rows are buffered, so some unit ahead holds them
        return fullest

    def _spill(self, unit: _Unit[R]) -> None:
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

    async def results(self) -> AsyncIterator[R]:
        """Every reduced result, in ascending key order."""
        head: _Unit[R] | None = self._head
        assert head is not None
        self._start(head)
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
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._remove_spills()

    def _remove_spills(self) -> None:
        """A listing that stops early (an error, a consumer that stopped) leaves no file."""
        unit: _Unit[R] | None = self._head
        while unit is not None:
            if unit.spill_file is not None:
                with contextlib.suppress(OSError):
                    os.unlink(unit.spill_file)
                unit.spill_file, unit.spilled = None, []
            unit = unit.next

    def _read_spill(self, unit: _Unit[R]) -> Iterator[list[R]]:
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
