"""Prometheus metrics of the plans: served by the daemon, or written/pushed after `plan run`.

Every gauge is computed from the run history (plus, in the daemon, what is running now), so
the daemon after a restart, a textfile written by a one-shot run and a Pushgateway push all
show the same values: the last success survives a restart, and a failed run moves the failure
gauges while the last-success timestamp stays where it was. Counters (``*_total``) count what
this daemon process saw, the usual Prometheus way (``increase()`` handles restarts).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

from prometheus_client import CollectorRegistry, push_to_gateway, write_to_textfile
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .history import History, RunRecord
from .plans import Plan

PREFIX = "bmb_plan_"
JOB = "backup-my-bucket"


@dataclass(slots=True)
class PlanState:
    """What the metrics of one plan are made of."""

    plan: Plan
    last: RunRecord | None = None  # the last finished run (skipped slots are not runs)
    last_success: RunRecord | None = None
    last_gc: RunRecord | None = None
    last_verify: RunRecord | None = None
    consecutive_failures: int = 0
    running: RunRecord | None = None
    progress_items: int = 0
    progress_bytes: int = 0
    next_run: datetime | None = None
    runs: Counter[str] = field(default_factory=Counter)  # status → runs seen by this process
    lock_waits: int = 0

    def add(self, record: RunRecord) -> None:
        """Take a finished record into account (in history order)."""
        if not record.counts_as_run:
            return
        self.last = record
        self.consecutive_failures = 0 if record.ok else self.consecutive_failures + 1
        if record.ok:
            self.last_success = record
        if "gc" in record.steps:
            self.last_gc = record
        if "verify" in record.steps:
            self.last_verify = record


class PlanMetrics(Collector):
    """The metrics of a set of plans; a collector the registry asks at every scrape."""

    def __init__(self, plans: Sequence[Plan], history: History) -> None:
        self.states = {plan.name: PlanState(plan) for plan in plans}
        for name, state in self.states.items():
            for record in history.records(name):
                state.add(record)

    # --- updates (from the runner and the daemon) ---------------------------------------------

    def started(self, record: RunRecord) -> None:
        state = self.states[record.plan]
        state.running, state.progress_items, state.progress_bytes = record, 0, 0

    def progressed(self, plan: str, items: int, nbytes: int) -> None:
        state = self.states[plan]
        state.progress_items += items
        state.progress_bytes += nbytes

    def finished(self, record: RunRecord) -> None:
        state = self.states[record.plan]
        if state.running is not None and state.running.run_id == record.run_id:
            state.running = None
        state.runs[record.status] += 1
        state.lock_waits += record.lock_waits
        state.add(record)

    def scheduled(self, plan: str, when: datetime) -> None:
        self.states[plan].next_run = when

    # --- output --------------------------------------------------------------------------------

    def registry(self, names: Iterable[str] | None = None) -> CollectorRegistry:
        """A registry with these plans' metrics (all, or only ``names``)."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self if names is None else _Subset(self, set(names)))
        return registry

    def collect(self) -> Iterator[Metric]:
        return _families(self.states.values())

    def write_textfile(self, path: Path) -> None:
        """For node_exporter's textfile collector: written whole, then renamed into place."""
        path.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(path), self.registry())

    async def push(self, gateway: str, plan: str) -> None:
        """Replace this plan's group (job=backup-my-bucket, plan=NAME) on a Pushgateway."""
        registry = self.registry([plan])
        await asyncio.to_thread(
            push_to_gateway, gateway, job=JOB, registry=registry, grouping_key={"plan": plan}
        )


class _Subset(Collector):
    def __init__(self, metrics: PlanMetrics, names: set[str]) -> None:
        self.metrics, self.names = metrics, names

    def collect(self) -> Iterator[Metric]:
        return _families(s for n, s in self.metrics.states.items() if n in self.names)


class Gauge(NamedTuple):
    name: str
    doc: str
    value: Callable[[PlanState], float | None]  # None: no sample for this plan


def _last(attr: str) -> Callable[[PlanState], float | None]:
    return lambda s: None if s.last is None else float(getattr(s.last, attr))


def _step(record: str, step: str, key: str) -> Callable[[PlanState], float | None]:
    def value(s: PlanState) -> float | None:
        found: RunRecord | None = getattr(s, record)
        return None if found is None else found.step_value(step, key)

    return value


def _moment(record: str, attr: str) -> Callable[[PlanState], float | None]:
    def value(s: PlanState) -> float | None:
        found: RunRecord | None = getattr(s, record)
        moment = None if found is None else getattr(found, attr)
        return None if moment is None else float(moment.timestamp())

    return value


def _started(s: PlanState) -> float | None:
    current = s.running or s.last
    return None if current is None else current.started.timestamp()


def _failed(s: PlanState) -> float | None:
    if s.last is None:
        return None
    return s.last.step_value("sync", "failed") + s.last.step_value("gc", "failed")


