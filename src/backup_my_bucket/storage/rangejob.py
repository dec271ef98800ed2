"""A listing range as a unit of work for a cluster (docs/design.md, rule 24).

:class:`~.listing.ParallelListing` keeps the ranges, their order, the buffering, the audit and
the consumer; with a :class:`RangeRunner` (engine/cluster.py: a Dask cluster) it hands each
range's paging out as :class:`RangeJob` s. A job names a range's position (:class:`RangeState`:
exactly what the in-process range holds between two pages), the key history it had begun
(``carry``: a key's versions are never split between two results), the snapshot's reducer and
at most ``pages`` pages to list. :func:`list_range` runs it with the same :class:`~.pager.Pager`
step and :func:`~.pager.split_range` as the in-process listing, and returns the reduced rows,
the audit's share (a stable 64-bit hash of each live key: ``hash()`` differs between
processes), the new ranges it cut or that TREE paging added (to go right after it, in key
order) and where to resume. A job only reads: run twice, it returns the same result.
"""

from __future__ import annotations

import asyncio
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from ..model import KeyHistory, ObjectVersion, VersionPage
from .audit import stable_hash
from .pager import Pager, branching_key, split_range
from .paging import Paging
from .protocol import ObjectStore
from .ranges import History, ListingStats, Unit

R = TypeVar("R")

RANGE_PAGES = 8
"""Pages a range lists per job: a job's overhead on the cluster (~10 ms) stays small beside
its pages' (~0.1 s each on S3), and its result at most this many pages of rows."""


@dataclass(frozen=True, slots=True)
class RangeState:
    """Where a range stands between two pages: the fields of a :class:`~.ranges.Unit` that
    say what it lists next (none of its rows)."""

    after: str
    until: str | None
    prefix: str
    wire: str = ""
    inside: str = ""
    cleared: frozenset[str] = frozenset()
    point: str | None = None
    nulls: tuple[ObjectVersion, ...] = ()
    first_page: VersionPage | None = None

    @staticmethod
    def of(unit: Unit[Any]) -> RangeState:
        return RangeState(
            unit.after, unit.until, unit.prefix, unit.wire, unit.inside, unit.cleared,
            unit.point, tuple(unit.nulls), unit.first_page,
        )  # fmt: skip

    def apply(self, unit: Unit[Any]) -> None:
        """Set ``unit`` (rows and links untouched) to this position."""
        unit.after, unit.until, unit.prefix, unit.wire = (
            self.after,
            self.until,
            self.prefix,
            self.wire,
        )
        unit.inside, unit.cleared, unit.point = self.inside, self.cleared, self.point
        unit.nulls, unit.first_page = list(self.nulls), self.first_page

    def unit(self) -> Unit[Any]:
        unit: Unit[Any] = Unit(after=self.after, until=self.until, prefix=self.prefix)
        self.apply(unit)
        return unit


@dataclass(frozen=True, slots=True)
class RangeJob(Generic[R]):
    """List ``state``'s range of ``bucket`` for at most ``pages`` pages (see the module
    docstring). ``reduce`` must pickle (a frozen dataclass at module level); ``budget``: new
    ranges it may cut (the coordinator's idle workers); ``audit``: return the live keys'
    hashes; ``span``: return the oldest and newest entry's stamps."""

    bucket: str
    state: RangeState
    reduce: Callable[[KeyHistory], R | None]
    page_size: int
    paging: Paging
    stems: bool
    pages: int = RANGE_PAGES
    budget: int = 0
    carry: KeyHistory | None = None
    skip_prefix: str | None = None
    audit: bool = False
    span: bool = False


@dataclass(frozen=True, slots=True)
class RangeResult(Generic[R]):
    """What a :class:`RangeJob` listed: ``rows`` in key order; ``state``: where the range
    goes on (None: finished); ``carry``: the history of its last key, not finished yet;
    ``added``: new ranges right after it, in key order; ``live``: stable hashes of the keys
    whose newest entry is a version (the audit's); ``oldest``/``newest``: stamps."""

    rows: list[R]
    state: RangeState | None
    carry: KeyHistory | None
    added: list[RangeState]
    live: array[int]
    stats: ListingStats
    oldest: datetime | None = None
    newest: datetime | None = None


class RangeRunner(Protocol):
    """Where a listing's ranges run when not in this process (engine/cluster.py)."""

    @property
    def pages(self) -> int:
        """Pages per job."""
        ...

    async def run(self, job: RangeJob[Any]) -> RangeResult[Any]: ...


async def list_range(store: ObjectStore, job: RangeJob[R]) -> RangeResult[R]:
    """Run ``job`` against ``store`` (a worker's, built from the same configuration)."""
    stats = ListingStats(units=0)
    unit = job.state.unit()
    added: list[Unit[Any]] = []

    def insert(_: Unit[Any], new: list[Unit[Any]]) -> None:
        added[0:0] = new  # right after the range, before what was added after it earlier

    pager = Pager(
        store, job.bucket, page_size=job.page_size, paging=job.paging, stems=job.stems,
        stats=stats, requests=asyncio.Semaphore(1), insert=insert,
    )  # fmt: skip
    rows: list[R] = []
    live: array[int] = array("Q")
    span: list[datetime] = []  # the oldest and the newest stamp listed
    skip, reduce = job.skip_prefix, job.reduce

    def emit(history: KeyHistory) -> None:
        if skip is not None and history.key.startswith(skip):
            return
        if job.audit and history.current is not None:
            live.append(stable_hash(history.key))
        if job.span:
            stamps = [v.last_modified for v in history.versions]
            span[:] = [min(stamps + span[:1]), max(stamps + span[1:])]
        row = reduce(history)
        if row is not None:
            rows.append(row)

    history = History(job.bucket, emit)
    if job.carry is not None:
        history.key, history.group = job.carry.key, list(job.carry.versions)
    finished = False
    for _ in range(max(1, job.pages)):
        page = await pager.step(unit, history)
        if page is None:
            finished = True
            break
        budget = job.budget - len(added)
        if budget > 0 and history.key is not None and page.entries:
            branch = branching_key(page, history.key, job.skip_prefix)
            added[0:0] = split_range(
                unit, branch, history.key, budget, tree=job.paging is Paging.TREE
            )
    carry = None
    if finished:
        history.close()
    elif history.key is not None:
        carry = KeyHistory(history.key, tuple(history.group))
    return RangeResult(
        rows=rows,
        state=None if finished else RangeState.of(unit),
        carry=carry,
        added=[RangeState.of(u) for u in added],
        live=live,
        stats=stats,
        oldest=span[0] if span else None,
        newest=span[1] if span else None,
    )
