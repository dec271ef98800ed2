"""Parallel version listing that still yields keys in order, with bounded memory.

The keyspace (under a prefix) is cut into *units*: key ranges ``(after, until]``. One unit
starts with the whole range. After each page, while fewer units than workers are running, a
unit splits what is left of its range at a synthetic key: it keeps the keys that share one
more leading character with the key it just listed, and hands the rest to a new unit right
after itself. This is a breadth-first walk of the key *trie*, so it spreads work over a flat
bucket (no ``/`` at all) as well as over a directory tree, and it costs no extra requests:
a new unit simply starts its listing at the split key (``KeyMarker``).

Units form a list in key order. The consumer reads the first unit's rows as they arrive and
moves on when it is finished; units further ahead keep listing into a buffer that spills to a
temporary file past a threshold, so memory does not grow with the bucket.

A key never spans two units (the split is on key values), so each unit groups versions into
key histories on its own and reduces each history to a result (a snapshot row, say).
"""

from __future__ import annotations

import asyncio
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
from .versions import KeyHistory

R = TypeVar("R")

MAX_CHAR = "\U0010ffff"
SPILL_ROWS = 20_000
MIN_PAGES_BEFORE_SPLIT = 2


def split_key(last_key: str, until: str | None) -> str | None:
    """A key m with last_key < m < until that cuts off the keys after last_key's branch.

    The unit keeps keys <= m: those that share ``last_key``'s prefix one character past the
    point where it diverges from ``until``; the rest go to a new unit. None if no such cut.
    """
    bound = until or ""
    depth = 0
    while depth < len(last_key) and depth < len(bound) and last_key[depth] == bound[depth]:
        depth += 1
    if depth >= len(last_key) or last_key[depth] == MAX_CHAR:
        return None
    cut = last_key[: depth + 1] + MAX_CHAR
    if not last_key < cut or (until is not None and not cut < until):
        return None
    return cut


@dataclass(eq=False)
class _Unit(Generic[R]):
    after: str  # exclusive lower bound (S3 KeyMarker semantics)
    until: str | None  # inclusive upper bound; None: to the end
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
        pages_here = 0
        while not past_range:
            page = await retrying(
                lambda: self.store.list_versions_page(
                    self.bucket,
                    prefix=self.prefix,
                    key_marker=key_marker,  # noqa: B023  # awaited before the loop moves on
                    version_id_marker=version_marker,  # noqa: B023
                    max_keys=self.page_size,
                )
            )
            self.stats.pages += 1
            self.stats.versions += len(page.entries)
            if self.on_page is not None:
                self.on_page(len(page.entries))
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
            pages_here += 1
            # A unit that splits will read one page past its new bound (S3 cannot stop at a
            # key), so only a unit that has shown some depth may split: the waste stays a
            # fraction of the work instead of doubling it.
            may_split = pages_here >= MIN_PAGES_BEFORE_SPLIT and self._running < self.workers
            if may_split and key is not None and self._maybe_split(unit, key):
                pages_here = 0
            self._wake.set()
        if key is not None:
            self._emit(unit, KeyHistory(key, tuple(group)))

    def _maybe_split(self, unit: _Unit[R], last_key: str) -> bool:
        cut = split_key(last_key, unit.until)
        if cut is None:
            return False
        new: _Unit[R] = _Unit(after=cut, until=unit.until, next=unit.next)
        unit.until, unit.next = cut, new
        self.stats.units += 1
        self._start(new)
        return True

    def _emit(self, unit: _Unit[R], history: KeyHistory) -> None:
        if self.skip_prefix is not None and history.key.startswith(self.skip_prefix):
            return
        row = self.reduce(history)
        if row is None:
            return
        unit.rows.append(row)
        if not unit.is_head and len(unit.rows) >= SPILL_ROWS:
            self._spill(unit)

    def _spill(self, unit: _Unit[R]) -> None:
        if unit.spill_file is None:
            fd, unit.spill_file = tempfile.mkstemp(prefix="bmb-list-", dir=self.spill_dir)
            os.close(fd)
        with open(unit.spill_file, "ab") as f:
            unit.spilled.append(f.tell())
            pickle.dump(list(unit.rows), f, protocol=pickle.HIGHEST_PROTOCOL)
        self.stats.spilled_rows += len(unit.rows)
        unit.rows.clear()

    # --- the ordered consumer ----------------------------------------------------------------

    async def results(self) -> AsyncIterator[R]:
        """Every reduced result, in ascending key order."""
        head: _Unit[R] | None = _Unit(after="", until=None)
        assert head is not None
        self._start(head)
        try:
            while head is not None:
                head.is_head = True
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
