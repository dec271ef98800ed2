"""One request rate per destination for a whole Dask cluster, decided by the coordinator.

S3 serves a prefix partition up to a rate (3,500 writes/s, 5,500 reads/s) and splits it only
gradually under sustained load, answering 503 SlowDown meanwhile. Each worker process backs
off on its own (botocore's adaptive retries, the fast path's pause after a throttled answer),
but a hundred processes that each back off still send a hundred times what one would, and
each starts again at full speed: the cluster needs one rate, and one place that decides it.

:class:`SharedRate` is that place's record of one destination (a bucket and folder, on one
endpoint). Every running unit reports (:class:`Report`) how many items it finished, how many of
its requests waited for a token of its share (a retry is a request too), and how many throttled
answers its worker's stores counted, once per window and at its end. Per window of at least
:data:`WINDOW` seconds and one report per unit running, the limit:

- is **none** while throttled answers stay rare (at most :data:`RARE` of the window's items):
  a run that sees no 503 is never slowed, whatever its speed;
- **backs off** when they are not: to :data:`~.pace.BACK_OFF` (0.7, botocore's CUBIC β) of
  the rate the cluster sent, then holds for :data:`~.pace.HOLD_AFTER_THROTTLE` windows. That
  rate is the highest of the job's last :data:`RECENT` windows, at most the limit and at
  least 0.7 of it: after a 503 a worker's items all wait out a back-off, and a window of
  that pause alone measures next to nothing, so one cut takes at most half the limit;
- **ramps up** by :data:`STEP` per window while no throttled answer comes back (a few hold it
  where it is) and the cluster uses the limit (requests that waited for their unit's share at
  least :data:`BINDING` times the window's items, some at least; with a token bucket that is
  about half the limit in use): a limit the cluster does not use says nothing of what the
  partition takes, and grown on it would stand far above what is sent, as TCP's
  congestion-window validation keeps a window from growing while it is not used (RFC 7661). A
  limit the cluster stops using stays, for the rest of the command (later jobs to the same
  destination start under it); and is lifted once it reaches :data:`LIFT` times the highest
  rate a cut started from since it was set: the partition has grown. While it has not, the
  limit saws just under the partition's rate (up by ⅛ a window, back by 0.7 at the next 503s).

Each decision is a new *generation* of the limit, broadcast to the workers at once; units
sent later carry it (:class:`Share`). Throttles reported under an older generation (sent at
the old rate, before the unit heard of the new one) never cut again. On its worker a unit
starts its items at its share of the limit (the limit over the cluster's worker threads, one
unit running per thread) through a :class:`TokenBucket` (:class:`UnitPace`).

What it costs: one report per running unit per window, and while a limit is in force one
broadcast per decision (~2 ms of the coordinator's and scheduler's CPU, ~0.5 ms per worker).
A Dask primitive per request was measured and not taken: a ``Semaphore`` lease costs 0.7 ms
of latency and ~0.75 ms of CPU (worker and scheduler), a ``Variable`` read 0.33 ms and
~0.33 ms: each more than a whole copy's client CPU.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ..clock import SYSTEM_CLOCK, Clock
from .pace import BACK_OFF, HOLD_AFTER_THROTTLE

log = logging.getLogger(__name__)

WINDOW = 1.0
"""Seconds a window lasts at least; a running unit reports once per window."""
RARE = 0.01
"""Throttled answers per item at or below which nothing is cut (growth holds while any come)."""
STEP = 1 / 8
"""Growth per window without a throttled answer (as the in-process pace's: engine/pace.py)."""
LIFT = 2.0
"""The limit goes once it reaches this many times the highest rate a cut started from."""
MIN_RATE = 1.0
"""Items per second across the cluster below which no cut goes."""
RECENT = 3
"""Windows whose highest rate a cut starts from."""
BINDING = 0.5
"""Requests that waited for a token, per item of a window, at or above which the limit grows."""


@dataclass(frozen=True, slots=True)
class Share:
    """What one unit may send: ``rate`` items per second (None: no limit) of the limit the
    workers know as ``key``, as of its ``generation`` (a newer one overrides it)."""

    key: str
    generation: int
    rate: float | None


@dataclass(frozen=True, slots=True)
class Report:
    """What a unit did since its last report: ``items`` finished, ``waited`` requests (an item's
    first or a retry) that waited for a token of the unit's share, and ``throttled`` answers
    seen, under ``generation`` of the limit ``key``."""

    key: str
    generation: int
    items: int
    throttled: int
    waited: int = 0

    def message(self) -> list[object]:
        """As it travels (a Dask event: msgpack, so plain values)."""
        return [self.key, self.generation, self.items, self.throttled, self.waited]

    @classmethod
    def of(cls, message: object) -> Report | None:
        """A report from its message; None for anything else."""
        if not isinstance(message, list | tuple) or len(message) != 5:
            return None
        key, generation, items, throttled, waited = message
        if not isinstance(key, str) or not all(
            type(n) is int for n in (generation, items, throttled, waited)
        ):
            return None
        return cls(key, generation, items, throttled, waited)


@dataclass(frozen=True, slots=True)
class Tally:
    """What one window's reports said: the cluster's rate (items per second over the window),
    its items and throttled answers, those reported under the current generation, and the
    requests that waited for a token."""

    rate: float
    items: int
    throttled: int
    fresh_items: int
    fresh_throttled: int
    waited: int = 0


class SharedRate:
    """The limit of one destination across a cluster, in items per second (None: none),
    known to the workers as ``key``. Set by the executor: ``threads``, the cluster's worker
    threads (a unit's share is the limit over them); ``running``, the units running at once
    (a window waits for as many reports)."""

    def __init__(
        self, name: str, key: str = "", *, clock: Clock = SYSTEM_CLOCK, window: float = WINDOW
    ) -> None:
        self.name = name
        self.key = key or name
        self.limit: float | None = None
        self.generation = 0
        self.history: list[tuple[float, float | None]] = [(clock.monotonic(), None)]
        """Every limit taken, and when (``clock.monotonic()``): for tests and benchmarks."""
        self.threads = self.running = 1
        self.window = window
        self._clock = clock
        self._peak = 0.0  # the highest rate a cut started from since the limit was set
        self._hold = 0
        self._recent: deque[float] = deque(maxlen=RECENT)  # the job's last windows' rates
        self._next_window()

    def share(self) -> Share:
        """A unit's share of the limit, one unit running on each of the ``threads``."""
        rate = None if self.limit is None else self.limit / max(self.threads, 1)
        return Share(self.key, self.generation, rate)

    def begin(self) -> None:
        """A job starts: neither the pause since the last one nor its rates count."""
        self._recent.clear()
        self._next_window()

    def _next_window(self) -> None:
        self._since = self._clock.monotonic()
        self._reports = self._items = self._throttled = self._waited = 0
        self._fresh_items = self._fresh_throttled = 0

    def report(self, report: Report) -> bool:
        """Count ``report``; True when it closed a window whose decision changed the limit."""
        self._reports += 1
        self._items += report.items
        self._throttled += report.throttled
        self._waited += report.waited
        if report.generation == self.generation:
            self._fresh_items += report.items
            self._fresh_throttled += report.throttled
        elapsed = self._clock.monotonic() - self._since
        if elapsed < self.window or self._reports < self.running:
            return False
        tally = Tally(
            self._items / elapsed, self._items, self._throttled,
            self._fresh_items, self._fresh_throttled, self._waited,
        )  # fmt: skip
        self._next_window()
        generation = self.generation
        self.decide(tally)
        return self.generation != generation

    def decide(self, now: Tally) -> float | None:
        """The next limit after a window that counted ``now`` (and remember it)."""
        self._recent.append(now.rate)
        if now.fresh_throttled > RARE * now.fresh_items:
            sent, limit = max(self._recent), self.limit
            # one cut takes at most half the limit (0.7 x 0.7)
            base = sent if limit is None else max(min(sent, limit), BACK_OFF * limit)
            self._peak = max(self._peak, base)
            self._hold = HOLD_AFTER_THROTTLE
            return self._take(max(MIN_RATE, base * BACK_OFF), now)
        if self.limit is None or now.throttled:
            return self.limit
        if self._hold:
            self._hold -= 1
            return self.limit
        if not now.waited or now.waited < BINDING * now.items:
            # the cluster does not use the limit (or sends nothing: every item in a back-off
            # after a 503): nothing says the partition would take more
            return self.limit
        grown = self.limit * (1 + STEP)
        if grown < LIFT * self._peak:
            return self._take(grown, now)
        self._peak = 0.0
        return self._take(None, now)

    def _take(self, limit: float | None, now: Tally) -> float | None:
        grown = limit is not None and self.limit is not None and limit > self.limit
        log.log(
            logging.DEBUG if grown else logging.INFO,
            "%s: %s across the cluster (last window: %.0f items/s, %d of %d throttled)",
            self.name, "no rate limit" if limit is None else f"at most {limit:.0f} items/s",
            now.rate, now.throttled, now.items,
        )  # fmt: skip
        self.limit = limit
        self.generation += 1
        self.history.append((self._clock.monotonic(), limit))
        return limit


class TokenBucket:
    """Lets at most ``rate`` callers a second go on average, ``burst`` at once.

    Each caller reserves the next free moment (the generic cell rate algorithm) and sleeps
    until it: no task of its own, and callers go in the order they came."""

    def __init__(
        self,
        rate: float,
        *,
        burst: float = 1.0,
        clock: Clock = SYSTEM_CLOCK,
        start: float | None = None,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self._slack = max(burst - 1.0, 0.0) / rate
        self._clock = clock
        self._next = clock.monotonic() if start is None else start  # the first caller's moment

    def reserve(self) -> float:
        """The moment (``clock.monotonic()``) the caller may go, reserved for it."""
        start = max(self._next, self._clock.monotonic() - self._slack)
        self._next = start + 1.0 / self.rate
        return start

    async def take(self) -> None:
        await self._clock.sleep(self.reserve() - self._clock.monotonic())


class UnitPace:
    """A unit's side of its destination's limit, on its worker.

    :meth:`take` before each request (each attempt: a retry is a request too) starts it no
    sooner than the unit's share allows, or a newer share of the same limit that ``latest``
    gives (the worker's record of the coordinator's broadcasts): items already waiting look for
    one at least once a window and wait again under it, spaced from the last item that went (a
    change of share never lets a burst through). A request that had to wait is counted in the
    report: the coordinator grows the limit only while the cluster uses it. :meth:`done` after
    each item, and :meth:`keep_reporting` while the unit runs, send a :class:`Report` through
    ``send`` once a window has passed: also while every item waits in a back-off, when the
    coordinator most needs to hear of the throttling. :meth:`rest` is what is left to report
    when the unit ends. ``throttled()``: the throttled answers this worker's stores counted
    since it was last asked."""

    def __init__(
        self,
        share: Share,
        *,
        window: float,
        latest: Callable[[str], Share | None],
        throttled: Callable[[], int],
        send: Callable[[Report], None],
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._share = share
        self._window = window
        self._latest = latest
        self._throttled = throttled
        self._send = send
        self._clock = clock
        self._bucket: TokenBucket | None = None
        self._went = float("-inf")  # when the last item went
        self._adopt(share)
        self._items = self._waited = 0
        self._since = clock.monotonic()

    def _adopt(self, share: Share) -> None:
        self._share = share
        if share.rate is None:
            self._bucket = None
        else:  # the next item goes one interval of the new rate after the last one went
            start = max(self._clock.monotonic(), self._went + 1.0 / share.rate)
            self._bucket = TokenBucket(share.rate, clock=self._clock, start=start)

    def _follow(self) -> None:
        """Take the coordinator's newest share, if it decided since this unit's."""
        latest = self._latest(self._share.key)
        if latest is not None and latest.generation > self._share.generation:
            self._adopt(latest)

    async def take(self) -> None:
        self._follow()
        waited = False
        while (bucket := self._bucket) is not None:
            start = bucket.reserve()
            while (left := start - self._clock.monotonic()) > 0:
                waited = True
                await self._clock.sleep(min(left, self._window))
                self._follow()
                if self._bucket is not bucket:
                    break  # that moment was reserved under the old share: reserve again
            else:
                break
        self._waited += waited
        self._went = self._clock.monotonic()

    def done(self) -> None:
        self._items += 1
        self.tick()

    def tick(self) -> None:
        """Report, if a window has passed since the last report."""
        if self._clock.monotonic() - self._since >= self._window:
            self._send(self.rest())

    async def keep_reporting(self) -> None:
        """Report once a window until cancelled, whether or not items finish (a report that
        fails is logged, and the unit goes on)."""
        while True:
            left = self._since + self._window - self._clock.monotonic()
            await self._clock.sleep(max(left, self._window / 100))  # never a busy loop
            try:
                self.tick()
            except Exception as exc:
                log.debug("a unit's report failed: %r", exc)

    def rest(self) -> Report:
        """What the unit did since its last report (and start the next one)."""
        report = Report(
            self._share.key, self._share.generation, self._items, self._throttled(), self._waited
        )
        self._items = self._waited = 0
        self._since = self._clock.monotonic()
        return report
