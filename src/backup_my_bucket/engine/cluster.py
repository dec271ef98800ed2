"""The Dask executor: the same work units on a Dask cluster (``--executor dask://HOST:PORT``).

The coordinator (this process) streams the engine's items into units of :data:`UNIT_SIZE`,
keeps at most two units per worker thread in flight (never the whole plan), and hands each
item's outcome back to the engine, which records it (journal, tallies) as it does in-process.
What runs on the workers, and the payloads that travel to them, are engine/cluster_worker.py.
A worker runs a unit on its own event loop (an ``async`` task: no thread of ours beside
Dask's, whose contention for the GIL measured a third more CPU per copy), with stores built
from the engine's stores' configuration *minus credentials*: the worker's own environment or
credential chain supplies them, so no secret travels in a task.
Each worker's C allocator is set for its units' requests when the executor connects
(engine/allocator.py: Dask's own setting made every socket read map fresh memory).

A unit whose worker is lost is retried (Dask reschedules it; :data:`UNIT_ATTEMPTS` more
submissions if Dask gives up): units name exact version ids or keys, so running one twice
changes nothing but, in a versioned target, adds a version identical to the one before. A
lost scheduler ends the command with a :class:`~..errors.ClusterError` (exit 1): what the
engine recorded stays (a restore's journal), and a rerun continues from there.

A version listing's ranges run here too when the engine asks (:meth:`DaskExecutor.ranges`):
each job lists at most :data:`~..storage.rangejob.RANGE_PAGES` pages of one range and only
reads; the listing (storage/listing.py) keeps the ranges' order, the rows and the audit.

The request rate of each destination is the coordinator's to decide (engine/rate.py): each
running unit reports what it did and the throttled answers its worker saw once a window (a
Dask event on :data:`TOPIC`, sent on the worker's batched stream: no round trip), the
coordinator broadcasts each change of a limit to the workers (``client.run``), and every
unit starts its items at its share (no limit at all until 503s stop being rare).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from .. import __version__
from ..errors import BackupError, ClusterError, MissingDependency, UsageError
from ..model import S3Url
from ..storage.protocol import ObjectStore
from ..storage.rangejob import RANGE_PAGES, RangeJob, RangeResult
from ..storage.s3 import S3Config, S3Store
from .executor import Job, destination
from .pace import Pace
from .rate import WINDOW, Report, Share, SharedRate
from .workers import Outcome, batched

try:
    import dask.config
    import distributed
    from distributed.comm.core import CommClosedError
except ImportError as exc:  # the optional extra
    raise MissingDependency(
        "--executor dask://… needs dask[distributed], which is not installed",
        hint="pip install 'backup-my-bucket[dask]'",
    ) from exc

# after the check above: the worker's side needs dask too
from .cluster_worker import (
    TOPIC,
    CloseStores,
    Done,
    Packed,
    Unit,
    hear,
    run_range,
    run_unit,
    worker_version,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

UNIT_SIZE = 1024
"""Items per unit: large enough that a task's overhead (~10 ms of the scheduler's and the
coordinator's CPU, measured: docs/scale.md) is small per item; a unit lost with its worker
is run again whole, so at most this many copies are made twice per lost worker."""
UNIT_ATTEMPTS = 3
"""Submissions of one unit before its items fail (each after Dask's own reschedules)."""
CONNECT_SECONDS = 10.0
MESSAGE_LOG = 20
"""Messages to the scheduler the client keeps for debugging (Dask's
``distributed.admin.low-level-log-length``, 1,000 by default). Each holds a unit's pickled
items (~100 kB for 1,024 of restore's actions): Dask's default held ~100 MB of them."""

_LOST = (distributed.KilledWorker, CommClosedError, OSError)


@contextlib.contextmanager
def _quiet(lost: bool) -> Iterator[None]:
    """Closing a client whose scheduler is gone cancels its attempt to reconnect, which Dask
    logs as an error with a traceback: the ClusterError already said what happened."""
    logger = logging.getLogger("distributed.client")
    level = logger.level
    if lost:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def portable(store: ObjectStore) -> S3Config:
    """What a worker needs to build ``store`` again: its configuration without credentials."""
    if not isinstance(store, S3Store):
        raise UsageError(
            "the Dask executor runs units against S3 endpoints only",
            hint="use --executor local with this store",
        )
    return dataclasses.replace(store.config, access_key=None, secret_key=None)


class DaskExecutor:
    """Units on the Dask scheduler at ``address`` (``tcp://host:port``)."""

    name = "dask"

    def __init__(
        self,
        address: str,
        *,
        unit_size: int | None = None,
        window: float = WINDOW,
        range_pages: int = RANGE_PAGES,
    ) -> None:
        self.address = address
        self.unit_size = unit_size or UNIT_SIZE
        self.range_pages = range_pages  # pages per listing range job
        self.window = window  # of the shared rates (engine/rate.py)
        self.units = 0  # submitted, retries included
        self.retried = 0
        self.rates: dict[tuple[S3Config, S3Url | None], SharedRate] = {}  # per destination
        self._by_key: dict[str, SharedRate] = {}
        self._broadcasts: set[asyncio.Task[None]] = set()
        self._client: distributed.Client | None = None
        self._client_id = ""  # names this executor's rates on the workers
        self._lost = False  # the scheduler went away mid-work (a ClusterError said so)
        self._config: dask.config.set | None = None  # restores the caller's setting

    async def open(self) -> None:
        # read when the client's connection to the scheduler is made (and remade): set while
        # this executor is open; the caller's own value comes back at aclose (or a failed open)
        self._config = dask.config.set({"distributed.admin.low-level-log-length": MESSAGE_LOG})
        try:
            self._client = await self._connect()
            self._client_id = str(self._client.id)
            await self._same_version(self._client)
            await self._client.register_plugin(CloseStores())
            self._client.subscribe_topic(TOPIC, self._on_event)  # type: ignore[no-untyped-call]
        except BaseException:
            self._client = None
            self._restore_config()
            raise

    async def _connect(self) -> distributed.Client:
        try:
            return await distributed.Client(  # type: ignore[no-untyped-call, no-any-return]
                self.address, asynchronous=True, timeout=CONNECT_SECONDS
            )
        except (OSError, TimeoutError) as exc:
            raise ClusterError(
                f"cannot reach the Dask scheduler at {self.address}: {exc}",
                hint="start one (`dask scheduler`, then `dask worker ADDRESS` on each machine) "
                "or check HOST:PORT",
            ) from exc

    def _restore_config(self) -> None:
        if self._config is not None:
            config, self._config = self._config, None
            config.__exit__(None, None, None)  # type: ignore[no-untyped-call]

    async def _same_version(self, client: distributed.Client) -> None:
        """Every worker runs this version: units are pickled by reference to its code."""
        try:
            versions = await client.run(worker_version)
        except Exception as exc:  # a worker without the package cannot even load the probe
            await client.close()  # type: ignore[no-untyped-call]
            raise ClusterError(
                f"a worker of the Dask cluster at {self.address} cannot run "
                f"backup-my-bucket: {type(exc).__name__}: {exc}",
                hint=f"install backup-my-bucket {__version__} on every worker",
            ) from exc
        mine = worker_version()
        other = {address: v for address, v in versions.items() if v != mine}
        if other:
            await client.close()  # type: ignore[no-untyped-call]
            address, version = sorted(other.items())[0]
            raise ClusterError(
                f"{len(other)} worker(s) of the Dask cluster at {self.address} run "
                f"backup-my-bucket {version} ({address}), this is {mine} (version+code digest)",
                hint="install the same build of backup-my-bucket (the same release, or the "
                "same commit's checkout) on every worker and on this machine",
            )

    async def aclose(self) -> None:
        try:
            if self._client is not None:
                client, self._client = self._client, None
                for task in self._broadcasts:
                    task.cancel()
                await asyncio.gather(*self._broadcasts, return_exceptions=True)
                with _quiet(self._lost):
                    await client.close()  # type: ignore[no-untyped-call]
        finally:
            self._restore_config()

    async def _threads(self, client: distributed.Client) -> int:
        """The cluster's worker threads, from the scheduler (the client's cached
        ``scheduler_info`` of an asynchronous client lists only some workers, or none)."""
        nthreads: dict[str, int] = await client.nthreads()  # type: ignore[no-untyped-call]
        return max(1, sum(nthreads.values()))

    def _rate(self, configs: tuple[S3Config, ...], work: object) -> SharedRate:
        """The shared rate of the folder ``work`` sends its requests to."""
        where = destination(work)
        key = (configs[-1], where)
        rate = self.rates.get(key)
        if rate is None:
            name = str(where) if where is not None else configs[-1].endpoint_url or "S3"
            rate = SharedRate(name, f"{self._client_id}/{len(self.rates)}", window=self.window)
            self.rates[key] = self._by_key[rate.key] = rate
        return rate

    def _on_event(self, event: tuple[float, object]) -> None:
        """A unit's report, from the scheduler (ours only: others may share the topic)."""
        report = Report.of(event[1])
        if report is not None:
            self._heard_from(report)

    def _heard_from(self, report: Report) -> None:
        rate = self._by_key.get(report.key)
        if rate is not None and rate.report(report) and self._client is not None:
            task = asyncio.create_task(self._broadcast(self._client, rate.share()))
            self._broadcasts.add(task)
            task.add_done_callback(self._broadcasts.discard)

    async def _broadcast(self, client: distributed.Client, share: Share) -> None:
        """Tell every worker of ``share`` (a message each; the scheduler acknowledges)."""
        try:
            await client.run(hear, share, wait=False)
        except Exception as exc:  # units sent from now on carry it anyway
            log.debug("the rate could not be broadcast: %s", exc)

    async def map(
        self, items: Iterable[T] | AsyncIterable[T], job: Job[T, R]
    ) -> AsyncIterator[Outcome[T, R]]:
        if self._client is None:
            raise RuntimeError("DaskExecutor is not open")
        client = self._client
        configs = tuple(portable(store) for store in job.stores)
        threads = await self._threads(client)
        limit = max(2, 2 * threads)  # units in flight: one running and one waiting per thread
        rate = self._rate(configs, job.work)
        rate.threads = threads
        rate.begin()
        units = batched(items, job.unit_size or self.unit_size)
        running: dict[asyncio.Task[Done], list[T]] = {}
        more = True
        try:
            while True:
                while more and len(running) < limit:
                    batch = await anext(units, None)
                    if batch is None:
                        more = False
                        break
                    if job.before is not None:
                        try:
                            await job.before()
                        except BackupError as exc:
                            for item in batch:
                                yield Outcome(item, None, exc)
                            continue
                    unit = Unit(
                        job.work, configs, Packed.of(batch), Pace.now(job.workers), job.attempts,
                        rate.share(), self.window,
                    )  # fmt: skip
                    running[asyncio.create_task(self._run(client, unit))] = batch
                    rate.running = min(threads, len(running))
                if not running:
                    return
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    batch = running.pop(task)
                    finished = task.result()
                    if finished.report is not None:
                        self._heard_from(finished.report)
                    for item, (result, error) in zip(batch, finished.results, strict=True):
                        yield Outcome(item, result, error)
                rate.running = max(1, min(threads, len(running)))
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    def _scheduler_lost(self, reason: str) -> ClusterError:
        self._lost = True
        return ClusterError(
            f"lost the Dask scheduler at {self.address} in the middle of the work ({reason})",
            hint="what finished is recorded (a restore's journal, sync's copies): rerun the "
            "command once the cluster is back, or with --executor local",
        )

    async def _run(self, client: distributed.Client, unit: Unit[T, R]) -> Done:
        """Submit ``unit`` until it completes; a unit lost every time fails its items."""
        try:
            done: Done = await self._submit(client, run_unit, unit)
        except _LostTooOften as exc:
            return Done([(None, ClusterError(str(exc)))] * unit.size)
        return done

    async def _submit(self, client: distributed.Client, task: Any, *args: Any) -> Any:
        """``task(*args)`` on the cluster, submitted again (:data:`UNIT_ATTEMPTS` times in
        all) when its worker is lost; its result."""
        lost: BaseException | None = None
        for attempt in range(UNIT_ATTEMPTS):
            self.units += 1
            self.retried += attempt > 0
            future = client.submit(task, *args, pure=False)
            try:
                return await future
            except _LOST as exc:
                if client.status != "running":  # not a worker: the scheduler
                    raise self._scheduler_lost(str(exc)) from exc
                lost = exc
                log.warning("a work unit's worker was lost (%s): submitting it again", exc)
            except concurrent.futures.CancelledError as exc:  # every unit's, at once
                reason = getattr(exc, "reason", None) or "its units were cancelled"
                raise self._scheduler_lost(reason) from exc
            finally:
                future.release()  # type: ignore[no-untyped-call]
        raise _LostTooOften(f"a work unit was lost {UNIT_ATTEMPTS} times on the cluster: {lost}")

    async def list_range(self, config: S3Config, job: RangeJob[Any]) -> RangeResult[Any]:
        """``job`` run on a worker against a store built from ``config``."""
        if self._client is None:
            raise RuntimeError("DaskExecutor is not open")
        result: RangeResult[Any] = await self._submit(self._client, run_range, config, job)
        return result

    def ranges(self, store: ObjectStore) -> Ranges:
        """Where the listing ranges of ``store`` run: jobs on this cluster
        (storage/rangejob.py), against stores built from its configuration."""
        return Ranges(self, portable(store), self.range_pages)


class _LostTooOften(ClusterError):
    """A unit's worker was lost on every submission."""


@dataclass(frozen=True, slots=True)
class Ranges:
    """A listing's ranges as jobs on ``executor``'s cluster (storage/rangejob.py): a lost
    worker's job is submitted again, a job lost every time ends the listing."""

    executor: DaskExecutor
    config: S3Config
    pages: int

    async def run(self, job: RangeJob[Any]) -> RangeResult[Any]:
        return await self.executor.list_range(self.config, job)
