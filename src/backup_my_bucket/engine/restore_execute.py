"""Steps 2 and 3 of a restore (engine/restore.py runs all three): execute the spooled plan
against the target, then verify the target against it.

Execution copies the exact version ids of the planned copies from the backup folder to the
target folder, then deletes the planned deletes (rollback only); both go through an
:class:`~.executor.Executor` with bounded concurrency, and a journal records finished work.
Verification lists the target again and checks each planned key (existence, size, ETag;
deleted keys absent; in rollback, nothing unexpected). The backup bucket is only ever read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from ..errors import ItemFailure
from ..model import NULL_VERSION, ObjectVersion, S3Url
from ..storage.listing import ListingOptions
from ..storage.protocol import ObjectStore
from .actions import ActionKind
from .confirm import Checker
from .executor import IN_PROCESS, DeleteKey, Executor, Job
from .filters import KeyFilter
from .journal import Journal
from .pace import Pace
from .progress import Progress
from .restore_plan import MAX_LISTED_FAILURES, Action, KeyCursor, Mode, Reason, Spool
from .snapshot import live_objects
from .transfer import SINGLE_PUT_MAX, CopyBetween

# --- execution -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sides:
    """Both ends of one restore, and how it reaches them (concurrency, checker, executor)."""

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

    def target_state(self, filters: KeyFilter) -> AsyncIterator[ObjectVersion]:
        """The target's current objects (not its versions): the plan and the verification
        read the same listing."""
        return live_objects(
            self.target_store, self.target, within=filters.prefix, listing=self.listing
        )


@dataclass(slots=True)
class Tally:
    """What the execution did, and what failed, for the verification and the result."""

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


async def copy_all(
    sides: Sides,
    spool: Spool,
    journal: Journal | None,
    tally: Tally,
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


async def delete_all(
    sides: Sides,
    spool: Spool,
    journal: Journal | None,
    tally: Tally,
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


def _check(action: Action, found: ObjectVersion | None, tally: Tally) -> str | None:
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


async def verify_target(
    sides: Sides,
    spool: Spool,
    tally: Tally,
    mode: Mode,
    filters: KeyFilter,
    progress: Progress,
) -> list[ItemFailure]:
    """List the target again (its current objects, with their own ETags: no SeaweedFS chunk
    ETag to confirm) and check it against the plan."""
    progress.start("restore: verifying", sum(spool.summary.by_reason.values()), unit="keys")
    have = KeyCursor(sides.target_state(filters), "target listing", filters)
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
