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
2. execution: copies first, then deletes (rollback only), each with bounded concurrency;
   copies are server-side copies of the exact version ids. A journal records finished work.
3. verification: the target is listed again and checked against the plan (existence, size,
   ETag; deleted keys absent; in rollback, nothing unexpected).
The backup bucket is only ever read.

What the listings cannot tell is settled with HEAD, for the keys that need it only
(:mod:`.confirm`): an untrusted (SeaweedFS chunk) ETag before a key is called changed, in the
plan as in verification; and, in rollback, the headers and metadata of a target object not
older than the point's version (with ``compare_tags``, the tags of every unchanged key).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BackupError, ItemFailure
from ..model import NULL_VERSION, ObjectVersion, S3Url, Versioning
from ..storage.listing import ListingOptions
from ..storage.protocol import ObjectStore
from .actions import ActionKind
from .confirm import Checker, Side
from .executor import IN_PROCESS, DeleteKey, Executor, Job
from .filters import ALL_KEYS, KeyFilter, refuse_overlap
from .journal import Journal, JournalEntry, run_identity
from .pace import Pace
from .progress import NullProgress, Progress
from .restore_plan import (
    ARCHIVE_CLASSES,
    MAX_LISTED_FAILURES,
    Action,
    ArchivedVersions,
    Confirm,
    Destruction,
    KeyCursor,
    Mode,
    PlanSummary,
    Reason,
    Spool,
    plan_restore,
    relative,
)
from .snapshot import live_objects, live_state
from .transfer import SINGLE_PUT_MAX, CopyBetween

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

# --- execution -----------------------------------------------------------------------------


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


@dataclass(frozen=True, slots=True)
class _Sides:
    backup_store: ObjectStore
    backup: S3Url
    target_store: ObjectStore
    target: S3Url
    same_endpoint: bool
    multipart_threshold: int | None
    workers: int  # concurrent requests, for the listings as for the copies
    checker: Checker
    listing: ListingOptions | None = None
    executor: Executor = IN_PROCESS


@dataclass(slots=True)
class _Tally:
    copied: int = 0
    deleted: int = 0
    bytes_copied: int = 0
    failures: list[ItemFailure] = field(default_factory=list)
    failed: int = 0
    failed_keys: set[str] = field(default_factory=set)
    new_etags: dict[str, str] = field(default_factory=dict)  # copies of multipart sources

    def fail(self, failure: ItemFailure) -> None:
        self.failed += 1
        self.failed_keys.add(failure.key)
        if len(self.failures) < MAX_LISTED_FAILURES:
            self.failures.append(failure)


def _single_part(etag: str | None) -> bool:
    return etag is not None and "-" not in etag


@dataclass(frozen=True, slots=True)
class RestoreCopy:
    """The copy unit (:mod:`.executor`): one planned action's exact version, from the backup
    (``stores[0]``) to the target (``stores[1]``); returns the ETag the target now has."""

    copy: CopyBetween  # backup folder -> target folder

    @property
    def destination(self) -> S3Url:
        return self.copy.target

    async def __call__(self, stores: Sequence[ObjectStore], action: Action) -> str:
        assert action.version_id is not None
        version_id = await self.copy(
            stores, action.key, action.version_id,
            size=action.size, etag=action.etag, storage_class=action.storage_class,
        )  # fmt: skip
        if _single_part(action.etag) and action.size <= SINGLE_PUT_MAX:
            assert action.etag is not None
            return action.etag  # copied in one request: the MD5 ETag is kept
        # copied in parts: the ETag is the source's only when the part layout was kept (a
        # multipart source on a same-endpoint copy); ask, so verification and the journal know
        target = self.copy.target
        info = await stores[1].head(
            target.bucket,
            target.key(action.key),
            None if version_id == NULL_VERSION else version_id,
        )
        return info.etag


async def _copy_all(
    sides: _Sides,
    spool: Spool,
    journal: Journal | None,
    tally: _Tally,
    workers: int | Pace,
    progress: Progress,
) -> None:
    summary = spool.summary
    progress.start("restore: copying", total=summary.copies, total_bytes=summary.copy_bytes)
    todo = spool.read(lambda a: a.kind is ActionKind.COPY and not a.archived)
    work = RestoreCopy(
        CopyBetween(sides.backup, sides.target, sides.same_endpoint, sides.multipart_threshold)
    )
    job = Job(work, (sides.backup_store, sides.target_store), workers)
    async for outcome in sides.executor.map(todo, job):
        action = outcome.item
        if outcome.error is not None or outcome.result is None:
            reason = outcome.error.message if outcome.error else "no result"
            tally.fail(ItemFailure(action.key, action.version_id, reason))
        else:
            tally.copied += 1
            tally.bytes_copied += action.size
            if outcome.result != action.etag:
                tally.new_etags[action.key] = outcome.result
            if journal is not None:
                assert action.version_id is not None
                journal.copied(
                    action.key, action.version_id, action.etag, outcome.result, action.size
                )
        progress.advance(1, action.size)
    progress.finish()


