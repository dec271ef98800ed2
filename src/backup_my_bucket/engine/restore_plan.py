"""The restore plan (pure): what to do with each key, and the plan spooled to disk.

:func:`plan_restore` merge-joins the desired state (the restoration point, relative keys) with
the target's live state into one :class:`Action` per key: copy, delete or skip, with a
reason. :class:`Spool` keeps the whole plan in a local temporary file, one JSON row per
action, so its totals (:class:`PlanSummary`: copies, bytes, deletes, overwrites, archived
versions) are known before anything changes while memory stays flat; execution and
verification (engine/restore_execute.py) read it back. No I/O here beyond the streams and the
spool, except the requests of a :class:`~.confirm.Checker` for the keys the listings cannot
decide (an untrusted ETag, a target object not older than the point's version).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import IO, Any

from ..catalog.location import reserved_prefix
from ..errors import BackupError
from ..model import ObjectVersion, S3Url
from ..units import plural
from .actions import ActionKind
from .confirm import Checker, Settled, Verdict
from .filters import ALL_KEYS, KeyFilter
from .journal import JournalEntry
from .workers import in_order

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
    ATTRIBUTES_CHANGED = "headers or metadata differ from the restoration point"
    TAGS_CHANGED = "tags differ from the restoration point"
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
            f"{plural(count, 'version')} to restore are in an archive storage class and cannot be "
            f"copied until restored from the archive: {shown}{more}",
            hint="restore them from the archive first (S3 RestoreObject), exclude them with "
            "--exclude, or pass --skip-archived to restore the rest (exit 3)",
        )
        self.count = count
        self.sample = sample


# --- planning (pure) -----------------------------------------------------------------------


class KeyCursor:
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
    if done and (done.version_id, done.src_etag, done.etag, done.size) == (
        d.version_id, d.etag, t.etag, t.size
    ):  # fmt: skip
        return Reason.DONE_EARLIER
    return None


_CHANGED: dict[Verdict | None, Reason] = {
    None: Reason.CHANGED,
    Verdict.CONTENT: Reason.CHANGED,
    Verdict.ATTRIBUTES: Reason.ATTRIBUTES_CHANGED,
    Verdict.TAGS: Reason.TAGS_CHANGED,
}


@dataclass(frozen=True, slots=True)
class _Pair:
    """A key in both states that needs requests before it is decided (see :mod:`.confirm`)."""

    desired: ObjectVersion
    target: ObjectVersion


def _both(
    d: ObjectVersion,
    t: ObjectVersion,
    mode: Mode,
    done: Mapping[str, JournalEntry],
    settled: Settled | None = None,
) -> Action:
    """The action for a key in both states; ``settled``: what requests found out. The action
    records the target as listed: verification lists it again and expects the same."""
    if settled is None:
        same = _same(d, t, done)
    else:
        same = _same(settled.backup, settled.live, done)
        same = same if settled.verdict is Verdict.SAME else None
    if same is not None:
        return _desired_action(ActionKind.SKIP, same, d, t)
    if mode is Mode.ROLLBACK:
        verdict = settled.verdict if settled is not None else None
        return _desired_action(ActionKind.COPY, _CHANGED[verdict], d, t)
    return _desired_action(ActionKind.SKIP, Reason.KEPT_DIFFERENT, d, t)


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
    checker: Checker | None = None,
    workers: int = 32,
) -> AsyncIterator[Action]:
    """One action per relative key in the union of both states, ascending.

    ``desired`` and ``current`` carry *relative* keys, strictly ascending, one entry per key
    (``current`` = the target's live objects). ``backup_current`` (the backup's live
    objects, relative keys) is needed in undelete mode only. ``journal`` maps keys to copies
    finished by an earlier run of the same restore. Without ``checker`` no I/O happens here
    beyond the streams; with it, the keys the listings cannot decide are settled by its
    requests, ``workers`` at a time, in key order.
    """
    if mode is Mode.UNDELETE and backup_current is None:
        raise ValueError("undelete mode needs the backup's current state")
    done = journal or {}
    want = KeyCursor(desired, "restoration point", filters)
    have = KeyCursor(current, "target listing", filters)
    backup = KeyCursor(backup_current or _empty(), "backup listing", filters)

    def same(t: ObjectVersion, d: ObjectVersion) -> bool:
        return _same(d, t, done) is not None

    def needs(step: Action | _Pair) -> bool:
        return isinstance(step, _Pair)

    async def settle(step: Action | _Pair) -> Settled:
        assert isinstance(step, _Pair) and checker is not None
        return await checker.settle(step.target, step.desired, same)

    try:
        steps = _join(want, have, backup, mode, done, checker)
        async for outcome in in_order(steps, settle, needs=needs, workers=workers):
            step = outcome.item
            if isinstance(step, Action):
                yield step
                continue
            # a check that failed counts as "differs": rollback copies (a copy loses nothing
            # and fails visibly if the version cannot be read), the other modes keep
            settled = outcome.result or Settled(Verdict.CONTENT, step.target, step.desired)
            yield _both(step.desired, step.target, mode, done, settled)
    finally:
        for cursor in (want, have, backup):
            await cursor.aclose()


async def _join(
    want: KeyCursor,
    have: KeyCursor,
    backup: KeyCursor,
    mode: Mode,
    done: Mapping[str, JournalEntry],
    checker: Checker | None,
) -> AsyncIterator[Action | _Pair]:
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
            if checker is not None and checker.needed(t, d, _same(d, t, done) is not None):
                yield _Pair(d, t)
            else:
                yield _both(d, t, mode, done)
            await want.advance()
            await have.advance()


async def _empty() -> AsyncIterator[ObjectVersion]:
    return
    yield  # pragma: no cover


async def relative(
    entries: AsyncIterable[ObjectVersion], url: S3Url
) -> AsyncIterator[ObjectVersion]:
    """The same entries with keys relative to the folder ``url`` (they must all be in it; the
    folder's own marker key ``p/`` is not its content and is left out, nor is its reserved
    folder: a backup's catalog and records are never restored)."""
    reserved = reserved_prefix(url)
    async for entry in entries:
        if entry.key.startswith(reserved):
            continue
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


class Spool:
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
