"""The limit a Dask cluster shares per destination (engine/rate.py) on synthetic servers: a
fake clock, a made-up demand and a partition that answers 503 above its rate; no timed
assertion."""

from __future__ import annotations

import asyncio
import itertools
import math
from datetime import timedelta

import pytest

from backup_my_bucket.clock import ManualClock
from backup_my_bucket.engine.pace import BACK_OFF, HOLD_AFTER_THROTTLE
from backup_my_bucket.engine.rate import (
    LIFT,
    RECENT,
    STEP,
    Report,
    Share,
    SharedRate,
    Tally,
    TokenBucket,
    UnitPace,
)


def window(rate: SharedRate, demand: float, partition: float) -> Tally:
    """One second of a cluster that would send ``demand`` items/s, under ``rate``'s limit, to
    a partition that serves ``partition`` items/s and throttles a fifth of what is above
    (every item waits for a token while the limit is below the demand)."""
    sent = demand if rate.limit is None else min(demand, rate.limit)
    throttled = int(max(0.0, sent - partition) / 5)
    waited = int(sent) if rate.limit is not None and demand > rate.limit else 0
    return Tally(sent, int(sent), throttled, int(sent), throttled, waited)


def run(
    rate: SharedRate,
    demand: float,
    partition: float,
    windows: int,
    shares: list[float] | None = None,
) -> list[float | None]:
    """The limits after each window; the throttled share of each window's items in ``shares``."""
    limits = []
    for _ in range(windows):
        tally = window(rate, demand, partition)
        if shares is not None:
            shares.append(tally.throttled / tally.items)
        rate.decide(tally)
        limits.append(rate.limit)
    return limits


def test_no_limit_while_nothing_is_throttled() -> None:
    rate = SharedRate("s3://b/")
    assert run(rate, demand=50_000, partition=100_000, windows=30) == [None] * 30
    assert (
        rate.share().rate is None
        and [limit for _, limit in rate.history] == [None]
        and rate.generation == 0
    )


def test_a_few_throttled_answers_are_tolerated() -> None:
    rate = SharedRate("s3://b/")
    rate.decide(Tally(3_000, 3_000, 30, 3_000, 30))  # 1 %: rare
    assert rate.limit is None


def test_backs_off_below_the_partition_then_holds_near_it() -> None:
    rate = SharedRate("s3://b/")
    shares: list[float] = []
    limits = run(rate, demand=10_000, partition=3_500, windows=60, shares=shares)
    assert limits[0] == pytest.approx(10_000 * BACK_OFF)  # from what the cluster measured
    assert min(limits[:8]) < 3_500  # cut until the partition stops throttling
    late = [limit for limit in limits[20:] if limit is not None]
    assert len(late) == 40  # never lifted while the partition stays where it is
    assert min(late) > 3_500 * BACK_OFF * 0.9 and max(late) < 3_500 * 1.1
    assert sum(late) / len(late) > 0.8 * 3_500  # a sawtooth just under the partition's rate
    assert shares[0] > 0.1 and sum(shares[20:]) / 40 < 0.005  # and 503s rare on it


def test_ramps_back_then_lifts_the_limit_once_the_partition_has_grown() -> None:
    rate = SharedRate("s3://b/")
    run(rate, demand=10_000, partition=3_500, windows=30)
    held = rate.limit
    assert held is not None
    limits = run(rate, demand=20_000, partition=1_000_000, windows=40)  # S3 split it
    grown = [limit for limit in limits if limit is not None]
    assert grown[0] >= held
    assert all(a <= b <= a * (1 + STEP) + 1e-9 for a, b in itertools.pairwise(grown))
    assert grown[-1] < LIFT * 10_000 <= grown[-1] * (1 + STEP)  # twice the first throttled
    windows = len(grown) + 1
    assert limits[windows - 1 :] == [None] * (40 - windows + 1)  # then lifted for good
    assert windows <= HOLD_AFTER_THROTTLE + 1 + math.log(LIFT * 10_000 / held, 1 + STEP)


def test_a_cut_holds_growth_for_some_windows() -> None:
    rate = SharedRate("s3://b/")
    rate.decide(Tally(1_000, 1_000, 100, 1_000, 100))
    assert (rate.limit, rate.generation) == (pytest.approx(700), 1)
    for _ in range(HOLD_AFTER_THROTTLE):
        rate.decide(Tally(700, 700, 0, 700, 0, waited=700))
        assert rate.limit == pytest.approx(700)
    rate.decide(Tally(700, 700, 0, 700, 0, waited=700))
    assert (rate.limit, rate.generation) == (pytest.approx(700 * (1 + STEP)), 2)