GAUGES = (
    Gauge("running", "1 while a run of the plan is in progress.", lambda s: s.running is not None),
    Gauge(
        "run_progress_objects",
        "Objects the running run has handled so far.",
        lambda s: s.progress_items if s.running else None,
    ),
    Gauge(
        "run_progress_bytes",
        "Bytes the running run has handled so far.",
        lambda s: s.progress_bytes if s.running else None,
    ),
    Gauge(
        "last_run_start_timestamp_seconds", "Start of the last run (or the one running).", _started
    ),
    Gauge(
        "last_run_end_timestamp_seconds",
        "End of the last finished run.",
        _moment("last", "finished"),
    ),
    Gauge(
        "last_run_duration_seconds", "Duration of the last finished run.", _last("duration_seconds")
    ),
    Gauge(
        "last_run_success",
        "1 if the last finished run succeeded, else 0.",
        lambda s: None if s.last is None else s.last.ok,
    ),
    Gauge("last_run_exit_code", "Exit code of the last finished run.", _last("exit_code")),
    Gauge(
        "last_success_timestamp_seconds",
        "End of the last successful run (0: never).",
        lambda s: _moment("last_success", "finished")(s) or 0.0,
    ),
    Gauge(
        "consecutive_failures",
        "Finished runs since the last success that did not succeed.",
        lambda s: s.consecutive_failures,
    ),
    Gauge(
        "last_run_objects_copied", "Objects the last run copied.", _step("last", "sync", "copied")
    ),
    Gauge(
        "last_run_bytes_copied", "Bytes the last run copied.", _step("last", "sync", "bytes_copied")
    ),
    Gauge(
        "last_run_objects_deleted",
        "Delete markers the last run set (keys gone from the source).",
        _step("last", "sync", "deleted"),
    ),
    Gauge(
        "last_run_objects_failed",
        "Objects and versions the last run failed to copy or delete.",
        _failed,
    ),
    Gauge(
        "last_run_lock_waits",
        "Times the last run waited for the catalog lock.",
        _last("lock_waits"),
    ),
    Gauge(
        "last_run_lock_wait_seconds",
        "Seconds the last run waited for the catalog lock.",
        _last("lock_wait_seconds"),
    ),
    Gauge(
        "snapshots",
        "Snapshots of the plan's backup in the catalog after the last run.",
        lambda s: None if s.last is None or s.last.snapshots is None else s.last.snapshots,
    ),
    Gauge(
        "oldest_restorable_timestamp_seconds",
        "Moment of the oldest snapshot of the plan's backup.",
        _moment("last", "oldest_restorable"),
    ),
    Gauge(
        "newest_restorable_timestamp_seconds",
        "Moment of the newest snapshot of the plan's backup.",
        _moment("last", "newest_restorable"),
    ),
    Gauge(
        "last_gc_versions_deleted",
        "Versions and delete markers the last gc deleted.",
        _step("last_gc", "gc", "versions_deleted"),
    ),
    Gauge("last_gc_bytes_freed", "Bytes the last gc freed.", _step("last_gc", "gc", "bytes_freed")),
    Gauge(
        "last_gc_timestamp_seconds", "End of the last run with gc.", _moment("last_gc", "finished")
    ),
    Gauge(
        "last_verify_checked",
        "Versions the last verify checked.",
        _step("last_verify", "verify", "checked"),
    ),
    Gauge(
        "last_verify_missing",
        "Versions the last verify found missing.",
        _step("last_verify", "verify", "missing"),
    ),
    Gauge(
        "last_verify_mismatched",
        "Versions the last verify found changed.",
        _step("last_verify", "verify", "mismatched"),
    ),
    Gauge(
        "last_verify_timestamp_seconds",
        "End of the last run with verify.",
        _moment("last_verify", "finished"),
    ),
    Gauge(
        "next_run_timestamp_seconds",
        "When the daemon runs the plan next.",
        lambda s: None if s.next_run is None else s.next_run.timestamp(),
    ),
)


def _families(states: Iterable[PlanState]) -> Iterator[Metric]:
    states = list(states)
    info = GaugeMetricFamily(
        PREFIX + "info",
        "A configured plan (value 1).",
        labels=["plan", "source", "backup", "steps"],
    )
    for s in states:
        p = s.plan
        info.add_metric([p.name, str(p.source or ""), str(p.backup), ",".join(p.steps)], 1)
    yield info
    for gauge in GAUGES:
        family = GaugeMetricFamily(PREFIX + gauge.name, gauge.doc, labels=["plan"])
        for s in states:
            sample = gauge.value(s)
            if sample is not None:
                family.add_metric([s.plan.name], float(sample))
        yield family
    runs = CounterMetricFamily(
        PREFIX + "runs", "Runs seen by this process, by status.", labels=["plan", "status"]
    )
    waits = CounterMetricFamily(
        PREFIX + "lock_waits", "Catalog lock waits seen by this process.", labels=["plan"]
    )
    for s in states:
        for status in ("ok", "partial", "failed", "interrupted", "skipped"):
            runs.add_metric([s.plan.name, status], s.runs[status])
        waits.add_metric([s.plan.name], s.lock_waits)
    yield runs
    yield waits
