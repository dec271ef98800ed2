"""Restore: bring a target bucket/prefix back to a restoration point, resumably.

The restoration point is an abstract *desired state*: a key-sorted stream of
:class:`ObjectVersion`, one per key, whose keys are **absolute keys in the backup bucket**
(in the folder ``backup``), exactly what ``state_at(iter_versions(...), T)`` or a snapshot
index yields. A key's *relative key* is the part after the backup's folder; the restore
writes ``target.key(relative key)``: joined at the folder's ``/``, never glued.

Three steps, each its own function:
1. :func:`plan_restore` (pure, in engine/restore_plan.py): a merge-join of the desired state
   with the target's current state, both ascending, producing one :class:`Action` per key
   (copy, delete or skip, with a reason). The whole plan is spooled to a temporary file so
   its totals (and the archived versions) are known before anything changes, while memory
   stays flat. A plan that would delete or overwrite objects in the target is shown to
   ``confirm`` first.
2. execution (in engine/restore_execute.py): copies first, then deletes (rollback only),
   each with bounded concurrency; copies are server-side copies of the exact version ids. A
   journal records finished work.
3. verification (in engine/restore_execute.py): the target is listed again and checked
   against the plan (existence, size, ETag; deleted keys absent; in rollback, nothing
   unexpected).
The backup bucket is only ever read. This module ties the steps together (:func:`run_restore`).

What the listings cannot tell is settled with HEAD, for the keys that need it only
(:mod:`.confirm`): an untrusted (SeaweedFS chunk) ETag before a key is called changed, in the
plan as in verification; and, in rollback, the headers and metadata of a target object not
older than the point's version (with ``compare_tags``, the tags of every unchanged key).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BackupError, ItemFailure
from ..model import ObjectVersion, S3Url, Versioning
from ..storage.listing import ListingOptions
from ..storage.protocol import ObjectStore
from .actions import ActionKind
from .confirm import Checker, Side
from .executor import IN_PROCESS, Executor
from .filters import ALL_KEYS, KeyFilter, refuse_overlap
from .journal import Journal, JournalEntry, run_identity
from .pace import Pace
from .progress import NullProgress, Progress
from .restore_execute import Sides, Tally, copy_all, delete_all, verify_target
from .restore_plan import (
    ARCHIVE_CLASSES,
    Action,
    ArchivedVersions,
    Confirm,
    Destruction,
    Mode,
    PlanSummary,
    Reason,
    Spool,
    plan_restore,
    relative,
)
from .snapshot import live_state

__all__ = [  # the plan's vocabulary, re-exported: callers import a restore from one place
    "ARCHIVE_CLASSES",
    "Action",
    "ArchivedVersions",
    "Confirm",
    "Destruction",
    "Mode",
    "PlanSummary",
    "Reason",
    "RestoreResult",
    "plan_restore",
    "run_restore",
]


@dataclass(frozen=True, slots=True)
class RestoreResult:
    """What a restore did (or, with ``dry_run``, would do)."""

    copied: int
    deleted: int
    skipped: int
    failed: int
    bytes_copied: int
    dry_run: bool
    verified: bool  # the target matches the plan: nothing failed, verification found nothing
    archived: int = 0
    resumed: int = 0  # skipped only because an earlier run's journal shows them done
    failures: tuple[ItemFailure, ...] = ()
    plan: PlanSummary = field(default_factory=PlanSummary)
    journal: str | None = None
    checks: int = 0  # HEAD and tag requests that settled what the listings could not tell

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` result (docs/cli.md), with a few extra fields."""
        return {
            "copied": self.copied,
            "deleted": self.deleted,
            "skipped": self.skipped,
            "failed": self.failed,
            "bytes_copied": self.bytes_copied,
            "dry_run": self.dry_run,
            "verified": self.verified,
            "archived": self.archived,
            "resumed": self.resumed,
            "checks": self.checks,
        }


# --- the whole restore ---------------------------------------------------------------------


def _check_sides(sides: Sides) -> None:
    if sides.same_endpoint:
        refuse_overlap(
            ("the backup", sides.backup),
            ("the restore target", sides.target),
            hint="a restore never writes into its backup: restore into the source bucket or "
            "another bucket/folder with --to",
        )


async def _plan(
    sides: Sides,
    desired: AsyncIterable[ObjectVersion],
    mode: Mode,
    filters: KeyFilter,
    journal: Mapping[str, JournalEntry],
    progress: Progress,
) -> Spool:
    backup_current = None
    if mode is Mode.UNDELETE:
        backup_current = live_state(
            sides.backup_store, sides.backup, workers=sides.workers, within=filters.prefix,
            listing=sides.listing, ranges=sides.executor.ranges(sides.backup_store),
        )  # fmt: skip
    progress.start("restore: planning", unit="keys")
    spool = Spool()
    try:
        async for action in plan_restore(
            relative(desired, sides.backup),
            sides.target_state(filters),
            mode,
            filters,
            backup_current=backup_current,
            journal=journal,
            checker=sides.checker,
            workers=sides.workers,
        ):
            spool.write(action)
            progress.advance(1)
    except BaseException:
        spool.close()
        raise
    progress.finish()
    return spool


