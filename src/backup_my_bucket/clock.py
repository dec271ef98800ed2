"""The one place that reads the wall clock, and the one way to wait for it.

Engines take a :class:`Clock` so tests can drive time (see :class:`ManualClock`); nothing else
in the package may call ``datetime.now`` or ``time.time`` (a ruff rule holds that line).
Waiting goes through the clock too: :meth:`Clock.sleep` for a delay inside work (the second
a snapshot waits for), :meth:`Clock.sleep_until` for a moment (the scheduler's next run).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin, for durations and rates."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait this long."""
        ...

    async def sleep_until(self, when: datetime) -> None:
        """Wait until the clock shows ``when`` (at once if it already has)."""
        ...


class SystemClock:
    # A long wait is cut into steps, so a wall clock that jumps (NTP, a suspended laptop)
    # is noticed within a minute instead of sleeping on into a missed moment.
    MAX_STEP = 60.0

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))

    async def sleep_until(self, when: datetime) -> None:
        while True:
            left = (when - self.now()).total_seconds()
            if left <= 0:
                return
            await asyncio.sleep(min(left, self.MAX_STEP))


class ManualClock:
    """A clock that moves only when told to; for tests and the in-memory store.

    :meth:`sleep` moves it forward by the delay (work that waits, e.g. for the next second,
    goes on at once); :meth:`sleep_until` waits until :meth:`advance` or :meth:`set` (the
    test) moves it to that moment, so a test decides when a scheduler wakes up.
    """

    def __init__(self, start: datetime | None = None, *, tick: timedelta | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._tick = tick or timedelta(0)
        self._mono = 0.0
        self._waiters: list[tuple[datetime, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        current = self._now
        self._now += self._tick
        return current

    def monotonic(self) -> float:
        return self._mono

    def advance(self, delta: timedelta) -> None:
        self._now += delta
        self._mono += delta.total_seconds()
        self._wake()

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware time")
        self._now = when
        self._wake()

    async def sleep(self, seconds: float) -> None:
        self.advance(timedelta(seconds=max(seconds, 0.0)))
        await asyncio.sleep(0)

    async def sleep_until(self, when: datetime) -> None:
        if when <= self._now:
            await asyncio.sleep(0)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((when, waiter))
        try:
            await waiter
        finally:
            self._waiters = [(w, f) for w, f in self._waiters if f is not waiter]

    @property
    def sleepers(self) -> int:
        """How many tasks wait in :meth:`sleep_until` (tests wait for a scheduler to idle)."""
        return sum(1 for _, f in self._waiters if not f.done())

    def _wake(self) -> None:
        for when, waiter in self._waiters:
            if when <= self._now and not waiter.done():
                waiter.set_result(None)


SYSTEM_CLOCK = SystemClock()
