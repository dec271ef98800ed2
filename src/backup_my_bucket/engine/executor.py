"""The executor seam: where an engine's work units run.

An engine hands :meth:`Executor.map` a stream of items (copies of exact version ids, deletes,
batches of version deletes, HEADs) and a :class:`Job` around one :class:`Work`: a small,
picklable description of what to do with each item (URLs, settings; never a store, never a
credential), called with the stores it needs. The engine keeps everything that decides: the
plan, the journal, the catalog and its lock, the tallies and the final result. Outcomes come
back per item, in completion order, exactly as :func:`~.workers.run_pool` yields them.

- :data:`IN_PROCESS` (the default) is ``run_pool`` over this process's stores: what ran
  before the seam existed, at the same speed.
- ``dask://HOST:PORT`` (engine/cluster.py) groups the items into units, runs them on a Dask
  cluster, each worker with stores built from the same configuration minus its credentials
  (the worker's own environment or credential chain supplies them), and keeps a bounded
  number of units in flight. A unit is idempotent: it names exact version ids or keys, so a
  unit run twice (a lost worker's, retried elsewhere) changes nothing that matters.
  :meth:`Executor.ranges` runs a version listing's ranges there too (storage/rangejob.py):
  a job lists a bounded number of pages of one range and only reads.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from ..errors import UsageError
from ..model import S3Url
from ..storage.protocol import ObjectStore
from ..storage.rangejob import RangeRunner
from .pace import Pace
from .workers import Outcome, run_pool

T = TypeVar("T")
R = TypeVar("R")
T_contra = TypeVar("T_contra", contravariant=True)
R_co = TypeVar("R_co", covariant=True)


class _Keyed(Protocol):
    @property
    def key(self) -> str: ...


K = TypeVar("K", bound=_Keyed)

Before = Callable[[], Awaitable[None]]
"""Run before each unit starts, on the coordinator's side (gc: the catalog lock's check)."""


class Work(Protocol[T_contra, R_co]):
    """What to do with one item, given the stores the engine named (in its order).

    Implementations are frozen dataclasses at module level, so they pickle by reference.
    Those whose requests go to one folder say which as ``destination`` (an :class:`S3Url`)."""

    def __call__(self, stores: Sequence[ObjectStore], item: T_contra, /) -> Awaitable[R_co]: ...


def destination(work: object) -> S3Url | None:
    """The folder a work's requests go to, in the last of its stores (its ``destination``);
    None when it names none."""
    where = getattr(work, "destination", None)
    return where if isinstance(where, S3Url) else None


@dataclass(frozen=True, slots=True)
class Job(Generic[T, R]):
    """What :meth:`Executor.map` runs on each item.

    ``workers``: concurrent requests (in-process, all of them; on a cluster, per unit).
    ``before`` runs before each unit starts (in-process: each item): an error it raises is
    that unit's items' outcome. ``unit_size``: items per unit on a cluster when the
    executor's default does not suit (gc's items are already batches of 1,000)."""

    work: Work[T, R]
    stores: Sequence[ObjectStore]
    workers: int | Pace
    attempts: int = 3
    before: Before | None = None
    unit_size: int | None = None


class Executor(Protocol):
    """Runs a :class:`Job` on a stream of items; see the module docstring."""

    @property
    def name(self) -> str: ...

    def map(
        self, items: Iterable[T] | AsyncIterable[T], job: Job[T, R]
    ) -> AsyncIterator[Outcome[T, R]]:
        """Outcomes of ``job.work`` on every item, in completion order."""
        ...

    def ranges(self, store: ObjectStore) -> RangeRunner | None:
        """Where the ranges of a version listing of ``store`` run (storage/rangejob.py);
        None: in this process, by the listing itself."""
        ...

    async def aclose(self) -> None: ...


class InProcess:
    """Today's executor: a bounded pool of tasks in this process, one item at a time."""

    name = "in-process"

    def map(
        self, items: Iterable[T] | AsyncIterable[T], job: Job[T, R]
    ) -> AsyncIterator[Outcome[T, R]]:
        work, stores, before = job.work, job.stores, job.before
        if before is None:
            return run_pool(
                items, lambda item: work(stores, item), workers=job.workers, attempts=job.attempts
            )

        async def guarded(item: T) -> R:
            await before()
            return await work(stores, item)

        return run_pool(items, guarded, workers=job.workers, attempts=job.attempts)

    def ranges(self, store: ObjectStore) -> RangeRunner | None:
        return None

    async def aclose(self) -> None:
        return None


IN_PROCESS = InProcess()

LOCAL = "local"
DASK_SCHEME = "dask://"


async def open_executor(text: str) -> Executor:
    """The executor ``text`` names: ``local``, or ``dask://HOST:PORT`` (checked by the CLI's
    ``settings.check_executor``), connected."""
    if text == LOCAL:
        return IN_PROCESS
    if not text.startswith(DASK_SCHEME):
        raise UsageError(f"not an executor: {text!r}", hint="local or dask://HOST:PORT")
    from .cluster import DaskExecutor  # the optional extra: imported only when asked for

    executor = DaskExecutor("tcp://" + text[len(DASK_SCHEME) :])
    await executor.open()
    return executor


@dataclass(frozen=True, slots=True)
class DeleteKey(Generic[K]):
    """Delete one key (a delete marker in a versioned bucket), ``where`` joined to the item's
    relative key: restore's deletes and sync's. Idempotent in effect: the key stays absent (a
    retried unit may leave one more delete marker in a versioned bucket)."""

    where: S3Url

    @property
    def destination(self) -> S3Url:
        return self.where

    async def __call__(self, stores: Sequence[ObjectStore], item: K) -> str | None:
        return await stores[0].delete(self.where.bucket, self.where.key(item.key))
