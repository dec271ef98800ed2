"""Restore: bring a target bucket/prefix back to a restoration point, resumably.

The restoration point is an abstract *desired state*: a key-sorted stream of
:class:`ObjectVersion`, one per key, whose keys are **absolute keys in the backup bucket**
(in the folder ``backup``), exactly what ``state_at(iter_versions(...), T)`` or a snapshot
index yields. A key's *relative key* is the part after the backup's folder; the restore
writes ``target.key(relative key)``: joined at the folder's ``/``, never glued.

Three steps, each its own function:
1. :func:`plan_restore` (pure): a merge-join of the desired state with the target's current
   state, both ascending, producing one :class:`Action` per key (copy, delete or skip, with a
   reason). The whole plan is spooled to a temporary file so its totals (and the archived
   versions) are known before anything changes, while memory stays flat. A plan that would
   delete or overwrite objects in the target is shown to ``confirm`` first.
2. execution: copies first, then deletes (rollback only), each with bounded concurrency;
   copies are server-side copies of the exact version ids. A journal records finished work.
3. verification: the target is listed again and checked against the plan (existence, size,
   ETag; deleted keys absent; in rollback, nothing unexpected).
The backup bucket is only ever read.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

from ..errors import BackupError, ItemFailure
from ..model import NULL_VERSION, ObjectVersion, S3Url, Versioning, VersionRef
from ..storage.protocol import ObjectStore
from .actions import ActionKind
from .filters import ALL_KEYS, KeyFilter, refuse_overlap
from .journal import Journal, JournalEntry, run_identity
from .progress import NullProgress, Progress
from .snapshot import live_state
from .transfer import SINGLE_PUT_MAX, copy_version
from .workers import run_pool

ARCHIVE_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})
"""Storage classes whose versions cannot be copied until restored from the archive.
(GLACIER_IR is instant retrieval: copyable like STANDARD.)"""

MAX_LISTED_FAILURES = 1000
NAMED_DESTROYED = 10
"""How many of the keys a restore would delete or overwrite its confirmation names."""
ARCHIVED_REASON = "not copyable until restored from the archive"


class Mode(StrEnum):
    ROLLBACK = "rollback"
    """The target ends exactly equal to the point: copy missing/different, delete extra."""
    SAFE = "safe"
    """Never overwrite or delete: only add keys the target is missing."""
    UNDELETE = "undelete"
    """Only keys deleted since the point (the backup's latest entry is a delete marker, or
    the key is gone from it) that the target is missing; never overwrite or delete."""


class Reason(StrEnum):
    MISSING = "missing in the target"
    CHANGED = "differs from the restoration point"
    DELETED_SINCE = "deleted since the restoration point"
    EXTRA = "not in the restoration point"
    UNCHANGED = "unchanged"
    DONE_EARLIER = "restored by an earlier run (journal)"
    KEPT_DIFFERENT = "differs, kept: this mode never overwrites"
    KEPT_EXTRA = "not in the restoration point, kept: this mode never deletes"
    NOT_DELETED = "missing in the target but not deleted in the backup since the point"


@dataclass(frozen=True, slots=True)
class Action:
    """One step of a plan for one relative key."""

    kind: ActionKind
    key: str
    reason: Reason
    version_id: str | None = None  # the desired version (copies and skips of desired keys)
    size: int = 0
    etag: str | None = None
    storage_class: str | None = None
    target_etag: str | None = None  # what the target showed when planned
    target_size: int | None = None

    @property
    def archived(self) -> bool:
        return self.kind is ActionKind.COPY and self.storage_class in ARCHIVE_CLASSES

    @property
    def destroys(self) -> bool:
        """Whether it deletes or overwrites an object the target holds now."""
        return self.kind is ActionKind.DELETE or (
            self.kind is ActionKind.COPY and self.target_size is not None and not self.archived
        )

    def to_json(self) -> dict[str, Any]:
        """One planned action (``--dry-run --json``, docs/cli.md). ``size``: the bytes a copy
        writes, or those a delete removes; ``version_id``: the version a copy restores."""
        if self.archived:
            kind, reason = ActionKind.SKIP.value, f"in {self.storage_class}: {ARCHIVED_REASON}"
        else:
            kind, reason = self.kind.value, self.reason.value
        deleted = self.kind is ActionKind.DELETE
        return {
            "action": kind,
            "key": self.key,
            "version_id": self.version_id,
            "size": (self.target_size or 0) if deleted else self.size,
            "reason": reason,
        }

    def to_row(self) -> list[Any]:
        return [
            self.kind.value,
            self.key,
            self.reason.value,
            self.version_id,
            self.size,
            self.etag,
            self.storage_class,
            self.target_etag,
            self.target_size,
        ]

    @classmethod
    def from_row(cls, row: list[Any]) -> Action:
        kind, key, reason, *rest = row
        return cls(ActionKind(kind), key, Reason(reason), *rest)


@dataclass(frozen=True, slots=True)
class Destruction:
    """What a restore plan would delete or overwrite in its target, shown to ``confirm``
    before anything changes."""

    target: S3Url
    deletes: int
    overwrites: int
    nbytes: int  # what the target holds now under those keys
    first: tuple[Action, ...]  # the first of them, in key order (relative keys)
    versioned: bool | None  # the target keeps what is replaced as old versions (None: unknown)


Confirm = Callable[[Destruction], None]
"""Asks whether a destructive plan may run; returns to go on, raises to stop (nothing done)."""


class ArchivedVersions(BackupError):
    """The plan needs versions in an archive storage class; refused before any change."""

    def __init__(self, count: int, sample: list[Action]) -> None:
        shown = ", ".join(f"{a.key!r} ({a.storage_class})" for a in sample[:10])
        more = f" and {count - 10} more" if count > 10 else ""
        super().__init__(
            f"{count} version(s) to restore are in an archive storage class and cannot be "
            f"copied until restored from the archive: {shown}{more}",
            hint="restore them from the archive first (S3 RestoreObject), exclude them with "
            "--exclude, or pass --skip-archived to restore the rest (exit 3)",
        )
        self.count = count
        self.sample = sample


# --- planning (pure) -----------------------------------------------------------------------


class _Cursor:
    """A key-ascending stream with one entry of look-ahead, filtered, checked for order."""

    def __init__(self, entries: AsyncIterable[ObjectVersion], name: str, filters: KeyFilter):
        self._it = aiter(entries)
        self._name = name
        self._filters = filters
        self._last: str | None = None
        self.head: ObjectVersion | None = None

    async def advance(self) -> None:
        async for entry in self._it:
            if self._last is not None and entry.key <= self._last:
                raise BackupError(
                    f"the {self._name} is not in strictly ascending key order: "
                    f"{entry.key!r} after {self._last!r}",
                    hint="a restore plan from misordered input would be wrong; report this",
                )
            self._last = entry.key
            if self._filters.matches(entry.key):
                self.head = entry
                return
        self.head = None

    async def aclose(self) -> None:
        """Close the underlying stream early (an unfinished listing holds a connection)."""
        close = getattr(self._it, "aclose", None)
        if close is not None:
            await close()

    async def seek(self, key: str) -> ObjectVersion | None:
        """Advance to the first entry with a key ≥ ``key``; return it if its key is ``key``."""
        while self.head is not None and self.head.key < key:
            await self.advance()
        return self.head if self.head is not None and self.head.key == key else None


def _same(d: ObjectVersion, t: ObjectVersion, journal: Mapping[str, JournalEntry]) -> Reason | None:
    if d.size == t.size and d.etag == t.etag:
        return Reason.UNCHANGED
    done = journal.get(d.key)
    if done and (done.version_id, done.etag, done.size) == (d.version_id, t.etag, t.size):
        return Reason.DONE_EARLIER
    return None


def _desired_action(
    kind: ActionKind, reason: Reason, d: ObjectVersion, t: ObjectVersion | None
) -> Action:
    return Action(
        kind,
        d.key,
        reason,
        d.version_id,
        d.size,
        d.etag,
        d.storage_class,
        t.etag if t else None,
        t.size if t else None,
    )


async def plan_restore(
    desired: AsyncIterable[ObjectVersion],
    current: AsyncIterable[ObjectVersion],
    mode: Mode,
    filters: KeyFilter = ALL_KEYS,
    *,
    backup_current: AsyncIterable[ObjectVersion] | None = None,
    journal: Mapping[str, JournalEntry] | None = None,
) -> AsyncIterator[Action]:
    """One action per relative key in the union of both states, ascending.

    ``desired`` and ``current`` carry *relative* keys, strictly ascending, one entry per key
    (``current`` = the target's live objects). ``backup_current`` (the backup's live
    objects, relative keys) is needed in undelete mode only. ``journal`` maps keys to copies
    finished by an earlier run of the same restore. No I/O happens here beyond the streams.
    """
    if mode is Mode.UNDELETE and backup_current is None:
        raise ValueError("undelete mode needs the backup's current state")
    done = journal or {}
    want = _Cursor(desired, "restoration point", filters)
    have = _Cursor(current, "target listing", filters)
    backup = _Cursor(backup_current or _empty(), "backup listing", filters)
    try:
        async for action in _join(want, have, backup, mode, done):
            yield action
    finally:
        for cursor in (want, have, backup):
            await cursor.aclose()


async def _join(
    want: _Cursor, have: _Cursor, backup: _Cursor, mode: Mode, done: Mapping[str, JournalEntry]
) -> AsyncIterator[Action]:
    await want.advance()
    await have.advance()
    await backup.advance()
    while want.head is not None or have.head is not None:
        d, t = want.head, have.head
        if t is None or (d is not None and d.key < t.key):
            assert d is not None
            if mode is not Mode.UNDELETE:
                yield _desired_action(ActionKind.COPY, Reason.MISSING, d, None)
            elif await backup.seek(d.key) is None:
                yield _desired_action(ActionKind.COPY, Reason.DELETED_SINCE, d, None)
            else:
                yield _desired_action(ActionKind.SKIP, Reason.NOT_DELETED, d, None)
            await want.advance()
        elif d is None or t.key < d.key:
            if mode is Mode.ROLLBACK:
                yield Action(
                    ActionKind.DELETE, t.key, Reason.EXTRA, None, 0, None, None, t.etag, t.size
                )
            else:
                yield Action(
                    ActionKind.SKIP, t.key, Reason.KEPT_EXTRA, None, 0, None, None, t.etag, t.size
                )
            await have.advance()
        else:
            same = _same(d, t, done)
            if same is not None:
                yield _desired_action(ActionKind.SKIP, same, d, t)
            elif mode is Mode.ROLLBACK:
                yield _desired_action(ActionKind.COPY, Reason.CHANGED, d, t)
            else:
                yield _desired_action(ActionKind.SKIP, Reason.KEPT_DIFFERENT, d, t)
            await want.advance()
            await have.advance()


async def _empty() -> AsyncIterator[ObjectVersion]:
    return
    yield  # pragma: no cover


async def relative(
    entries: AsyncIterable[ObjectVersion], url: S3Url
) -> AsyncIterator[ObjectVersion]:
    """The same entries with keys relative to the folder ``url`` (they must all be in it; the
    folder's own marker key ``p/`` is not its content and is left out)."""
    async for entry in entries:
        key = url.relative(entry.key)
        if key is None:
            if entry.key == url.prefix:
                continue
            raise BackupError(f"key {entry.key!r} is not in the folder {url}")
        yield replace(entry, key=key) if url.prefix else entry


# --- the spooled plan ----------------------------------------------------------------------


@dataclass(slots=True)
class PlanSummary:
    """Totals of a plan (what ``--dry-run`` prints)."""

    copies: int = 0
    copy_bytes: int = 0
    deletes: int = 0
    skips: int = 0
    archived: int = 0
    archived_sample: list[Action] = field(default_factory=list)
    by_reason: dict[str, int] = field(default_factory=dict)
    overwrites: int = 0
    destroyed_bytes: int = 0  # what the target holds now under the keys deleted or overwritten
    destroyed_sample: list[Action] = field(default_factory=list)  # the first ones, in key order

    def add(self, action: Action) -> None:
        self.by_reason[action.reason.value] = self.by_reason.get(action.reason.value, 0) + 1
        if action.destroys:
            self.overwrites += action.kind is ActionKind.COPY
            self.destroyed_bytes += action.target_size or 0
            if len(self.destroyed_sample) < NAMED_DESTROYED:
                self.destroyed_sample.append(action)
        if action.archived:
            self.archived += 1
            if len(self.archived_sample) < MAX_LISTED_FAILURES:
                self.archived_sample.append(action)
        elif action.kind is ActionKind.COPY:
            self.copies += 1
            self.copy_bytes += action.size
        elif action.kind is ActionKind.DELETE:
            self.deletes += 1
        else:
            self.skips += 1


class _Spool:
    """The plan on local disk, one JSON row per action, re-read once per phase."""

    def __init__(self) -> None:
        self._file: IO[str] = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        self.summary = PlanSummary()

    def write(self, action: Action) -> None:
        self._file.write(json.dumps(action.to_row(), ensure_ascii=False) + "\n")
        self.summary.add(action)

    def read(self, want: Callable[[Action], bool] = lambda a: True) -> Iterator[Action]:
        self._file.flush()
        self._file.seek(0)
        for line in self._file:
            action = Action.from_row(json.loads(line))
            if want(action):
                yield action

    def close(self) -> None:
        self._file.close()


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
    verified: bool
    archived: int = 0
    resumed: int = 0  # finished items an earlier, interrupted run had journaled
    failures: tuple[ItemFailure, ...] = ()
    plan: PlanSummary = field(default_factory=PlanSummary)
    journal: str | None = None

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


async def _copy_one(sides: _Sides, action: Action) -> str:
    """Server-side copy of the exact version; return the ETag the target now has."""
    assert action.version_id is not None
    source = VersionRef(sides.backup.bucket, sides.backup.key(action.key), action.version_id)
    key = sides.target.key(action.key)
    version_id = await copy_version(
        sides.backup_store,
        source,
        sides.target_store,
        sides.target.bucket,
        key,
        size=action.size,
        etag=action.etag,
        storage_class=action.storage_class,  # None (unknown) costs a HEAD
        same_endpoint=sides.same_endpoint,
        **({"multipart_threshold": sides.multipart_threshold} if sides.multipart_threshold else {}),
    )
    if _single_part(action.etag) and action.size <= SINGLE_PUT_MAX:
        assert action.etag is not None
        return action.etag  # copied in one request: the MD5 ETag is kept
    # copied in parts: the ETag is the source's only when the part layout was kept (a
    # multipart source on a same-endpoint copy); ask, so verification and the journal know
    info = await sides.target_store.head(
        sides.target.bucket, key, None if version_id == NULL_VERSION else version_id
    )
    return info.etag


async def _copy_all(
    sides: _Sides,
    spool: _Spool,
    journal: Journal | None,
    tally: _Tally,
    workers: int,
    progress: Progress,
) -> None:
    summary = spool.summary
    progress.start("restore: copying", total=summary.copies, total_bytes=summary.copy_bytes)
    todo = spool.read(lambda a: a.kind is ActionKind.COPY and not a.archived)
    async for outcome in run_pool(todo, lambda a: _copy_one(sides, a), workers=workers):
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
    spool: _Spool,
    journal: Journal | None,
    tally: _Tally,
    workers: int,
    progress: Progress,
) -> None:
    progress.start("restore: deleting", total=spool.summary.deletes)

    async def delete(action: Action) -> None:
        await sides.target_store.delete(sides.target.bucket, sides.target.key(action.key))

    todo = spool.read(lambda a: a.kind is ActionKind.DELETE)
    async for outcome in run_pool(todo, delete, workers=workers):
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
    spool: _Spool,
    tally: _Tally,
    mode: Mode,
    filters: KeyFilter,
    progress: Progress,
) -> list[ItemFailure]:
    """List the target again and check it against the plan."""
    progress.start("restore: verifying")
    listing = _target_state(sides, filters)
    have = _Cursor(listing, "target listing", filters)
    await have.advance()
    problems: list[ItemFailure] = []
    for action in spool.read():
        while have.head is not None and have.head.key < action.key:
            if mode is Mode.ROLLBACK:
                problems.append(ItemFailure(have.head.key, None, "verify: not in the plan"))
            await have.advance()
        found = await have.seek(action.key)
        if found is not None:
            await have.advance()
        problem = _check(action, found, tally)
        if problem is not None:
            problems.append(ItemFailure(action.key, None, f"verify: {problem}"))
        progress.advance(1)
    while have.head is not None:
        if mode is Mode.ROLLBACK:
            problems.append(ItemFailure(have.head.key, None, "verify: not in the plan"))
        await have.advance()
    progress.finish()
    return problems


