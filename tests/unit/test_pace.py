"""The adaptive concurrency of copies and deletes (engine/pace.py) on synthetic servers: a fake
clock and made-up latencies, throughput curves and 503s; no timed assertion anywhere."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from datetime import timedelta

from backup_my_bucket.clock import ManualClock
from backup_my_bucket.engine.pace import Pace, Window
from backup_my_bucket.engine.workers import run_pool

Server = Callable[[int], Window]


def saturating(knee: int, per_slot: float = 10.0, throttle_above: int | None = None) -> Server:
    """Throughput grows with concurrency up to ``knee`` requests at once, then stays flat
    (latency grows instead, Little's law); above ``throttle_above`` it answers 503s."""

    def window(limit: int) -> Window:
        rate = min(limit, knee) * per_slot
        throttled = 5 if throttle_above is not None and limit > throttle_above else 0
        return Window(rate, limit / rate, throttled)

    return window


def run(pace: Pace, server: Server, windows: int) -> list[int]:
    limits = []
    for _ in range(windows):
        pace.decide(server(pace.limit))
        limits.append(pace.limit)
    return limits


def test_grows_while_throughput_grows_up_to_the_knee() -> None:
    pace = Pace(64, 16, 256)
    limits = run(pace, saturating(knee=200), 60)
    assert limits[:3] == [96, 144, 216]  # slow start: ×1.5 while throughput grows ≥ 10 %
    assert min(limits[4:]) >= 200 and max(limits) <= 256  # then near the knee, not far past it
    ups = sum(1 for a, b in itertools.pairwise(limits[4:]) if b > a)
    assert ups <= 10  # a probe now and then (each taken back when it brings nothing)


def test_stays_put_where_more_concurrency_brings_nothing() -> None:
    pace = Pace(64, 16, 256)
    limits = run(pace, saturating(knee=40), 60)  # already past the knee at the start
    assert max(limits) <= 96 and limits[-1] <= 72
    assert sum(1 for a, b in itertools.pairwise(limits) if b > a) <= 12  # rare probes


def test_goes_all_the_way_up_when_the_server_scales() -> None:
    limits = run(Pace(64, 16, 256), saturating(knee=10_000), 20)
    assert limits[-1] == 256 and max(limits) == 256


def test_backs_off_on_throttling_and_stays_below_it() -> None:
    pace = Pace(64, 16, 256)
    limits = run(pace, saturating(knee=10_000, throttle_above=100), 80)
    assert max(limits) <= 144  # the first step past 100 is answered with 503s at once
    settled = limits[20:]
    assert max(settled) <= 113 and min(settled) >= 16
    assert sum(1 for limit in settled if limit > 100) <= len(settled) // 4  # rarely over it


def test_throttling_backs_off_multiplicatively_down_to_the_floor() -> None:
    pace = Pace(200, 16, 256)
    always = lambda limit: Window(100.0, 1.0, 3)  # noqa: E731
    assert run(pace, always, 3) == [140, 98, 68]
    assert run(pace, always, 10)[-1] == 16


def test_latency_without_throughput_steps_down() -> None:
    pace = Pace(128, 16, 256)
    pace.decide(Window(1000.0, 0.1, 0))
    for _ in range(5):
        pace.decide(Window(1000.0, 0.9, 0))  # nine times slower, no more done
    assert pace.limit < 100


def test_pinned_never_moves() -> None:
    pace = Pace.fixed(32)
    assert pace.pinned
    run(pace, saturating(knee=10_000), 10)
    run(pace, saturating(knee=1, throttle_above=0), 10)
    assert pace.limit == 32 and pace.history == [32]


def test_windows_come_from_the_pool_s_own_timing_and_the_store_s_throttles() -> None:
    clock = ManualClock()
    throttles = [0]
    pace = Pace(8, 4, 64, clock=clock, throttles=lambda: throttles[0], window=0.5)

    def round_of(count: int, seconds: float) -> None:
        started = [pace.begin() for _ in range(count)]
        clock.advance(timedelta(seconds=seconds))
        for t0 in started:
            pace.end(t0)

    round_of(8, 0.125)  # a full round of the slots, but not half a second yet: no decision
    assert pace.limit == 8
    for _ in range(3):
        round_of(8, 0.125)
    assert pace.limit == 12  # 0.5 s and ≥ 8 done: the first window, slow start
    throttles[0] = 2  # the store saw two 503s during the next window
    for _ in range(4):
        round_of(12, 0.125)
    assert pace.limit == 8  # ×0.7, floored


async def test_the_pool_never_runs_more_than_the_limit_as_it_moves() -> None:
    pace = Pace(4, 1, 16, window=3600)  # no decision of its own during the test
    running = 0
    seen: list[int] = []  # how many ran when each item started

    async def work(i: int) -> int:
        nonlocal running
        running += 1
        seen.append(running)
        if i == 50:
            pace.limit = 12  # more room: more run at once
        if i == 150:
            pace.limit = 2  # less: the ones running finish, no new one starts
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        running -= 1
        return i

    outcomes = [o async for o in run_pool(range(300), work, workers=pace)]
    assert sorted(o.result for o in outcomes if o.result is not None) == list(range(300))
    assert max(seen[:50]) == 4 and max(seen[60:150]) == 12 and max(seen[180:]) == 2
