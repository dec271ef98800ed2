"""The clock's waits: a manual clock's sleep moves it, sleep_until waits for the test."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from backup_my_bucket.clock import ManualClock, SystemClock

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def test_manual_sleep_moves_the_clock() -> None:
    clock = ManualClock(T0)
    await clock.sleep(1.5)
    assert clock.now() == T0 + timedelta(seconds=1.5)
    assert clock.monotonic() == 1.5


async def test_manual_sleep_until_waits_for_the_clock_to_be_moved() -> None:
    clock = ManualClock(T0)
    woke: list[datetime] = []

    async def sleeper() -> None:
        await clock.sleep_until(T0 + timedelta(hours=1))
        woke.append(clock.now())

    task = asyncio.create_task(sleeper())
    await asyncio.sleep(0)
    assert clock.sleepers == 1
    clock.advance(timedelta(minutes=59))
    await asyncio.sleep(0)
    assert woke == [] and clock.sleepers == 1
    clock.set(T0 + timedelta(hours=2))
    await task
    assert woke == [T0 + timedelta(hours=2)]
    assert clock.sleepers == 0


async def test_manual_sleep_until_the_past_returns_at_once() -> None:
    clock = ManualClock(T0)
    await asyncio.wait_for(clock.sleep_until(T0 - timedelta(days=1)), 1)


async def test_cancelled_sleeper_is_forgotten() -> None:
    clock = ManualClock(T0)
    task = asyncio.create_task(clock.sleep_until(T0 + timedelta(days=1)))
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert clock.sleepers == 0
    clock.advance(timedelta(days=2))  # waking a cancelled waiter must not raise


async def test_system_clock_sleep_until_a_near_moment() -> None:
    clock = SystemClock()
    target = clock.now() + timedelta(milliseconds=50)
    await asyncio.wait_for(clock.sleep_until(target), 2)
    assert clock.now() >= target
