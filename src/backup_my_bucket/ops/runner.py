"""Run one plan: pre hook, backup (sync + snapshot), gc, verify; then report it everywhere.

A run holds the plan's lock from start to end (runs of one plan never overlap, whether the
daemon or a person started them); ``snapshot`` and ``gc`` also take the catalog lock as they
always do, and wait for it (up to ``lock-timeout``) when another process holds it. The steps
are the engines' own functions, as the `backup`, `gc` and `verify` commands call them.

Outcome: ``ok`` (exit 0); ``partial`` (exit 3: some objects failed, the rest done, later steps
still run); ``failed`` (the error's exit code: the step stops the run); ``interrupted`` (130:
cancelled, e.g. the daemon got SIGTERM — the engines clean up on the way out: the catalog lock
is released, a half-written snapshot is discarded, a multipart copy is aborted; a rerun
converges because every step plans from the current state). Every run ends in the history
(flushed to disk), the metrics and the event log; hooks and notifications follow a run that
finished, not an interrupted one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from ..catalog.catalog import Catalog
from ..catalog.index import SnapshotMeta
from ..clock import Clock
from ..engine.backup import snapshot_after
from ..engine.cut import server_now
from ..engine.filters import KeyFilter
from ..engine.gc import GcPartialFailure, GcResult, gc_catalog
from ..engine.pace import Pace
from ..engine.progress import NullProgress, Progress
from ..engine.snapshot import ListedState
from ..engine.sync import SyncOptions, SyncResult, sync
from ..engine.verify import verify_snapshot
from ..errors import (
    BackupError,
    ExitCode,
    ItemFailure,
    Locked,
    SnapshotNotFound,
    VerificationFailed,
)
from ..storage.protocol import ObjectStore
from ..units import plural
from .events import EventLog
from .history import History, RunRecord, status_of
from .hooks import hook_env, run_hook
from .metrics import PlanMetrics
from .notify import Notifier
from .plans import Plan

log = logging.getLogger(__name__)
T = TypeVar("T")
LOCK_RETRY_SECONDS = 30.0
KEPT_FAILURES = 20  # item failures kept in a run record (the command's own output lists them)


async def _snapshots_of(plan: Plan, conn: Connection) -> list[SnapshotMeta]:
    """The snapshots of the plan's backup location (its catalog may hold carried ones too)."""
    return [m for m in await conn.catalog.list() if m.of(plan.backup)]


@dataclass(frozen=True, slots=True)
class Connection:
    """What one run needs to reach the buckets and the catalog (opened by the CLI)."""

    backup: ObjectStore
    catalog: Catalog
    source: ObjectStore | None = None
    same_endpoint: bool = True
    workers: int = 32  # listing requests at once
    copy_workers: int | Pace | None = None  # copies and deletes at once (None: as workers)


Connector = Callable[[Plan], AbstractAsyncContextManager[Connection]]


@dataclass
class _Backup:
    """What a run's snapshot step needs of its sync step (rule 8)."""

    listed: ListedState
    synced: SyncResult | None = None
    ended: datetime | None = None


Unit = Callable[[Plan, RunRecord, Connection, _Backup], Awaitable[None]]


class _Progress(NullProgress):
    """Counts a run's progress into the metrics and passes it on."""

    def __init__(self, metrics: PlanMetrics, plan: str, inner: Progress) -> None:
        self.metrics, self.plan, self.inner = metrics, plan, inner

    def start(
        self,
        description: str,
        total: int | None = None,
        total_bytes: int | None = None,
        *,
        unit: str = "objects",
    ) -> None:
        self.inner.start(description, total, total_bytes, unit=unit)

    def total(self, total: int | None = None, total_bytes: int | None = None) -> None:
        self.inner.total(total, total_bytes)

    def advance(self, items: int = 1, nbytes: int = 0) -> None:
        self.metrics.progressed(self.plan, items, nbytes)
        self.inner.advance(items, nbytes)

    def finish(self) -> None:
        self.inner.finish()


