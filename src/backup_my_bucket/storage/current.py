"""A bucket's current objects from ListObjectsV2: walked in ranges, and sorted into key order.

ListObjectsV2 is the listing that is complete on SeaweedFS (it resumes from a tree position;
the version listing resumes from a key and loses keys beside directories: docs/design.md),
it costs that server about a third of a version listing per key, and its ETags are the
objects' own (MD5 or multipart) where a version listing of an unversioned SeaweedFS bucket
shows internal chunk ETags. But SeaweedFS lists it in walk order, not key order.

:func:`walk_objects` lists a prefix in concurrent ranges, calling back for each object in no
set order (the completeness audit's walk too). :func:`current_objects` sorts what it found:
runs of :data:`RUN_ROWS` objects are sorted in memory and written to a scratch file, then
merged, so memory stays bounded however large the bucket. No row comes out before the walk
has finished: an error ends the stream before its first row.
"""

from __future__ import annotations

import asyncio
import heapq
import os
import pickle
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from operator import attrgetter
from typing import IO, TypeVar

from ..errors import StorageError
from ..model import ObjectSummary
from .paging import MAX_CHAR, Paging, is_safe, lists_in_key_order, paging_for, split_keys
from .protocol import MAX_PAGE, ObjectStore
from .retry import retrying
from .scratch import scratch_prefix, sweep_stale

CONCURRENCY = 8  # ListObjectsV2 requests at once (each is cheap for the server)
RUN_ROWS = 100_000  # objects sorted in memory before they are written out as one run
CHUNK_ROWS = 4_096  # objects per pickled chunk of a run (what a merge reads at once)
_by_key = attrgetter("key")
T = TypeVar("T")


@dataclass
class WalkStats:
    requests: int = 0
    keys: int = 0
    ranges: int = 1


Fetch = Callable[[str, str, "str | None"], Awaitable[tuple[list[T], bool, "str | None"]]]
"""One ListObjectsV2 page of a walk: (Prefix, StartAfter, continuation token) to the page's
items, whether it is truncated, and its continuation token."""


async def walk_objects(
    store: ObjectStore,
    bucket: str,
    prefix: str,
    keep: Callable[[ObjectSummary], None],
    *,
    skip_prefix: str | None = None,
    tree: bool = False,
    page_size: int = MAX_PAGE,
    stats: WalkStats | None = None,
    concurrency: int = CONCURRENCY,
) -> None:
    """ListObjectsV2 over ``prefix``, ``keep`` called for every object (in no set order)
    except those under ``skip_prefix``: :func:`_walk`."""

    async def fetch(
        node: str, after: str, token: str | None
    ) -> tuple[list[ObjectSummary], bool, str | None]:
        page = await store.list_objects_page(
            bucket, prefix=node, start_after=after, continuation_token=token, max_keys=page_size
        )
        return page.objects, page.is_truncated, page.next_token

    await _walk(bucket, prefix, fetch, _by_key, keep, skip_prefix, tree, stats, concurrency)


async def walk_keys(
    store: ObjectStore,
    bucket: str,
    prefix: str,
    keep: Callable[[str], None],
    *,
    skip_prefix: str | None = None,
    tree: bool = False,
    page_size: int = MAX_PAGE,
    stats: WalkStats | None = None,
    concurrency: int = CONCURRENCY,
) -> None:
    """:func:`walk_objects` for the keys alone (the audit's first pass): the same pages, read
    without their other fields (a tenth of the parsing, on the fast path)."""

    async def fetch(node: str, after: str, token: str | None) -> tuple[list[str], bool, str | None]:
        page = await store.list_keys_page(
            bucket, prefix=node, start_after=after, continuation_token=token, max_keys=page_size
        )
        return page.keys, page.is_truncated, page.next_token

    await _walk(bucket, prefix, fetch, str, keep, skip_prefix, tree, stats, concurrency)