async def _delete_all(
    sides: _Sides,
    spool: Spool,
    journal: Journal | None,
    tally: _Tally,
    workers: int | Pace,
    progress: Progress,
) -> None:
    progress.start("restore: deleting", total=spool.summary.deletes)
    todo = spool.read(lambda a: a.kind is ActionKind.DELETE)
    delete: DeleteKey[Action] = DeleteKey(sides.target)  # (a subscripted call fails: frozen)
    job = Job(delete, (sides.target_store,), workers)
    async for outcome in sides.executor.map(todo, job):
        if outcome.error is not None:
            tally.fail(ItemFailure(outcome.item.key, None, outcome.error.message))
        else:
            tally.deleted += 1
            if journal is not None:
                journal.deleted(outcome.item.key)
        progress.advance(1)
    progress.finish()


# --- verification --------------------------------------------------------------------------


def _check(action: Action, found: ObjectVersion | None, tally: _Tally) -> str | None:
    """Why ``found`` (the target's live entry) contradicts ``action``, or None."""
    if action.key in tally.failed_keys or action.archived:
        return None
    if action.kind is ActionKind.DELETE:
        return "still present after the delete" if found is not None else None
    if action.kind is ActionKind.COPY:
        want_etag = tally.new_etags.get(action.key, action.etag)
        want_size = action.size
    elif action.reason in (Reason.UNCHANGED, Reason.DONE_EARLIER):
        want_etag, want_size = action.target_etag, action.target_size or 0
    else:
        return None  # kept as it was: nothing promised
    if found is None:
        return "missing after the restore"
    if found.size != want_size:
        return f"size {found.size}, expected {want_size}"
    if want_etag is not None and found.etag != want_etag:
        return f"ETag {found.etag}, expected {want_etag}"
    return None


async def _verify(
    sides: _Sides,
    spool: Spool,
    tally: _Tally,
    mode: Mode,
    filters: KeyFilter,
    progress: Progress,
) -> list[ItemFailure]:
    """List the target again (its current objects, with their own ETags: no SeaweedFS chunk
    ETag to confirm) and check it against the plan."""
    progress.start("restore: verifying", sum(spool.summary.by_reason.values()), unit="keys")
    have = KeyCursor(_target_state(sides, filters), "target listing", filters)
    problems: list[ItemFailure] = []

    def problem(key: str, text: str) -> None:
        problems.append(ItemFailure(key, None, f"verify: {text}"))

    try:
        await have.advance()
        for action in spool.read():
            while have.head is not None and have.head.key < action.key:
                if mode is Mode.ROLLBACK:
                    problem(have.head.key, "not in the plan")
                await have.advance()
            found = await have.seek(action.key)
            if found is not None:
                await have.advance()
            wrong = _check(action, found, tally)
            if wrong is not None:
                problem(action.key, wrong)
            progress.advance(1)
        while have.head is not None:
            if mode is Mode.ROLLBACK:
                problem(have.head.key, "not in the plan")
            await have.advance()
    finally:
        await have.aclose()
    progress.finish()
    return problems


# --- the whole restore ---------------------------------------------------------------------


def _target_state(sides: _Sides, filters: KeyFilter) -> AsyncIterator[ObjectVersion]:
    # its current objects, not its versions: planned and verified from the same listing
    return live_objects(
        sides.target_store, sides.target, within=filters.prefix, listing=sides.listing
    )


def _check_sides(sides: _Sides) -> None:
    if sides.same_endpoint:
        refuse_overlap(
            ("the backup", sides.backup),
            ("the restore target", sides.target),
            hint="a restore never writes into its backup: restore into the source bucket or "
            "another bucket/folder with --to",
        )


async def _plan(
    sides: _Sides,
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
            _target_state(sides, filters),
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
    sides = _Sides(
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


async def _destruction(sides: _Sides, summary: PlanSummary) -> Destruction:
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
    sides: _Sides,
    spool: Spool,
    journal: Journal | None,
    mode: Mode,
    filters: KeyFilter,
    workers: int | Pace,
    progress: Progress,
) -> RestoreResult:
    summary = spool.summary
    tally = _Tally()
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
    await _copy_all(sides, spool, journal, tally, workers, progress)
    await _delete_all(sides, spool, journal, tally, workers, progress)
    problems = await _verify(sides, spool, tally, mode, filters, progress)
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