def test_the_limit_grows_only_while_it_holds_the_cluster_back() -> None:
    """A limit the cluster does not reach says nothing of what the partition would take:
    grown on such windows it would stand far above what is sent (RFC 7661's rule)."""
    rate = SharedRate("s3://b/")
    run(rate, demand=1_000, partition=500, windows=1)
    cut = rate.limit
    assert cut == pytest.approx(700)
    limits = run(rate, demand=300, partition=500, windows=40)  # most units idle, or slow
    assert limits == [pytest.approx(cut)] * 40 and rate.generation == 1
    rate.decide(Tally(300, 300, 0, 300, 0, waited=149))  # under half waited: not binding
    assert rate.limit == pytest.approx(cut)
    rate.decide(Tally(700, 700, 0, 700, 0, waited=350))  # half of them: it is used
    assert rate.limit == pytest.approx(cut * (1 + STEP))


def test_windows_that_send_nothing_hold_the_limit() -> None:
    """Every item waiting in a back-off after a 503 finishes nothing and takes no token: such
    windows neither ramp the limit nor lift it."""
    rate = SharedRate("s3://b/")
    rate.decide(Tally(1_000, 1_000, 100, 1_000, 100))
    for _ in range(HOLD_AFTER_THROTTLE + 20):
        rate.decide(Tally(0, 0, 0, 0, 0))
    assert rate.limit == pytest.approx(700) and rate.generation == 1


def test_throttles_reported_under_an_older_limit_do_not_cut_again() -> None:
    rate = SharedRate("s3://b/")
    rate.decide(Tally(1_000, 1_000, 100, 1_000, 100))
    assert (rate.limit, rate.generation) == (pytest.approx(700), 1)
    rate.decide(Tally(900, 900, 90, 0, 0))  # units that had not heard of the cut yet
    assert (rate.limit, rate.generation) == (pytest.approx(700), 1)
    rate.decide(Tally(700, 700, 50, 700, 50))  # fresh ones throttled too: cut again
    assert (rate.limit, rate.generation) == (pytest.approx(490), 2)


def test_a_window_of_items_waiting_out_a_back_off_does_not_collapse_the_limit() -> None:
    """After a 503 every item of a worker may wait in a back-off, however long: such windows
    finish next to nothing, and a cut starts from what the cluster sent in the last windows,
    and takes at most half the limit."""
    rate = SharedRate("s3://b/")
    rate.decide(Tally(1_000, 1_000, 0, 1_000, 0))
    limits = []
    for _ in range(RECENT + 2):  # throttled, then paused, longer than the windows remembered
        rate.decide(Tally(3, 3, 9, 3, 9))
        limits.append(rate.limit)
    assert limits[:2] == pytest.approx([1_000 * BACK_OFF, 1_000 * BACK_OFF**2])
    for limit, cut in itertools.pairwise(limits[1:]):  # the 1,000/s forgotten: half at most
        assert cut == pytest.approx(limit * BACK_OFF**2)


def test_a_cut_starts_from_the_recent_windows_when_the_limit_is_not_reached() -> None:
    rate = SharedRate("s3://b/")
    rate.decide(Tally(1_000, 1_000, 100, 1_000, 100))
    assert rate.limit == pytest.approx(700)
    for _ in range(RECENT):
        rate.decide(Tally(550, 550, 0, 550, 0))  # held (growth waits), sending 550/s
    rate.decide(Tally(520, 520, 30, 520, 30))
    assert rate.limit == pytest.approx(550 * BACK_OFF)


def test_a_new_job_starts_without_the_rates_of_the_last_one() -> None:
    rate = SharedRate("s3://b/")
    rate.decide(Tally(1_000, 1_000, 0, 1_000, 0))
    rate.begin()
    rate.decide(Tally(50, 50, 10, 50, 10))
    assert rate.limit == pytest.approx(50 * BACK_OFF)


def test_a_window_waits_for_a_second_and_for_a_report_per_running_unit() -> None:
    clock = ManualClock()
    rate = SharedRate("s3://b/", "k", clock=clock)
    rate.running, rate.threads = 3, 4
    clock.advance(timedelta(seconds=0.5))
    assert not rate.report(Report("k", 0, 500, 50))  # half a second
    clock.advance(timedelta(seconds=0.6))
    assert not rate.report(Report("k", 0, 500, 50))  # two reports of three units running
    clock.advance(timedelta(seconds=0.4))
    assert rate.report(Report("k", 0, 500, 50))  # a decision that changed the limit
    assert rate.limit == pytest.approx(1_500 / 1.5 * BACK_OFF)  # measured over the window
    assert rate.share() == Share("k", 1, pytest.approx(rate.limit / 4))


def test_a_new_job_does_not_count_the_pause_before_it() -> None:
    clock = ManualClock()
    rate = SharedRate("s3://b/", clock=clock)
    clock.advance(timedelta(seconds=60))  # verification between the copies and the deletes
    rate.begin()
    clock.advance(timedelta(seconds=1))
    rate.report(Report("s3://b/", 0, 2_000, 200))
    assert rate.limit == pytest.approx(2_000 * BACK_OFF)


def test_reports_travel_as_plain_values() -> None:
    report = Report("client-1/0", 3, 1024, 7, 512)
    assert Report.of(report.message()) == report
    assert Report.of(report.message()[:4]) is None  # another version's report
    assert Report.of(tuple(report.message())) == report
    for other in ({"action": "add-client"}, ["k", 1, 2], ["k", 1, 2, "3"], None):
        assert Report.of(other) is None