class PlanRunner:
    def __init__(
        self,
        connect: Connector,
        history: History,
        clock: Clock,
        *,
        notifier: Notifier | None = None,
        metrics: PlanMetrics | None = None,
        events: EventLog | None = None,
        progress: Callable[[], Progress] | None = None,
    ) -> None:
        self.connect = connect
        self.history = history
        self.clock = clock
        self.notifier = notifier or Notifier(clock)
        self.metrics = metrics
        self.events = events or EventLog(None, clock)
        self.make_progress = progress or NullProgress

    # --- one run ------------------------------------------------------------------------------

    async def run(
        self, plan: Plan, *, trigger: str = "manual", scheduled: datetime | None = None
    ) -> RunRecord:
        """Run ``plan`` once; the returned record says how it went (it never raises, except
        CancelledError after recording the run as interrupted)."""
        record = RunRecord.begin(plan.name, trigger, self.clock.now(), scheduled)
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(self.history.plan_lock(plan.name))
            except Locked as exc:
                return self.skip(plan, record, exc.message)
            return await self._run(plan, record)
        raise AssertionError("unreachable")

    def skip(self, plan: Plan, record: RunRecord, reason: str) -> RunRecord:
        """Record a moment that was skipped because the plan was running already."""
        record.status, record.exit_code, record.error = "skipped", ExitCode.LOCKED, reason
        record.finished = record.started
        self._record(record, "run.skipped", level="warning")
        return record

    async def _run(self, plan: Plan, record: RunRecord) -> RunRecord:
        started = self.clock.monotonic()
        if self.metrics is not None:
            self.metrics.started(record)
        self.events.emit(
            "run.started", plan=plan.name, run_id=record.run_id, trigger=record.trigger
        )
        await self.notifier.started(plan, record)
        try:
            await self._work(plan, record)
        except asyncio.CancelledError:
            record.status, record.exit_code = "interrupted", ExitCode.INTERRUPTED
            record.error = record.error or "interrupted: a rerun continues where this one stopped"
            self._stamp(record, started)
            self._record(record, "run.interrupted", level="warning")
            raise
        self._stamp(record, started)
        if record.ok and not await self._hook(plan, record, "post"):
            hook = record.hooks["post"]
            self._fail(
                record,
                "post-hook",
                f"the post hook exited {hook['exit_code']} (the backup steps succeeded)",
                ExitCode.FAILURE,
            )
        if not record.ok:
            await self._hook(plan, record, "on_failure")
        await self.notifier.finished(plan, record)
        self._record(record, "run.finished", level="info" if record.ok else "error")
        return record

    async def _work(self, plan: Plan, record: RunRecord) -> None:
        step = "pre-hook"
        try:
            if not await self._hook(plan, record, "pre"):
                hook = record.hooks["pre"]
                what = "timed out" if hook["exit_code"] is None else f"exited {hook['exit_code']}"
                self._fail(record, step, f"the pre hook {what}: the run was skipped", 1)
                return
            step = "connect"
            async with self.connect(plan) as conn:
                with ListedState(self.clock) as listed:
                    run = _Backup(listed)
                    for name, unit in self._units(plan):
                        step = name  # named in the failure if it raises
                        await unit(plan, record, conn, run)
                        if record.status == "failed":
                            return
                step = "status"
                await self._catalog_status(plan, record, conn)
        except asyncio.CancelledError:
            record.failed_step = step  # where it was interrupted
            raise
        except BackupError as exc:
            self._fail(record, step, exc.message, exc.exit_code, exc.hint)
        except Exception as exc:  # a bug must fail this run, not the daemon
            log.exception("plan %s: internal error in %s", plan.name, step)
            self._fail(
                record,
                step,
                f"internal error: {type(exc).__name__}: {exc}",
                ExitCode.FAILURE,
                "rerun with --debug for a traceback, and report it",
            )

    def _units(self, plan: Plan) -> list[tuple[str, Unit]]:
        units: list[tuple[str, Unit]] = []
        if "backup" in plan.steps:
            units += [("sync", self._sync), ("snapshot", self._snapshot)]
        if "gc" in plan.steps:
            units.append(("gc", self._gc))
        if "verify" in plan.steps:
            units.append(("verify", self._verify))
        return units

    # --- the steps ------------------------------------------------------------------------------

    def _progress(self, plan: Plan) -> Progress:
        inner = self.make_progress()
        return inner if self.metrics is None else _Progress(self.metrics, plan.name, inner)

    async def _sync(self, plan: Plan, record: RunRecord, conn: Connection, run: _Backup) -> None:
        assert plan.source is not None and conn.source is not None
        options = SyncOptions(
            workers=conn.copy_workers or conn.workers,
            list_workers=conn.workers,
            same_endpoint=conn.same_endpoint,
            multipart_threshold=plan.multipart_threshold,
            key_filter=KeyFilter(include=plan.include, exclude=plan.exclude),
        )
        result = await sync(
            conn.source,
            plan.source,
            conn.backup,
            plan.backup,
            options,
            self._progress(plan),
            clock=self.clock,
            listed=run.listed,
        )
        run.synced = result
        run.ended = await server_now(conn.backup, plan.backup.bucket, self.clock)
        record.steps["sync"] = result.to_json()
        if result.failures:
            self._partial(
                record, "sync", f"{result.failed} objects failed to sync", result.failures
            )

    async def _snapshot(
        self, plan: Plan, record: RunRecord, conn: Connection, run: _Backup
    ) -> None:
        synced, ended = run.synced, run.ended
        assert synced is not None and ended is not None  # the sync step runs first
        meta = await self._waiting_for_lock(
            plan,
            record,
            lambda: snapshot_after(
                synced,
                run.listed,
                conn.backup,
                plan.backup,
                conn.catalog,
                self.clock,
                ended=ended,
                source=plan.source,
                tags=plan.tags,
                workers=conn.workers,
                progress=self._progress(plan),
            ),
        )
        record.steps["snapshot"] = meta.summary()

    async def _gc(self, plan: Plan, record: RunRecord, conn: Connection, run: _Backup) -> None:
        assert plan.policy is not None
        policy = plan.policy
        try:
            result = await self._waiting_for_lock(
                plan,
                record,
                lambda: gc_catalog(
                    conn.backup,
                    conn.catalog,
                    plan.backup,
                    policy,
                    self.clock,
                    workers=conn.copy_workers or conn.workers,
                    list_workers=conn.workers,
                    progress=self._progress(plan),
                ),
            )
        except GcPartialFailure as exc:
            record.steps["gc"] = _gc_json(exc.result)
            self._partial(record, "gc", exc.message, exc.failures)
            return
        record.steps["gc"] = _gc_json(result)

    async def _verify(self, plan: Plan, record: RunRecord, conn: Connection, run: _Backup) -> None:
        ref = (record.steps.get("snapshot") or {}).get("id") or await self._newest(plan, conn)
        meta, result = await verify_snapshot(
            conn.backup,
            conn.catalog,
            ref,
            read_share=plan.verify_read_share,
            salt=self.clock.now().isoformat(),
            workers=conn.workers,
            progress=self._progress(plan),
        )
        summary = result.to_json()
        summary["problems"] = summary["problems"][:KEPT_FAILURES]
        record.steps["verify"] = {"snapshot": meta.id, **summary}
        if result.problems:
            raise VerificationFailed(
                f"verify of {meta.id}: {plural(result.missing, 'version')} missing and "
                f"{result.mismatched:,} changed in the backup",
                hint="restore what you can now; find out who deletes versions in the backup",
            )

    async def _newest(self, plan: Plan, conn: Connection) -> str:
        metas = await _snapshots_of(plan, conn)
        if not metas:
            raise SnapshotNotFound(
                f"no snapshot of {plan.backup} to verify",
                hint="run a plan with the backup step first",
            )
        return max(metas, key=lambda m: (m.at, m.id)).id

    async def _catalog_status(self, plan: Plan, record: RunRecord, conn: Connection) -> None:
        """How many snapshots the backup has now, and the span they cover (for the metrics)."""
        try:
            metas = await _snapshots_of(plan, conn)
        except BackupError as exc:
            self.events.emit("run.status_unknown", "warning", plan=plan.name, error=exc.message)
            return
        record.snapshots = len(metas)
        if metas:
            record.oldest_restorable = min(m.at for m in metas)
            record.newest_restorable = max(m.at for m in metas)

    async def _waiting_for_lock(
        self, plan: Plan, record: RunRecord, work: Callable[[], Awaitable[T]]
    ) -> T:
        """Run ``work``; while another process holds the catalog lock, wait and try again,
        for up to the plan's ``lock-timeout`` from the first refusal (then the run fails with
        exit 11)."""
        deadline: float | None = None
        while True:
            try:
                return await work()
            except Locked as exc:
                if deadline is None:
                    deadline = self.clock.monotonic() + plan.lock_timeout.total_seconds()
                left = deadline - self.clock.monotonic()
                if left <= 0:
                    raise
                pause = min(LOCK_RETRY_SECONDS, left)
                record.lock_waits += 1
                self.events.emit(
                    "run.lock_wait", plan=plan.name, run_id=record.run_id, holder=exc.message
                )
                await self.clock.sleep(pause)
                record.lock_wait_seconds += pause

    # --- outcome ----------------------------------------------------------------------------------

    async def _hook(self, plan: Plan, record: RunRecord, name: str) -> bool:
        command = getattr(plan.hooks, name)
        if not command:
            return True
        label = name.replace("_", "-")
        result = await run_hook(
            command, hook_env(plan, record), record.to_json(), plan.hooks.timeout
        )
        record.hooks[label] = result.to_json()
        self.events.emit(
            "run.hook",
            "info" if result.ok else "error",
            plan=plan.name,
            run_id=record.run_id,
            hook=label,
            exit_code=result.exit_code,
        )
        return result.ok

    def _fail(
        self, record: RunRecord, step: str, message: str, code: int, hint: str | None = None
    ) -> None:
        """A step failed: the run stops here (a failure outranks an earlier partial one)."""
        record.failed_step, record.error, record.hint = step, message, hint
        record.exit_code = code
        record.status = status_of(code)

    def _partial(
        self, record: RunRecord, step: str, message: str, failures: Sequence[ItemFailure]
    ) -> None:
        """Some items failed; the run goes on. The first partial step is the one named."""
        room = KEPT_FAILURES - len(record.failures)
        record.failures += [
            {"key": f.key, "version_id": f.version_id, "reason": f.reason} for f in failures[:room]
        ]
        if record.exit_code == 0:
            self._fail(record, step, message, ExitCode.PARTIAL, "rerun: finished work is skipped")

    def _stamp(self, record: RunRecord, started: float) -> None:
        record.finished = self.clock.now()
        record.duration_seconds = round(self.clock.monotonic() - started, 3)
        if record.status == "running":
            record.status = status_of(record.exit_code)

    def _record(self, record: RunRecord, event: str, level: str = "info") -> None:
        """The run's end, everywhere: history (flushed to disk), metrics, the event log."""
        self.history.append(record)
        if self.metrics is not None:
            self.metrics.finished(record)
        self.events.emit(
            event,
            level,
            plan=record.plan,
            run_id=record.run_id,
            status=record.status,
            exit_code=record.exit_code,
            failed_step=record.failed_step,
            error=record.error,
            duration_seconds=record.duration_seconds,
            copied=record.step_value("sync", "copied"),
            bytes_copied=record.step_value("sync", "bytes_copied"),
            failed=record.step_value("sync", "failed"),
            snapshot=(record.steps.get("snapshot") or {}).get("id"),
        )


def _gc_json(result: GcResult) -> dict[str, Any]:
    """gc's result for the record: its JSON without the per-snapshot reasons."""
    summary = result.to_json()
    summary.pop("decisions", None)
    summary["skipped_locked"] = len(result.skipped_locked)
    summary["failures"] = len(result.failures)
    summary["failed"] = len(result.failures)
    return summary
