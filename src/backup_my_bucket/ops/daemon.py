"""The scheduler: `bmb daemon` runs the plans on their schedules until SIGTERM.

One asyncio loop. The scheduler sleeps (through the clock, so tests drive time) until the next
plan is due, starts it as a task, and goes back to sleep; plans run side by side, but a plan
never twice at once: a moment that comes while the plan still runs is skipped and recorded
(status ``skipped``). After downtime a plan runs once, not once per missed moment
(:func:`.schedule.first_due`). Each run is recorded in the history, so a restarted daemon
knows what ran last.

SIGTERM and SIGINT stop the scheduler: no run starts after that; a running one is cancelled,
which is a safe point in every engine (see :mod:`.runner`), records itself as interrupted
(the history is flushed to disk) and the daemon exits 0. `/metrics` (Prometheus) is served
from the same loop, on 127.0.0.1 unless told otherwise, with `/healthz` for liveness probes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..clock import Clock
from ..errors import UsageError
from .events import EventLog
from .history import History, RunRecord
from .metrics import PlanMetrics
from .plans import Plan
from .runner import PlanRunner
from .schedule import Cron, Every, Trigger, first_due, parse_schedule


class Daemon:
    def __init__(
        self,
        plans: Sequence[Plan],
        runner: PlanRunner,
        history: History,
        clock: Clock,
        *,
        events: EventLog,
        metrics: PlanMetrics | None = None,
        textfile: Path | None = None,
    ) -> None:
        if not plans:
            raise UsageError(
                "no plan has a schedule: the daemon would have nothing to do",
                hint='give a plan schedule = "15 2 * * *" (or "every 6h")',
            )
        self.plans = {plan.name: plan for plan in plans}
        self.schedules: dict[str, Every | Cron] = {p.name: parse_schedule(p) for p in plans}
        self.runner = runner
        self.history = history
        self.clock = clock
        self.events = events
        self.metrics = metrics
        self.textfile = textfile
        self.due: dict[str, tuple[datetime, Trigger]] = {}
        self.running: dict[str, asyncio.Task[None]] = {}
        self.waiting = False  # the scheduler sleeps until the next moment (tests look)

    @property
    def idle(self) -> bool:
        """No run in progress and the scheduler asleep."""
        return self.waiting and not self.running

    async def run(self, stop: asyncio.Event) -> None:
        """Schedule until ``stop`` is set; then interrupt the running plans and return."""
        now = self.clock.now()
        for name, schedule in self.schedules.items():
            last = self.history.last_slot(name)
            self._set_due(name, *first_due(schedule, last, now, catch_up=self.plans[name].catch_up))
        self.events.emit(
            "daemon.started",
            plans={
                name: {"schedule": s.text, "next": self.due[name][0]}
                for name, s in self.schedules.items()
            },
        )
        try:
            while not stop.is_set():
                self._start_due(self.clock.now())
                await self._sleep(min(when for when, _ in self.due.values()), stop)
        finally:
            interrupted = sorted(self.running)
            await self._interrupt_runs()
            self.events.emit("daemon.stopped", interrupted=interrupted)

    def _set_due(self, name: str, when: datetime, trigger: Trigger) -> None:
        self.due[name] = (when, trigger)
        if self.metrics is not None:
            self.metrics.scheduled(name, when)

    def _start_due(self, now: datetime) -> None:
        for name in sorted(self.due):
            when, trigger = self.due[name]
            if when > now:
                continue
            plan = self.plans[name]
            if name in self.running:
                record = RunRecord.begin(name, trigger, now, when)
                self.runner.skip(plan, record, "the previous run of this plan is still running")
            else:
                task = asyncio.create_task(self._run(plan, trigger, when), name=f"plan {name}")
                self.running[name] = task
            self._set_due(name, self.schedules[name].next_due(when, now), "schedule")

    async def _run(self, plan: Plan, trigger: Trigger, when: datetime) -> None:
        try:
            await self.runner.run(plan, trigger=trigger, scheduled=when)
            self._write_textfile()
        except Exception as exc:  # recording the run failed (a full disk): log, keep going
            self.events.emit("run.crashed", "error", plan=plan.name, error=repr(exc))
        finally:
            self.running.pop(plan.name, None)

    def _write_textfile(self) -> None:
        if self.textfile is None or self.metrics is None:
            return
        try:
            self.metrics.write_textfile(self.textfile)
        except OSError as exc:
            self.events.emit("metrics.textfile_failed", "error", path=self.textfile, error=str(exc))

    async def _sleep(self, until: datetime, stop: asyncio.Event) -> None:
        sleeper = asyncio.ensure_future(self.clock.sleep_until(until))
        stopper = asyncio.ensure_future(stop.wait())
        self.waiting = True
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.waiting = False
            for task in (sleeper, stopper):
                task.cancel()
            await asyncio.gather(sleeper, stopper, return_exceptions=True)

    async def _interrupt_runs(self) -> None:
        tasks = list(self.running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class MetricsServer:
    """`/metrics` in Prometheus' text format and `/healthz`, served from the daemon's loop."""

    def __init__(self, metrics: PlanMetrics) -> None:
        self.registry = metrics.registry()
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._health)
        self._runner = web.AppRunner(app, access_log=None)
        self.address = ""

    async def start(self, host: str, port: int) -> str:
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise UsageError(
                f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}",
                hint="choose another --metrics-listen HOST:PORT, or --no-metrics",
            ) from exc
        bound = self._runner.addresses[0]
        self.address = (
            f"{bound[0]}:{bound[1]}" if ":" not in bound[0] else f"[{bound[0]}]:{bound[1]}"
        )
        return self.address

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")