async def test_a_unit_follows_a_newer_share_and_reports_once_a_window() -> None:
    clock = ManualClock()
    heard: dict[str, Share] = {}
    sent: list[Report] = []
    throttled = iter([3, 0, 5])
    pace = UnitPace(
        Share("k", 1, 10.0), window=0.99, latest=heard.get, throttled=lambda: next(throttled),
        send=sent.append, clock=clock,
    )  # fmt: skip
    for _ in range(10):  # 10 a second: one window
        await pace.take()
        pace.done()
    assert clock.monotonic() == pytest.approx(0.9)
    assert sent == []
    await pace.take()
    pace.done()
    assert sent == [Report("k", 1, 11, 3, waited=10)]  # all but the first waited a token
    heard["k"] = Share("k", 0, 1.0)  # older than the unit's: ignored
    await pace.take()
    assert clock.monotonic() == pytest.approx(1.1)
    heard["k"] = Share("k", 2, None)  # a lift: no limit at once
    start = clock.monotonic()
    for _ in range(100):
        await pace.take()
        pace.done()
    assert clock.monotonic() == start
    assert pace.rest() == Report("k", 2, 100, 0, waited=1)  # the take at 1.0 s waited
    assert pace.rest() == Report("k", 2, 0, 5)


async def test_a_unit_whose_items_all_wait_still_reports_once_a_window() -> None:
    """Every item in a back-off after a 503: none finishes, yet the coordinator hears of the
    throttling within a window, not when the back-off ends."""
    clock = ManualClock()
    sent: list[tuple[float, Report]] = []
    pace = UnitPace(
        Share("k", 0, None), window=0.25, latest=lambda _: None, throttled=lambda: 7,
        send=lambda report: sent.append((clock.monotonic(), report)), clock=clock,
    )  # fmt: skip
    reporting = asyncio.create_task(pace.keep_reporting())
    for _ in range(5):
        await asyncio.sleep(0)
    reporting.cancel()
    assert len(sent) >= 3
    assert sent == [
        (pytest.approx(0.25 * n), Report("k", 0, 0, 7)) for n in range(1, len(sent) + 1)
    ]


async def test_a_report_that_fails_does_not_stop_the_next_ones() -> None:
    clock = ManualClock()
    sent: list[Report] = []

    def send(report: Report) -> None:
        if not sent and clock.monotonic() < 0.3:
            raise RuntimeError("the worker is closing")
        sent.append(report)

    pace = UnitPace(
        Share("k", 0, None), window=0.25, latest=lambda _: None, throttled=lambda: 1,
        send=send, clock=clock,
    )  # fmt: skip
    reporting = asyncio.create_task(pace.keep_reporting())
    for _ in range(5):
        await asyncio.sleep(0)
    reporting.cancel()
    assert sent and sent[0] == Report("k", 0, 0, 1)


async def test_items_waiting_under_a_share_follow_a_newer_one_within_a_window() -> None:
    clock = ManualClock()  # each sleeper moves it: time runs faster, in the same order
    heard: dict[str, Share] = {}
    pace = UnitPace(
        Share("k", 0, 1.0), window=0.05, latest=heard.get, throttled=lambda: 0,
        send=lambda _: None, clock=clock,
    )  # fmt: skip
    waiting = [asyncio.create_task(pace.take()) for _ in range(5)]  # 1 a second: 4 s of them
    for _ in range(3):
        await asyncio.sleep(0)
    assert sum(task.done() for task in waiting) == 1
    heard["k"] = Share("k", 1, None)  # lifted
    await asyncio.gather(*waiting)
    assert clock.monotonic() < 1.0  # none waited for its old moment


async def test_a_new_share_spaces_from_the_last_item_not_from_now() -> None:
    clock = ManualClock()
    heard: dict[str, Share] = {}
    pace = UnitPace(
        Share("k", 0, 10.0), window=1.0, latest=heard.get, throttled=lambda: 0,
        send=lambda _: None, clock=clock,
    )  # fmt: skip
    await pace.take()
    heard["k"] = Share("k", 1, 5.0)
    await pace.take()
    assert clock.monotonic() == pytest.approx(0.2)  # no burst at the change


async def test_the_token_bucket_spaces_takes_at_its_rate() -> None:
    clock = ManualClock()
    bucket = TokenBucket(100.0, clock=clock)
    starts = []
    for _ in range(5):
        await bucket.take()
        starts.append(clock.monotonic())
    assert starts == pytest.approx([0.0, 0.01, 0.02, 0.03, 0.04])


async def test_the_token_bucket_lets_a_burst_through_after_a_pause() -> None:
    clock = ManualClock()
    bucket = TokenBucket(10.0, burst=3, clock=clock)
    clock.advance(timedelta(seconds=5))
    await asyncio.gather(*(bucket.take() for _ in range(3)))
    assert clock.monotonic() == pytest.approx(5.0)  # three at once
    await bucket.take()
    assert clock.monotonic() == pytest.approx(5.1)
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(0)
