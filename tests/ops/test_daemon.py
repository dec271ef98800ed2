"""The daemon with a manual clock: schedules, overlaps, catch-up, SIGTERM, /metrics."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from backup_my_bucket.ops.daemon import Daemon, MetricsServer
from backup_my_bucket.ops.history import History, RunRecord
from backup_my_bucket.ops.plans import Plan
from backup_my_bucket.ops.signals import stop_on_signals

from .conftest import T0, World, until
from .test_runner import parse

H = timedelta(hours=1)


class Running:
    """A daemon running in a task of the test's loop."""

    def __init__(self, world: World, plans: list[Plan], textfile: Path | None = None) -> None:
        self.world = world
        self.runner = world.runner(plans)
        self.daemon = Daemon(
            plans,
            self.runner,
            world.history,
            world.clock,
            events=self.runner.events,
            metrics=self.runner.metrics,
            textfile=textfile,
        )
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.daemon.run(self.stop))

    @classmethod
    def held_mid_sync(cls, world: World, plan: Plan, copies: int) -> Running:
        """A daemon of ``plan`` whose first run's sync will stop after ``copies`` copies."""
        world.store.close_gate(after=copies)
        return cls(world, [plan])

    async def idle(self) -> None:
        await until(lambda: self.daemon.idle and self.world.clock.sleepers == 1, what="idle")

    async def at(self, when: datetime) -> None:
        """Move the clock to ``when`` and wait until the daemon has done what was due."""
        self.world.clock.set(when)
        await asyncio.sleep(0)
        await self.idle()

    async def close(self) -> None:
        self.stop.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 10)


@pytest.fixture
async def running(world: World) -> AsyncIterator[list[Running]]:
    started: list[Running] = []
    yield started
    for daemon in started:
        if daemon.task is not None and not daemon.task.done():
            await daemon.close()


def runs(history: History, plan: str) -> list[tuple[str, str, datetime | None]]:
    return [(r.status, r.trigger, r.scheduled) for r in history.records(plan)]


async def test_two_plans_run_on_their_schedules(world: World, running: list[Running]) -> None:
    await world.fill("src", 10)
    hourly = world.plan("hourly", schedule="every 1h", backup="s3://bak/hourly")
    nightly = world.plan("nightly", schedule="30 2 * * *", backup="s3://bak/nightly")
    textfile = world.tmp / "bmb.prom"
    d = Running(world, [hourly, nightly], textfile)
    running.append(d)
    d.start()
    await d.idle()
    assert runs(world.history, "hourly") == [("ok", "first", T0)]  # an interval runs at once
    assert runs(world.history, "nightly") == []  # a cron plan waits for its moment
    written = parse(textfile.read_text())  # after each run, when asked
    assert written[("bmb_plan_last_run_success", "hourly")] == 1
    assert ("bmb_plan_last_run_success", "nightly") not in written
    assert written[("bmb_plan_next_run_timestamp_seconds", "nightly")] == (T0 + 2.5 * H).timestamp()

    await d.at(T0 + H)
    await d.at(T0 + 2 * H + timedelta(minutes=30))
    await d.at(T0 + 2 * H + timedelta(minutes=40))  # nothing due: nothing runs
    assert runs(world.history, "hourly") == [
        ("ok", "first", T0),
        ("ok", "schedule", T0 + H),
        ("ok", "schedule", T0 + 2 * H),  # woken late (02:30): once, not twice
    ]
    assert runs(world.history, "nightly") == [("ok", "schedule", T0 + 2.5 * H)]
    assert d.daemon.due["hourly"][0] == T0 + 3 * H
    assert d.daemon.due["nightly"][0] == T0 + timedelta(days=1, hours=2.5)
    await d.close()
    assert [e["event"] for e in world.events][-1] == "daemon.stopped"
    assert len(await world.current("bak")) == 20  # both plans backed the source up
    catalog = await world.catalog("s3://bak/hourly/").list()
    assert [m.backup for m in catalog].count("s3://bak/hourly/") == 3  # a folder


async def test_a_moment_that_comes_while_the_plan_runs_is_skipped(
    world: World, running: list[Running]
) -> None:
    await world.fill("src", 20)
    d = Running.held_mid_sync(world, world.plan("slow", schedule="every 1h"), 5)
    running.append(d)
    d.start()
    await until(world.store.held.is_set, what="the sync to reach the gate")
    for hours in (1, 2):
        world.clock.set(T0 + hours * H)
        await until(lambda n=hours: len(world.history.records("slow")) == n, what="a skip")
    assert d.daemon.running  # still the first run
    world.store.gate.set()
    await d.idle()
    assert runs(world.history, "slow") == [
        ("skipped", "schedule", T0 + H),
        ("skipped", "schedule", T0 + 2 * H),
        ("ok", "first", T0),
    ]
    skipped = world.history.records("slow")[0]
    assert skipped.error == "the previous run of this plan is still running"
    await d.at(T0 + 3 * H)
    assert runs(world.history, "slow")[-1] == ("ok", "schedule", T0 + 3 * H)