async def _walk(
    bucket: str,
    prefix: str,
    fetch: Fetch[T],
    key_of: Callable[[T], str],
    keep: Callable[[T], None],
    skip_prefix: str | None,
    tree: bool,
    stats: WalkStats | None,
    concurrency: int,
) -> None:
    """ListObjectsV2 over ``prefix`` (``fetch`` reads a page), ``keep`` called for every item
    (in no set order) except those whose key is under ``skip_prefix``; ``tree``: the server
    walks a tree (SeaweedFS).

    The walk splits into ranges like the version listing's (each new range takes what follows
    a trie node). On a server that lists in key order the range that split narrows its Prefix
    and goes on after its last key. A tree-walking server can only be resumed by its
    continuation token, and lists in walk order: there a range splits only at a name one
    level below the prefix that a walk cannot skip keys from (``X`` + U+10FFFF, no ``/`` in
    ``X`` past the prefix), where walk order and key order agree on what lies before the cut
    and what after; the range goes on with its token and ends at the first key past the cut.
    ``concurrency``: ranges (and requests) at once; 1 walks in one sequence, without cuts.
    """
    stats = stats if stats is not None else WalkStats()
    gate = asyncio.Semaphore(concurrency)
    tasks: set[asyncio.Task[None]] = set()

    async def walk_range(after: str, until: str | None, node: str) -> None:
        token: str | None = None
        highest = after
        while True:
            async with gate:
                items, truncated, next_token = await retrying(
                    lambda: fetch(
                        node,  # noqa: B023  # awaited in the loop
                        after if token is None else "",  # noqa: B023
                        token,  # noqa: B023
                    )
                )
            stats.requests += 1
            lowest = None
            for obj in items:
                key = key_of(obj)
                if key <= after or not key.startswith(prefix):
                    continue  # below StartAfter (a tree walk shows them after it)
                if until is not None and key > until:
                    return  # the rest belongs to the range after this one
                highest = max(highest, key)
                if skip_prefix is None or not key.startswith(skip_prefix):
                    # the skipped folder (a catalog's, sorted first) leaves out of the depth
                    # the split reads: with it, the split would cut the root's level only
                    lowest = key if lowest is None else min(lowest, key)
                    stats.keys += 1
                    keep(obj)
            if not truncated:
                return
            if not next_token:  # it would start the range again, for ever
                raise StorageError(
                    f"s3://{bucket}: a truncated object page has no continuation token"
                )
            token = next_token
            if len(tasks) >= concurrency or lowest is None:
                continue
            deepest = len(os.path.commonprefix([lowest, highest]))  # noqa: RUF071
            cuts = split_keys(highest, until, node, deepest)
            if tree:
                cuts = [c for c in cuts if "/" not in c[len(node) :] and is_safe(c, node, ())]
            cuts = cuts[-(concurrency - len(tasks)) :]
            for cut in cuts:  # shallowest first: each new range takes (cut, previous cut]
                start(cut, until, node)
                until = cut
                if not tree:
                    node = cut[: -len(MAX_CHAR)]
            if cuts and not tree:  # go on after the last key, in the narrowed node
                after, token = max(after, highest), None

    def start(after: str, until: str | None, node: str) -> None:
        stats.ranges += after != ""
        tasks.add(asyncio.create_task(walk_range(after, until, node)))

    start("", None, prefix)
    try:
        while tasks:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                tasks.discard(task)
                task.result()  # an error ends the walk with it
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class _Runs:
    """Objects gathered in any order, given back in key order (an external merge sort)."""

    def __init__(self, spill_dir: str | None) -> None:
        self._rows: list[ObjectSummary] = []
        self._spill_dir = spill_dir
        self._file: IO[bytes] | None = None
        self._runs: list[list[int]] = []  # each run's chunk offsets in the file

    def add(self, obj: ObjectSummary) -> None:
        self._rows.append(obj)
        if len(self._rows) >= RUN_ROWS:
            self._spill()

    def _spill(self) -> None:
        if self._file is None:
            prefix = scratch_prefix("current")
            self._file = tempfile.NamedTemporaryFile(  # noqa: SIM115  # closed by close()
                prefix=prefix, dir=self._spill_dir
            )
        self._rows.sort(key=_by_key)
        offsets = []
        for i in range(0, len(self._rows), CHUNK_ROWS):
            offsets.append(self._file.tell())
            pickle.dump(self._rows[i : i + CHUNK_ROWS], self._file, pickle.HIGHEST_PROTOCOL)
        self._runs.append(offsets)
        self._rows = []

    def _read(self, offsets: list[int]) -> Iterator[ObjectSummary]:
        assert self._file is not None
        with open(self._file.name, "rb") as f:  # its own position, beside the other runs
            for offset in offsets:
                f.seek(offset)
                yield from pickle.load(f)

    def merged(self) -> Iterator[ObjectSummary]:
        """Every object once, ascending (a key a server listed twice comes out once)."""
        self._rows.sort(key=_by_key)
        if self._file is not None:
            self._file.flush()
        runs = [self._read(offsets) for offsets in self._runs]
        last: str | None = None
        for obj in heapq.merge(*runs, self._rows, key=_by_key):
            if obj.key != last:
                last = obj.key
                yield obj

    def close(self) -> None:
        if self._file is not None:
            self._file.close()  # removes it
            self._file = None
        self._rows = []


async def current_objects(
    store: ObjectStore,
    bucket: str,
    prefix: str = "",
    *,
    skip_prefix: str | None = None,
    page_size: int = MAX_PAGE,
    spill_dir: str | None = None,
    stats: WalkStats | None = None,
    told: Paging | None = None,
) -> AsyncIterator[ObjectSummary]:
    """Every current object under ``prefix`` (none under ``skip_prefix``), in ascending key
    order; see the module docstring. ``told``: the paging the user gave (``--list-paging``),
    which may say the server lists in key order (:func:`.paging.lists_in_key_order`)."""
    sweep_stale("current", spill_dir)  # what killed runs left
    server = await store.server(bucket)
    tree = paging_for(server) is Paging.TREE
    runs = _Runs(spill_dir)
    try:
        await walk_objects(
            store, bucket, prefix, runs.add, skip_prefix=skip_prefix, tree=tree,
            page_size=page_size, stats=stats,
            concurrency=CONCURRENCY if tree or lists_in_key_order(server, told) else 1,
        )  # fmt: skip
        for obj in runs.merged():
            yield obj
    finally:
        runs.close()
