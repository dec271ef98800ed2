"""The worker's side of the Dask executor (engine/cluster.py): what travels in a task and
what runs inside a Dask worker process.

A task carries a :class:`Unit` (its items :class:`Packed`, the stores' configurations without
credentials, its share of its destination's rate) and returns a :class:`Done`; a listing
range job (storage/rangejob.py) returns its :class:`~..storage.rangejob.RangeResult`.
Everything here is pickled by reference to this module, so the coordinator and every worker
must run the same version of the package (the coordinator checks with :func:`worker_version`
before the first unit).

A worker keeps one store per configuration across units (connections are reused), the newest
share of each limit the coordinator broadcast (:func:`hear`), and reports each running unit's
progress and throttled answers on :data:`TOPIC` (engine/rate.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import operator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import distributed  # engine/cluster.py imports this module only once it is known installed

from .. import __version__
from ..errors import BackupError
from ..storage.rangejob import RangeJob, RangeResult, list_range
from ..storage.retry import RETRY_GATE
from ..storage.s3 import S3Config, S3Store
from . import allocator
from .executor import Work
from .rate import Report, Share, UnitPace
from .workers import run_pool

T = TypeVar("T")
R = TypeVar("R")

TOPIC = "backup-my-bucket-rates"
"""The Dask event topic of the units' reports (one for every coordinator: the scheduler keeps
the last ``distributed.admin.low-level-log-length`` events of each topic it has seen)."""

# --- what travels --------------------------------------------------------------------------


def _positional_fields(kind: type | None) -> tuple[str, ...] | None:
    """The fields ``kind(*values)`` takes, in order, when its instances are exactly those
    values (a dataclass of two or more fields, all of them positional), else None."""
    if kind is None or not dataclasses.is_dataclass(kind):
        return None
    fields = dataclasses.fields(kind)
    if len(fields) < 2 or any(not f.init or f.kw_only for f in fields):
        return None  # (attrgetter of one name gives the value, not a tuple)
    return tuple(f.name for f in fields)


@dataclass(frozen=True, slots=True)
class Packed(Generic[T]):
    """A unit's items as they travel: a batch of one slotted dataclass (restore's actions,
    sync's and verify's listed versions) as its class and one tuple of field values per
    item, anything else as it is. Pickling dataclass instances one by one costs ~3 µs each
    way per item (``dataclasses.fields`` on every call); tuples of plain values, ~0.3 µs."""

    kind: type[T] | None
    rows: list[Any]

    @staticmethod
    def of(items: list[T]) -> Packed[T]:
        kind = type(items[0]) if items else None
        names = _positional_fields(kind)
        if kind is None or names is None or any(type(item) is not kind for item in items):
            return Packed(None, items)
        return Packed(kind, list(map(operator.attrgetter(*names), items)))

    def items(self) -> list[T]:
        kind = self.kind
        if kind is None:
            return self.rows
        return [kind(*row) for row in self.rows]


@dataclass(frozen=True, slots=True)
class Unit(Generic[T, R]):
    """One task: ``work`` on the ``packed`` items against stores built from ``configs``,
    ``workers`` at once, at its ``share`` of its destination's rate (engine/rate.py)."""

    work: Work[T, R]
    configs: tuple[S3Config, ...]
    packed: Packed[T]
    workers: int
    attempts: int
    share: Share
    window: float  # of its reports

    @property
    def size(self) -> int:
        return len(self.packed.rows)


@dataclass(frozen=True, slots=True)
class Done:
    """A unit's outcomes, each item's (result, error) in the unit's order, and its last
    report (engine/rate.py). Not a bare list: Dask serialises a list item by item (one frame
    each, read one by one on the way back), an object in one piece."""

    results: list[tuple[Any, BackupError | None]]
    report: Report | None = None


# --- what runs on a worker -----------------------------------------------------------------

_stores: dict[S3Config, S3Store] = {}
_throttles_reported: dict[S3Config, int] = {}
_heard: dict[str, Share] = {}
"""The newest share of each limit the coordinator broadcast."""
_opening: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}
units_run = 0
"""Units this worker process has run (what tests and benchmarks ask workers)."""
ranges_run = 0
"""Listing range jobs this worker process has run (what tests ask workers)."""