async def test_catches_up_once_after_a_gap(world: World, running: list[Running]) -> None:
    await world.fill("src", 3)
    hourly = world.plan("hourly", schedule="every 1h", backup="s3://bak/a")
    cron = world.plan("cron", schedule="0 * * * *", backup="s3://bak/b")
    lazy = world.plan("lazy", schedule="0 * * * *", backup="s3://bak/c", catch_up=False)
    nightly = world.plan("nightly", schedule="0 0 * * *", backup="s3://bak/d")

    def ran(name: str, slot: datetime, status: str = "ok") -> None:
        record = RunRecord.begin(name, "schedule", slot, slot)
        record.status, record.finished = status, slot  # type: ignore[assignment]
        world.history.append(record)

    for name in ("hourly", "cron", "lazy"):  # they last ran five hours before the daemon starts
        ran(name, T0 - 5 * H)
    ran("nightly", T0 - 24 * H)
    ran("nightly", T0, "interrupted")  # tonight's run was stopped by SIGTERM: still missed
    world.clock.set(T0 + timedelta(minutes=10))
    d = Running(world, [hourly, cron, lazy, nightly])
    running.append(d)
    d.start()
    await d.idle()
    now = T0 + timedelta(minutes=10)
    assert runs(world.history, "hourly")[1:] == [("ok", "catch-up", now)]
    assert runs(world.history, "cron")[1:] == [("ok", "catch-up", now)]
    assert runs(world.history, "lazy")[1:] == []  # catch-up = false: waits for 01:00
    assert runs(world.history, "nightly")[2:] == [("ok", "catch-up", now)]
    assert d.daemon.due["nightly"][0] == T0 + 24 * H
    await d.at(T0 + H)
    assert runs(world.history, "cron")[1:] == [("ok", "catch-up", now), ("ok", "schedule", T0 + H)]
    assert runs(world.history, "lazy")[1:] == [("ok", "schedule", T0 + H)]
    assert len(world.history.records("hourly")) == 2  # next at 01:10
    await d.at(T0 + H + timedelta(minutes=10))
    assert runs(world.history, "hourly")[-1] == ("ok", "schedule", now + H)


async def test_sigterm_mid_sync_stops_cleanly_and_a_rerun_converges(world: World) -> None:
    await world.fill("src", 40)
    plan = world.plan("site", schedule="every 1h", gc={"keep_last": 3})
    d = Running.held_mid_sync(world, plan, 10)
    signals: list[str] = []

    def stop(name: str) -> None:
        signals.append(name)
        d.stop.set()

    with stop_on_signals(stop):
        assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None)
        d.start()
        await until(world.store.held.is_set, what="the sync to be mid-way")
        os.kill(os.getpid(), signal.SIGTERM)
        assert d.task is not None
        await asyncio.wait_for(d.task, 10)  # returns: the daemon stopped by itself
    assert signals == ["SIGTERM"]

    # the run is on disk as interrupted, at the sync; nothing else happened
    (record,) = History(world.history.root).records("site")
    assert record.status == "interrupted" and record.exit_code == 130
    assert record.failed_step == "sync" and "rerun" in (record.error or "")
    copied = await world.current("bak")
    assert 10 <= len(copied) < 40
    assert await world.catalog().list() == []
    assert not (world.catalog_dir() / "lock.json").exists(), "the catalog lock must be released"
    events = [e["event"] for e in world.events]
    assert events[-2:] == ["run.interrupted", "daemon.stopped"]

    world.store.gate.set()
    again = await world.runner([plan]).run(plan)
    assert again.ok and again.steps["sync"]["copied"] == 40 - len(copied)
    source, backup = await world.current("src"), await world.current("bak")
    assert {k: v.etag for k, v in backup.items()} == {k: v.etag for k, v in source.items()}
    assert again.steps["snapshot"]["keys"] == 40


async def test_metrics_over_http_during_and_after_runs(
    world: World, running: list[Running]
) -> None:
    await world.fill("src", 12)
    d = Running.held_mid_sync(world, world.plan("site", schedule="every 1h"), 4)
    running.append(d)
    assert d.runner.metrics is not None
    server = MetricsServer(d.runner.metrics)
    address = await server.start("127.0.0.1", 0)
    assert address.startswith("127.0.0.1:")

    async def scrape() -> dict[tuple[str, str], float]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://{address}/metrics") as response,
        ):
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            return parse(await response.text())

    try:
        before = await scrape()
        assert before[("bmb_plan_running", "site")] == 0
        assert before[("bmb_plan_last_success_timestamp_seconds", "site")] == 0  # never
        assert ("bmb_plan_last_run_success", "site") not in before
        d.start()
        await until(world.store.held.is_set, what="the run to be mid-sync")
        during = await scrape()
        assert during[("bmb_plan_running", "site")] == 1
        assert during[("bmb_plan_run_progress_objects", "site")] >= 4
        assert during[("bmb_plan_last_run_start_timestamp_seconds", "site")] == T0.timestamp()
        assert during[("bmb_plan_next_run_timestamp_seconds", "site")] == (T0 + H).timestamp()
        world.store.gate.set()
        await d.idle()
        after = await scrape()
        assert after[("bmb_plan_running", "site")] == 0
        assert ("bmb_plan_run_progress_objects", "site") not in after
        assert after[("bmb_plan_last_run_success", "site")] == 1
        assert after[("bmb_plan_last_run_objects_copied", "site")] == 12
        assert after[("bmb_plan_snapshots", "site")] == 1
        assert after[("bmb_plan_runs_total", "site/ok")] == 1
        success = after[("bmb_plan_last_success_timestamp_seconds", "site")]
        assert success > T0.timestamp()

        world.broken.add("site")  # the next run fails
        await d.at(T0 + H)
        failed = await scrape()
        assert failed[("bmb_plan_last_run_success", "site")] == 0
        assert failed[("bmb_plan_runs_total", "site/failed")] == 1
        assert failed[("bmb_plan_consecutive_failures", "site")] == 1
        assert failed[("bmb_plan_last_success_timestamp_seconds", "site")] == success
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://{address}/healthz") as response,
        ):
            assert response.status == 200
    finally:
        await server.stop()