# --- the whole restore ---------------------------------------------------------------------


def _target_state(sides: _Sides, filters: KeyFilter) -> AsyncIterator[ObjectVersion]:
    return live_state(
        sides.target_store, sides.target, workers=sides.workers, within=filters.prefix
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
) -> _Spool:
    backup_current = None
    if mode is Mode.UNDELETE:
        backup_current = live_state(
            sides.backup_store, sides.backup, workers=sides.workers, within=filters.prefix
        )
    progress.start("restore: planning")
    spool = _Spool()
    try:
        async for action in plan_restore(
            relative(desired, sides.backup),
            _target_state(sides, filters),
            mode,
            filters,
            backup_current=backup_current,
            journal=journal,
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
    journal_dir: Path | None = None,
    progress: Progress | None = None,
    same_endpoint: bool = True,
    skip_archived: bool = False,
    multipart_threshold: int | None = None,
    confirm: Confirm | None = None,
    on_planned: Callable[[Action], None] | None = None,
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
    back from the spooled plan.
    """
    progress = progress or NullProgress()
    sides = _Sides(
        backup_store, backup, target_store, target, same_endpoint, multipart_threshold, workers
    )
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
            )
        if confirm is not None and (summary.deletes or summary.overwrites):
            confirm(await _destruction(sides, summary))
        return await _execute(sides, spool, journal, mode, filters, workers, progress)
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
    spool: _Spool,
    journal: Journal | None,
    mode: Mode,
    filters: KeyFilter,
    workers: int,
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
        journal.remove()
    return RestoreResult(
        copied=tally.copied,
        deleted=tally.deleted,
        skipped=summary.skips,
        failed=tally.failed,
        bytes_copied=tally.bytes_copied,
        dry_run=False,
        verified=not problems,
        archived=summary.archived,
        resumed=journal.earlier if journal else 0,
        failures=tuple(tally.failures),
        plan=summary,
        journal=str(journal.path) if journal and tally.failed else None,
    )
