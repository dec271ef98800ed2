import asyncio
from collections.abc import AsyncIterator

import pytest

from backup_my_bucket.engine.workers import Outcome, first_of_both, in_order, retrying, run_pool
from backup_my_bucket.errors import (
    AccessDenied,
    EndpointUnreachable,
    InvalidCredentials,
    StorageError,
)


async def test_pool_runs_everything_with_bounded_concurrency() -> None:
    running = 0
    peak = 0

    async def work(i: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001)
        running -= 1
        return i * 2

    outcomes = [o async for o in run_pool(range(200), work, workers=7)]
    assert sorted(o.result for o in outcomes if o.result is not None) == [i * 2 for i in range(200)]
    assert all(o.ok for o in outcomes)
    assert peak == 7


async def test_transient_errors_are_retried_permanent_ones_reported() -> None:
    calls: dict[int, int] = {}

    async def work(i: int) -> int:
        calls[i] = calls.get(i, 0) + 1
        if i == 1 and calls[i] < 3:
            raise StorageError("503 SlowDown")
        if i == 2:
            raise AccessDenied("no")
        if i == 3:
            raise StorageError("always broken")
        return i

    outcomes = {o.item: o async for o in run_pool(range(5), work, workers=2, attempts=3)}
    assert outcomes[1].ok and calls[1] == 3
    assert isinstance(outcomes[2].error, AccessDenied) and calls[2] == 1
    assert isinstance(outcomes[3].error, StorageError) and calls[3] == 3
    assert outcomes[0].ok and outcomes[4].ok


async def test_bugs_propagate_and_cancel_the_pool() -> None:
    async def work(i: int) -> int:
        if i == 5:
            raise ZeroDivisionError("bug")
        await asyncio.sleep(0.01)
        return i

    with pytest.raises(ZeroDivisionError):
        async for _ in run_pool(range(100), work, workers=4):
            pass


async def test_async_iterable_input_streams() -> None:
    async def gen():  # type: ignore[no-untyped-def]
        for i in range(10):
            yield i

    async def work(i: int) -> int:
        return i

    assert sorted([o.result async for o in run_pool(gen(), work, workers=3)]) == list(range(10))  # type: ignore[type-var]


async def test_retrying_gives_up_after_attempts() -> None:
    sleeps: list[float] = []

    async def sleep(d: float) -> None:
        sleeps.append(d)

    async def fail() -> None:
        raise StorageError("x")

    with pytest.raises(StorageError):
        await retrying(fail, attempts=3, base_delay=1, sleep=sleep)
    assert sleeps == [1, 2]


async def test_a_failing_item_source_stops_the_pool_with_its_error() -> None:
    async def listing():  # type: ignore[no-untyped-def]
        for i in range(3):
            yield i
        raise StorageError("listing broke")

    async def work(i: int) -> int:
        return i

    got: list[int | None] = []

    async def drain() -> None:
        async for outcome in run_pool(listing(), work, workers=4):
            got.append(outcome.result)

    with pytest.raises(StorageError, match="listing broke"):
        await drain()
    assert len(got) <= 3


async def test_in_order_keeps_the_order_bounds_the_work_and_passes_the_rest() -> None:
    running = peak = 0
    held_back = 0

    async def work(i: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001 * (i % 5))  # finish out of order
        running -= 1
        if i == 30:
            raise AccessDenied("no")  # a permanent error: an outcome, not an exception
        return -i

    async def items() -> AsyncIterator[int]:
        nonlocal held_back
        for i in range(300):
            held_back = max(held_back, i - len(seen))
            yield i

    seen: list[int] = []
    async for outcome in in_order(items(), work, needs=lambda i: i % 3 == 0, workers=4, window=50):
        seen.append(outcome.item)
        if outcome.item == 30:
            assert outcome.error is not None and outcome.result is None
        elif outcome.item % 3 == 0:
            assert outcome.ok and outcome.result == -outcome.item
        else:
            assert outcome.ok and outcome.result is None  # passed on, no work
    assert seen == list(range(300))
    assert peak == 4 and held_back <= 51


async def test_in_order_cancels_what_runs_when_the_consumer_stops() -> None:
    started: list[int] = []
    cancelled: list[int] = []

    async def work(i: int) -> int:
        started.append(i)
        if i >= 2:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled.append(i)
                raise
        return i

    async def items() -> AsyncIterator[int]:
        for i in range(10):
            yield i

    stream = in_order(items(), work, needs=lambda i: True, workers=3)
    assert [(await anext(stream)).result for _ in range(2)] == [0, 1]
    await stream.aclose()
    assert started == [0, 1, 2, 3] and sorted(cancelled) == [2, 3]


@pytest.mark.parametrize(
    "systemic", [EndpointUnreachable("server gone"), InvalidCredentials("token expired")]
)
async def test_a_systemic_error_ends_the_pool_instead_of_failing_item_by_item(
    systemic: StorageError,
) -> None:
    """Once the endpoint is gone every later item would fail alike, each after its retries:
    the pool stops with that error, having started few of the items that follow."""
    started: list[int] = []

    async def work(i: int) -> int:
        started.append(i)
        if i == 3:
            raise AccessDenied("one key's policy")  # an item's own failure: an outcome
        if i >= 10:
            raise systemic
        await asyncio.sleep(0)
        return i

    outcomes: list[Outcome[int, int]] = []

    async def drain() -> None:
        async for outcome in run_pool(range(1000), work, workers=4, attempts=1):
            outcomes.append(outcome)

    with pytest.raises(type(systemic)):
        await drain()
    assert any(isinstance(o.error, AccessDenied) for o in outcomes)
    assert len(started) < 30, "the pool kept starting items after the endpoint was gone"

    started.clear()

    async def drain_in_order() -> None:
        async for _ in in_order(numbers(1000), work, needs=lambda i: True, workers=4):
            pass

    with pytest.raises(type(systemic)):
        await drain_in_order()
    assert len(started) < 30


async def numbers(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i


async def test_first_of_both_asks_both_at_once_and_raises_without_waiting() -> None:
    started: list[str] = []
    never = asyncio.Event()

    async def stream(name: str, fail: bool) -> AsyncIterator[str]:
        started.append(name)
        if fail:
            raise StorageError(f"{name} failed")
        await never.wait()  # a sorted listing yields nothing until its walk has ended
        yield name

    async def one(name: str) -> AsyncIterator[str]:
        started.append(name)
        yield name

    assert await first_of_both(one("a"), one("b")) == ("a", "b") and started == ["a", "b"]
    slow, failing = stream("slow", fail=False), stream("failing", fail=True)
    with pytest.raises(StorageError, match="failing failed"):
        await asyncio.wait_for(first_of_both(slow, failing), timeout=5)
    with pytest.raises(StopAsyncIteration):  # the other ask was cancelled: that stream ended
        await anext(slow)
