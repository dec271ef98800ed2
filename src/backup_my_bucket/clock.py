"""The one place that reads the wall clock.

Engines take a :class:`Clock` so tests can drive time (see :class:`ManualClock`); nothing else
in the package may call ``datetime.now`` or ``time.time`` (a ruff rule holds that line).
"""

from __future__ import annotations

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


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that moves only when told to; for tests and the in-memory store."""

    def __init__(self, start: datetime | None = None, *, tick: timedelta | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._tick = tick or timedelta(0)
        self._mono = 0.0

    def now(self) -> datetime:
        current = self._now
        self._now += self._tick
        return current

    def monotonic(self) -> float:
        return self._mono

    def advance(self, delta: timedelta) -> None:
        self._now += delta
        self._mono += delta.total_seconds()

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware time")
        self._now = when


SYSTEM_CLOCK = SystemClock()
