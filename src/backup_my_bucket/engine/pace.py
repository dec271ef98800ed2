"""How many copies (or deletes) run at once: a fixed number, or one adapted within bounds.

:class:`Pace` holds the concurrency of one endpoint's request pools (:func:`.workers.run_pool`
runs its items under it), shared by every pool a command runs against that endpoint (sync's
copies then its delete markers, restore's copies then deletes). Pinned (``low == high``:
``--workers N``, ``--copy-workers N``) it never moves. Otherwise it adapts, per window of at
least :attr:`Pace.window` seconds (one by default: shorter ones are mostly noise on a shared
server) and one completion per slot, counted from the first item:

- **slow start**: from ``start``, times 1.5 per window while throughput grows by ≥ 10 %;
- **congestion avoidance**: then +⅛ per window while throughput still grows by ≥ 5 % and
  latency stays under 4 times the lowest seen; a step that brought nothing is taken back, and the
  next probe waits a few windows;
- **back off** on throttling (503 SlowDown and the like, counted by the store): times 0.7 at once,
  as botocore's adaptive retry mode backs off (CUBIC's β), then no growth for three windows;
  latency above the bound without more throughput also steps down by ⅛.

The policy (:meth:`Pace.decide`) is a pure function of the window's figures, unit-tested with
synthetic servers (tests/unit/test_pace.py); the figures come from the pool's own accounting
(:meth:`Pace.begin` / :meth:`Pace.end`, through the injected clock) and the store's count of
throttled answers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from ..clock import SYSTEM_CLOCK, Clock

log = logging.getLogger(__name__)

SLOW_START = 1.5
SLOW_START_GAIN = 0.10
GAIN = 0.05
BACK_OFF = 0.7
LATENCY_BOUND = 4.0
HOLD_AFTER_THROTTLE = 3
PROBE_EVERY = 6  # windows on a plateau before the next step up


@dataclass(frozen=True, slots=True)
class Window:
    """What one window measured: completions per second, their mean latency, throttled answers."""

    rate: float
    latency: float
    throttled: int


class Pace:
    """The concurrency of one endpoint's request pools: ``limit`` items at once, within
    ``[low, high]``; ``throttles()``: the store's running count of throttled answers."""

    def __init__(
        self,
        start: int,
        low: int | None = None,
        high: int | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        throttles: Callable[[], int] = lambda: 0,
        window: float = 1.0,
    ) -> None:
        self.low = max(1, low if low is not None else start)
        self.high = max(self.low, high if high is not None else start)
        self.limit = min(max(start, self.low), self.high)
        self.window = window
        self._clock = clock
        self._throttles = throttles
        # the window being measured (from the first item on: not the listing before it)
        self._since: float | None = None
        self._seen_throttles = 0
        self._done = 0
        self._latency = 0.0
        # the policy's memory
        self._slow_start = True
        self._previous: Window | None = None  # the window before the last decision
        self._stepped_from: int | None = None  # the limit before the last step up
        self._best_latency: float | None = None
        self._hold = 0
        self._plateau = 0
        self.history: list[int] = [self.limit]  # every limit taken (for --debug and tests)

    @classmethod
    def fixed(cls, workers: int) -> Pace:
        return cls(workers)

    @staticmethod
    def now(workers: int | Pace) -> int:
        """How many at once ``workers`` allows now (a number, or a pace's current limit)."""
        return workers if isinstance(workers, int) else workers.limit

    @property
    def pinned(self) -> bool:
        return self.low == self.high

    def begin(self) -> float:
        """An item starts: the time to hand back to :meth:`end`."""
        now = self._clock.monotonic()
        if self._since is None:
            self._since, self._seen_throttles = now, self._throttles()
        return now

    def end(self, started: float) -> None:
        """An item finished (whatever its outcome); a full window takes a decision."""
        now = self._clock.monotonic()
        self._done += 1
        self._latency += now - started
        elapsed = now - (self._since if self._since is not None else started)
        if self.pinned or elapsed < self.window or self._done < self.limit:
            return
        throttles = self._throttles()
        measured = Window(
            self._done / elapsed, self._latency / self._done, throttles - self._seen_throttles
        )
        self._since, self._seen_throttles, self._done, self._latency = now, throttles, 0, 0.0
        self.decide(measured)

    def decide(self, now: Window) -> int:
        """The next limit after a window that measured ``now`` (and remember it)."""
        before, self._previous = self._previous, now
        if self._best_latency is None or now.latency < self._best_latency:
            self._best_latency = now.latency
        stepped_from, self._stepped_from = self._stepped_from, None
        slow = now.latency > LATENCY_BOUND * self._best_latency
        gain = (now.rate / before.rate - 1) if before is not None and before.rate > 0 else None
        if now.throttled:
            self._slow_start = False
            self._hold = HOLD_AFTER_THROTTLE
            return self._take(int(self.limit * BACK_OFF))
        if slow and (gain is None or gain < GAIN):
            self._slow_start = False
            return self._take(self.limit - max(1, self.limit // 8))
        if self._hold:
            self._hold -= 1
            return self.limit
        if stepped_from is not None and gain is not None and gain < GAIN:
            # the last step up brought nothing: back to where it came from, and wait
            self._slow_start = False
            self._plateau = 0
            return self._take(stepped_from)
        if self._slow_start and (gain is None or gain >= SLOW_START_GAIN):
            return self._up(max(self.limit + 1, int(self.limit * SLOW_START)))
        self._slow_start = False
        self._plateau += 1
        if gain is None or gain >= GAIN or self._plateau >= PROBE_EVERY:
            self._plateau = 0
            return self._up(self.limit + max(1, self.limit // 8))
        return self.limit

    def _up(self, limit: int) -> int:
        before = self.limit
        taken = self._take(limit)
        if taken > before:
            self._stepped_from = before
        return taken

    def _take(self, limit: int) -> int:
        self.limit = min(max(limit, self.low), self.high)
        if self.limit != self.history[-1]:
            log.debug(
                "%d requests at once (was %d; last window %s)",
                self.limit, self.history[-1], self._previous,
            )  # fmt: skip
            self.history.append(self.limit)
        return self.limit
