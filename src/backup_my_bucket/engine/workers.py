"""The one place concurrency lives: a bounded pool of asyncio workers with per-item retries.

Items stream in (an iterable or async iterable, never materialised), at most ``workers`` run at
once and at most ``2 * workers`` wait in the queue, so memory stays flat whatever the count.
``workers`` is a number, or a :class:`~.pace.Pace`: the endpoint's concurrency, adapted
within its bounds while the pool runs (its upper bound is the number of workers).
botocore already retries each request (adaptive mode); :func:`retrying` adds a retry of the
whole work unit (e.g. a multipart copy) for transient storage errors. An item that still fails
becomes an :class:`Outcome` with its error, so callers can finish the rest and report exit 3.
A systemic error (:func:`~..storage.retry.is_systemic`: the endpoint is gone, the credentials
stopped working) would fail every item that follows: it cancels the pool and propagates, so a
run whose server went away ends in seconds with that error, not item by item for hours.
Errors that are not :class:`BackupError` are bugs: they cancel the pool and propagate too.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from ..errors import BackupError
from ..storage.retry import is_systemic, retrying
from .pace import Pace

T = TypeVar("T")
R = TypeVar("R")

_DONE = object()


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T, R]):
    item: T
    result: R | None = None
    error: BackupError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class _Raised:
    error: Exception


async def _aiter(items: Iterable[T] | AsyncIterable[T]) -> AsyncIterator[T]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


class _Gate:
    """Lets at most ``pace.limit`` items run at once, whatever the limit is by then."""

    def __init__(self, pace: Pace) -> None:
        self._pace = pace
        self._running = 0
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()

    async def enter(self) -> None:
        if self._running >= self._pace.limit or self._waiting:
            waiter = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._running -= 1  # it was let in: hand its place on
                    self._wake()
                raise
        else:
            self._running += 1

    def leave(self) -> None:
        self._running -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiting and self._running < self._pace.limit:
            waiter = self._waiting.popleft()
            if not waiter.done():
                self._running += 1
                waiter.set_result(None)


async def batched(items: Iterable[T] | AsyncIterable[T], size: int) -> AsyncIterator[list[T]]:
    """``items`` in lists of ``size`` (the last one shorter), as they stream in."""
    batch: list[T] = []
    async for item in _aiter(items):
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


async def run_pool(
    items: Iterable[T] | AsyncIterable[T],
    work: Callable[[T], Awaitable[R]],
    *,
    workers: int | Pace,
    attempts: int = 3,
) -> AsyncIterator[Outcome[T, R]]:
    """Run ``work`` on every item, ``workers`` at a time; yield outcomes as they complete."""
    pace = workers if isinstance(workers, Pace) else None
    if pace is not None:
        workers = pace.high
    assert isinstance(workers, int)
    if workers < 1:
        raise ValueError("workers must be at least 1")
    gate = _Gate(pace) if pace is not None and not pace.pinned else None
    todo: asyncio.Queue[object] = asyncio.Queue(maxsize=2 * workers)
    done: asyncio.Queue[object] = asyncio.Queue()  # outcomes, _DONE per worker, or _Raised

    async def produce() -> None:
        try:
            async for item in _aiter(items):
                await todo.put(item)
        except Exception as exc:  # the items' own failure (a listing): raised by the consumer
            done.put_nowait(_Raised(exc))
            return
        for _ in range(workers):
            await todo.put(_DONE)

    async def worker() -> None:
        while True:
            item = await todo.get()
            if item is _DONE:
                done.put_nowait(_DONE)
                return
            if gate is not None:
                await gate.enter()
            started = pace.begin() if pace is not None else 0.0
            try:
                result = await retrying(lambda: work(item), attempts=attempts)  # type: ignore[arg-type]  # noqa: B023
            except BackupError as exc:
                if is_systemic(exc):  # every other item would fail alike: stop the pool
                    done.put_nowait(_Raised(exc))
                    return
                done.put_nowait(Outcome(item, None, exc))
            except Exception as exc:  # a bug: surfaced by the consumer, which stops the pool
                done.put_nowait(_Raised(exc))
                return
            else:
                done.put_nowait(Outcome(item, result))
            finally:
                if pace is not None:
                    pace.end(started)
                if gate is not None:
                    gate.leave()

    tasks = [asyncio.create_task(produce())]
    tasks += [asyncio.create_task(worker()) for _ in range(workers)]
    finished = 0
    try:
        while finished < workers:
            got = await done.get()
            if got is _DONE:
                finished += 1
            elif isinstance(got, _Raised):
                raise got.error
            else:
                yield got  # type: ignore[misc]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def first_of_both(a: AsyncIterator[T], b: AsyncIterator[R]) -> tuple[T | None, R | None]:
    """The first item of each stream (None: empty), asked for at once.

    A stream that starts its work on the first ask (:func:`prefetch`, a listing) would
    otherwise wait for the other's first item: two listings would run in turn, not together.
    An error of either is raised as soon as it comes, the other ask cancelled (a sorted
    listing yields nothing until its whole walk ends: the error must not wait for it).
    """
    first = asyncio.ensure_future(_next(a))
    second = asyncio.ensure_future(_next(b))
    try:
        await asyncio.wait((first, second), return_when=asyncio.FIRST_EXCEPTION)
        for task in (first, second):
            if task.done() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        return first.result(), second.result()
    finally:
        for task in (first, second):
            task.cancel()
        await asyncio.gather(first, second, return_exceptions=True)


async def _next(items: AsyncIterator[T]) -> T | None:
    return await anext(items, None)


async def prefetch(items: AsyncIterable[T], size: int) -> AsyncIterator[T]:
    """Iterate ``items`` in a task of its own, up to ``size`` items ahead of the consumer.

    Two listings merged this way run concurrently (and ahead of the work they feed) instead
    of taking turns; the bound keeps memory flat. An error in ``items`` reaches the consumer.
    """
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=max(size, 1))

    async def fill() -> None:
        try:
            async for item in items:
                await queue.put(item)
        except Exception as exc:  # handed to the consumer, raised there
            await queue.put(_Raised(exc))
            return
        await queue.put(_DONE)

    task = asyncio.create_task(fill())
    try:
        while True:
            got = await queue.get()
            if got is _DONE:
                return
            if isinstance(got, _Raised):
                raise got.error
            yield got  # type: ignore[misc]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def in_order(
    items: AsyncIterable[T],
    work: Callable[[T], Awaitable[R]],
    *,
    needs: Callable[[T], bool],
    workers: int,
    window: int = 10_000,
) -> AsyncIterator[Outcome[T, R]]:
    """``work`` on the items that ``needs`` it, ``workers`` at a time, every item passed on in
    its input order (the others with no result), at most ``window`` items held back.

    For stages between an ordered listing and an ordered consumer (a merge, a spooled plan):
    items that need no request cost no task. Each piece of work is retried like
    :func:`run_pool`'s; one that still fails is an outcome with its error.
    """
    if workers < 1:
        raise ValueError("workers must be at least 1")
    held: collections.deque[Outcome[T, R] | asyncio.Task[Outcome[T, R]]] = collections.deque()
    running = 0

    async def run(item: T) -> Outcome[T, R]:
        try:
            return Outcome(item, await retrying(lambda: work(item)))
        except BackupError as exc:
            if is_systemic(exc):
                raise  # out of first(): ends the stage like run_pool's
            return Outcome(item, None, exc)

    async def first() -> Outcome[T, R]:
        nonlocal running
        head = held[0]
        if isinstance(head, asyncio.Task):
            await asyncio.wait([head])
            running -= 1
            head = head.result()
        held.popleft()
        return head

    try:
        async for item in items:
            if needs(item):
                held.append(asyncio.create_task(run(item)))
                running += 1
            else:
                held.append(Outcome(item))
            while held and (
                running >= workers or len(held) > window or not isinstance(held[0], asyncio.Task)
            ):
                yield await first()
        while held:
            yield await first()
    finally:
        tasks = [task for task in held if isinstance(task, asyncio.Task)]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