async def run_restore(
    *,
    backup_store: ObjectStore,
    backup: S3Url,
    desired: AsyncIterable[ObjectVersion],
    target_store: ObjectStore,
    target: S3Url,
    point: str,
    mode: Mode = Mode.ROLLBACK,
    filters: KeyFilter = ALL_KEYS,
    dry_run: bool = False,
    workers: int = 32,
    copy_workers: int | Pace | None = None,
    journal_dir: Path | None = None,
    progress: Progress | None = None,
    same_endpoint: bool = True,
    skip_archived: bool = False,
    multipart_threshold: int | None = None,
    confirm: Confirm | None = None,
    on_planned: Callable[[Action], None] | None = None,
    compare_tags: bool = False,
    listing: ListingOptions | None = None,
    executor: Executor = IN_PROCESS,
) -> RestoreResult:
    """Plan, execute and verify one restore; see the module docstring.

    ``desired``: the restoration point, absolute backup keys (in the folder ``backup``),
    strictly ascending, one live version per key. ``point`` names it for the journal
    (``"at:2026-11-26T10:00:00Z"`` or ``"snapshot:ID"``): the same command must give the
    same ``point`` so a rerun finds the journal. ``journal_dir`` None: no journal.
    Raises :class:`ArchivedVersions` before any change when a copy needs an archived
    version (unless ``skip_archived``). Failures are returned, not raised.
    A plan that deletes or overwrites objects in the target goes to ``confirm`` before the
    first change (docs/design.md, ordering rule 15); whatever it raises stops the restore.
    With ``dry_run``, ``on_planned`` sees every planned copy and delete in key order, read
    back from the spooled plan. ``executor`` runs the copies and deletes (:mod:`.executor`);
    planning, the journal and verification stay in this process.
    """
    progress = progress or NullProgress()
    rollback = mode is Mode.ROLLBACK
    checker = Checker(
        Side(target_store, target),
        Side(backup_store, backup),
        attributes=rollback,  # the other modes never overwrite: only content decides a label
        compare_tags=compare_tags and rollback,
    )
    sides = Sides(
        backup_store, backup, target_store, target, same_endpoint, multipart_threshold, workers,
        checker, listing, executor,
    )  # fmt: skip
    _check_sides(sides)
    journal = None
    if journal_dir is not None and not dry_run:
        identity = {
            "backup": str(backup),
            "point": point,
            "target": str(target),
            "mode": mode.value,
            "filters": [filters.prefix, list(filters.include), list(filters.exclude)],
        }
        journal = Journal(journal_dir, run_identity(identity), identity)
        journal.load()
    spool = await _plan(sides, desired, mode, filters, journal.copies if journal else {}, progress)
    try:
        summary = spool.summary
        if summary.archived and not skip_archived:
            raise ArchivedVersions(summary.archived, summary.archived_sample)
        if dry_run:
            if on_planned is not None:
                for action in spool.read(lambda a: a.kind is not ActionKind.SKIP):
                    on_planned(action)
            return RestoreResult(
                copied=summary.copies,
                deleted=summary.deletes,
                skipped=summary.skips,
                failed=0,
                bytes_copied=summary.copy_bytes,
                dry_run=True,
                verified=False,
                archived=summary.archived,
                plan=summary,
                checks=checker.requests,
            )
        if confirm is not None and (summary.deletes or summary.overwrites):
            confirm(await _destruction(sides, summary))
        copies = copy_workers or workers  # listings above, copies and deletes below
        return await _execute(sides, spool, journal, mode, filters, copies, progress)
    finally:
        spool.close()
        if journal is not None:
            journal.close()


async def _destruction(sides: Sides, summary: PlanSummary) -> Destruction:
    try:
        versioning = await sides.target_store.get_versioning(sides.target.bucket)
        versioned: bool | None = versioning is Versioning.ENABLED
    except BackupError:  # not allowed to ask: the question says so
        versioned = None
    return Destruction(
        sides.target,
        summary.deletes,
        summary.overwrites,
        summary.destroyed_bytes,
        tuple(summary.destroyed_sample),
        versioned,
    )


async def _execute(
    sides: Sides,
    spool: Spool,
    journal: Journal | None,
    mode: Mode,
    filters: KeyFilter,
    workers: int | Pace,
    progress: Progress,
) -> RestoreResult:
    summary = spool.summary
    tally = Tally()
    for action in summary.archived_sample:
        tally.fail(
            ItemFailure(
                action.key,
                action.version_id,
                f"in {action.storage_class}: restore it from the archive first",
            )
        )
    tally.failed = summary.archived
    if journal is not None:
        journal.open()
    # Copies strictly before deletes: an interruption then never leaves a key missing that
    # exists both in the target and at the restoration point.
    await copy_all(sides, spool, journal, tally, workers, progress)
    await delete_all(sides, spool, journal, tally, workers, progress)
    problems = await verify_target(sides, spool, tally, mode, filters, progress)
    for problem in problems:
        tally.fail(problem)
    if journal is not None and tally.failed == 0:
        journal.finish()
    return RestoreResult(
        copied=tally.copied,
        deleted=tally.deleted,
        skipped=summary.skips,
        failed=tally.failed,
        bytes_copied=tally.bytes_copied,
        dry_run=False,
        verified=not problems and tally.failed == 0,
        archived=summary.archived,
        resumed=summary.by_reason.get(Reason.DONE_EARLIER.value, 0),
        failures=tuple(tally.failures),
        plan=summary,
        journal=str(journal.path) if journal and tally.failed else None,
        checks=sides.checker.requests,
    )