def worker_version() -> str:
    """This process's backup-my-bucket: its version and a digest of its code, so that two
    checkouts of one version with different code are told apart (units are pickled by
    reference to the code that runs them)."""
    return f"{__version__}+{source_digest(Path(__file__).resolve().parents[1])}"


@functools.cache
def source_digest(package: Path) -> str:
    """A digest of every ``.py`` file under ``package`` (names and contents, in name order;
    hidden files and ones that cannot be read, such as an editor's lock links, left out):
    read once per process, ~5 ms."""
    digest = hashlib.blake2b(digest_size=8)
    for path in sorted(package.rglob("*.py")):
        name = path.relative_to(package).as_posix()
        if any(part.startswith(".") for part in name.split("/")):
            continue
        try:
            body = path.read_bytes()
        except OSError:
            continue
        digest.update(name.encode() + b"\0" + body + b"\0")
    return digest.hexdigest()


async def hear(share: Share) -> None:
    """A broadcast from the coordinator (``client.run``, which takes a coroutine function
    when it does not wait for an answer)."""
    known = _heard.get(share.key)
    if known is None or known.generation < share.generation:
        _heard[share.key] = share


async def _store(config: S3Config) -> S3Store:
    """This worker's store for ``config``, opened once: connections are reused from one
    unit to the next (units run on the worker's event loop)."""
    async with _opening.setdefault(asyncio.get_running_loop(), asyncio.Lock()):
        store = _stores.get(config)
        if store is None:
            store = S3Store(config)
            await store.open()
            _stores[config] = store
        return store


class CloseStores(distributed.WorkerPlugin):
    """Sets a worker's allocator for its units' requests when it joins (engine/allocator.py:
    Dask's nanny fixes glibc's thresholds where each socket read costs a mapping of its own),
    and closes its stores when the worker closes (a lost worker just drops them)."""

    name = "backup-my-bucket-stores"

    def setup(self, worker: distributed.Worker) -> None:
        allocator.tune()

    async def teardown(self, worker: distributed.Worker) -> None:
        for store in list(_stores.values()):
            await store.close()
        _stores.clear()
        _throttles_reported.clear()
        _heard.clear()


async def run_range(config: S3Config, job: RangeJob[Any]) -> RangeResult[Any]:
    """The task of a listing range (storage/rangejob.py), on a worker's event loop."""
    global ranges_run
    ranges_run += 1
    return await list_range(await _store(config), job)


async def run_unit(unit: Unit[T, R]) -> Done:
    """The task a Dask worker runs, on its event loop: each item's (result, error), in the
    unit's order, started no faster than its share of its destination's limit allows."""
    global units_run
    units_run += 1
    stores = [await _store(config) for config in unit.configs]
    items = unit.packed.items()
    results: list[tuple[Any, BackupError | None]] = [(None, None)] * len(items)
    worker = distributed.get_worker()
    pace = UnitPace(
        unit.share,
        window=unit.window,
        latest=_heard.get,
        throttled=lambda: _throttled(unit.configs),
        send=lambda report: worker.log_event(TOPIC, report.message()),
    )

    async def one(numbered: tuple[int, T]) -> R:
        await pace.take()
        # the retries of the item's requests take from its share too (those to the source
        # included: one share per unit); its later requests go as its work sends them
        gate = RETRY_GATE.set(pace.take)
        try:
            return await unit.work(stores, numbered[1])
        finally:
            RETRY_GATE.reset(gate)

    workers = max(1, min(unit.workers, len(items)))
    pool = run_pool(enumerate(items), one, workers=workers, attempts=unit.attempts)
    reporting = asyncio.create_task(pace.keep_reporting())
    try:
        async for outcome in pool:
            results[outcome.item[0]] = (outcome.result, outcome.error)
            pace.done()
    finally:
        reporting.cancel()
        await asyncio.gather(reporting, return_exceptions=True)
    return Done(results, pace.rest())


def _throttled(configs: tuple[S3Config, ...]) -> int:
    """Throttled answers this process's stores for ``configs`` counted since they were last
    asked: each is reported once, by whichever unit asks next."""
    total = 0
    for config in set(configs):
        seen = _stores[config].throttled
        total += seen - _throttles_reported.get(config, 0)
        _throttles_reported[config] = seen
    return total
