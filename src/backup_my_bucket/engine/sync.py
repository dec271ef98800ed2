"""Sync: make the backup's current state equal the source's, losing nothing on the way.

*Plan* (pure): a merge-join of two key-sorted streams of current versions, keys relative to
each side's prefix: the source's current objects and the backup's current versions. Each key
becomes one :class:`SyncItem`: ``copy`` (new or changed), ``skip`` (unchanged) or ``delete``
(gone from the source: the backup gets a delete marker, older versions stay).

*Execute*: copies run first on a bounded worker pool (:func:`~.workers.run_pool`), then the
delete markers; a failed item is retried, then reported, and never stops the rest.

Both sides are listed with ListObjectVersions (key order on every server we know; SeaweedFS's
ListObjectsV2 is not in key order) and reduced to current versions, concurrently and ahead of
the copies (:func:`~.workers.prefetch`). Each listing is audited against ListObjectsV2; a short
one stops the plan (IncompleteListing) before any delete marker is written.

"Unchanged" (see docs/design.md, "Sync"): same size and same ETag. When the ETags cannot be
compared (a multipart ETag ``…-N`` on either side, e.g. a big object copied in parts of another
size, a server whose part-copy ETags are not MD5s, or no ETag at all), the backup copy counts
as current if it was written after the source version (``LastModified`` strictly later): a
source overwritten since then is newer than its copy and is copied again.

What the listings cannot tell is settled between plan and copies (:mod:`.confirm`): a
SeaweedFS chunk ETag is checked with HEAD before a key is copied for it, and a source object
not older than its backup copy has its headers and metadata compared (HEAD of both), so a
metadata-only change is backed up; ``compare_tags`` compares tags too.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..catalog.history import note_sync
from ..catalog.location import RESERVED, reserved_prefix
from ..clock import SYSTEM_CLOCK, Clock
from ..errors import (
    AccessDenied,
    BackupError,
    IncompleteListing,
    ItemFailure,
    StorageError,
    UsageError,
)
from ..model import NULL_VERSION, LifecycleRule, ObjectVersion, S3Url, Versioning
from ..storage.iterate import iter_versions
from ..storage.listing import ListingOptions
from ..storage.protocol import ObjectStore
from ..units import plural
from .actions import ActionKind
from .confirm import Checker, Side, Verdict
from .executor import IN_PROCESS, DeleteKey, Executor, Job
from .filters import KeyFilter, refuse_overlap
from .pace import Pace
from .progress import NullProgress, Progress
from .snapshot import ListedState, live_objects, live_state
from .transfer import DEFAULT_MULTIPART_THRESHOLD, CopyBetween
from .versions import Seen, current_state, require_versioning
from .workers import first_of_both, in_order, prefetch

OVERLAP_HINT = (
    "back up into another bucket, or into a folder beside the source's "
    "(s3://bucket/app1 -> s3://backups/app1)"
)
NOTHING_LISTED = datetime.min.replace(tzinfo=UTC)
PREFETCH = 5_000
"""Listing entries each side may hold ahead of the merge (about 1 MB each side)."""
LISTING_WORKERS = 16
"""Concurrent listing requests per side: a listing page is 1,000 keys, a copy one."""


@dataclass(frozen=True, slots=True)
class SyncItem:
    """One key of the plan; ``key`` is relative to the source and backup prefixes."""

    action: ActionKind
    key: str
    source: ObjectVersion | None = None
    backup: ObjectVersion | None = None

    @property
    def size(self) -> int:
        return self.source.size if self.source is not None else 0

    @property
    def reason(self) -> str:
        if self.action is ActionKind.COPY:
            return "missing in the backup" if self.backup is None else "changed"
        return "gone from the source" if self.action is ActionKind.DELETE else "unchanged"

    def to_json(self) -> dict[str, str | int | None]:
        """One planned action (``--dry-run --json``, docs/cli.md): the source version a copy
        reads, or the backup version a delete marker will hide."""
        version = self.source if self.source is not None else self.backup
        return {
            "action": self.action.value,
            "key": self.key,
            "version_id": version.version_id if version is not None else None,
            "size": version.size if version is not None else 0,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class SyncOptions:
    workers: int | Pace = 32  # copies (then delete markers) at once
    list_workers: int = 32  # listing requests at once (each side at most LISTING_WORKERS)
    dry_run: bool = False
    same_endpoint: bool = True
    multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD
    part_size: int | None = None
    key_filter: KeyFilter = field(default_factory=KeyFilter)
    compare_tags: bool = False
    listing: ListingOptions = field(default_factory=ListingOptions)
    executor: Executor = IN_PROCESS  # where the copies and deletes run (engine/executor.py)


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What a sync did (or, with ``dry_run``, would do). ``to_json`` is the CLI contract."""

    copied: int = 0
    deleted: int = 0
    skipped: int = 0
    failed: int = 0
    bytes_copied: int = 0
    dry_run: bool = False
    failures: tuple[ItemFailure, ...] = ()
    checks: int = 0  # HEAD and tag requests that settled what the listings could not tell
    incomplete: IncompleteListing | None = None  # a listing's audit found it short
    # the newest LastModified among every entry (versions and delete markers) the backup's
    # listing showed (NOTHING_LISTED: none; None: not known): a snapshot cut at or after it
    # holds everything the sync compared the source against
    newest_seen: datetime | None = field(default=None, compare=False)

    def held_at(self, cut: datetime) -> bool:
        """Whether a snapshot cut at ``cut`` holds everything this sync wrote and compared
        against: it wrote nothing (a failed copy may have) and saw nothing newer. Then
        ``backup`` need not wait for the next second before its snapshot (rule 8)."""
        wrote = self.copied or self.deleted or self.failed
        return not wrote and self.newest_seen is not None and self.newest_seen <= cut

    def to_json(self) -> dict[str, int | bool]:
        return {
            "copied": self.copied,
            "deleted": self.deleted,
            "skipped": self.skipped,
            "failed": self.failed,
            "bytes_copied": self.bytes_copied,
            "dry_run": self.dry_run,
            "checks": self.checks,
        }


# --- plan ------------------------------------------------------------------------------------


_MD5 = re.compile(r"^[0-9a-fA-F]{32}$")


def unchanged(source: ObjectVersion, backup: ObjectVersion) -> bool:
    """Whether the backup's current version already holds the source's current content.

    Same size and same ETag. Two single-part MD5 ETags that differ mean different bytes. Any
    other pair (a multipart ``…-N`` ETag on either side, a missing one) is not comparable:
    then a backup copy written strictly after the source version counts as current.
    """
    if source.size != backup.size:
        return False
    if source.etag and source.etag == backup.etag:
        return True
    if _MD5.match(source.etag or "") and _MD5.match(backup.etag or ""):
        return False
    return backup.last_modified > source.last_modified


async def _ascending(
    entries: AsyncIterable[ObjectVersion], side: str
) -> AsyncIterator[ObjectVersion]:
    previous: str | None = None
    async for entry in entries:
        if previous is not None and entry.key <= previous:
            raise StorageError(
                f"the {side} listing is out of order: {entry.key!r} after {previous!r}"
            )
        if entry.is_delete_marker:
            raise ValueError("plan_sync takes current versions, not delete markers")
        previous = entry.key
        yield entry


async def plan_sync(
    source: AsyncIterable[ObjectVersion],
    backup: AsyncIterable[ObjectVersion],
    key_filter: KeyFilter | None = None,
) -> AsyncIterator[SyncItem]:
    """Merge-join two strictly ascending streams of current versions (relative keys)."""
    in_scope = key_filter or KeyFilter()
    src_it = aiter(_ascending(source, "source"))
    bak_it = aiter(_ascending(backup, "backup"))
    src, bak = await first_of_both(src_it, bak_it)
    while src is not None or bak is not None:
        if bak is None or (src is not None and src.key < bak.key):
            assert src is not None
            item = SyncItem(ActionKind.COPY, src.key, src, None)
            src = await anext(src_it, None)
        elif src is None or bak.key < src.key:
            item = SyncItem(ActionKind.DELETE, bak.key, None, bak)
            bak = await anext(bak_it, None)
        else:
            action = ActionKind.SKIP if unchanged(src, bak) else ActionKind.COPY
            item = SyncItem(action, src.key, src, bak)
            src, bak = await anext(src_it, None), await anext(bak_it, None)
        if in_scope(item.key):
            yield item


async def settle_sync(
    plan: AsyncIterable[SyncItem], checker: Checker, workers: int
) -> AsyncIterator[SyncItem]:
    """The plan with what the listings could not tell settled (see :mod:`.confirm`): a copy
    caused only by an untrusted ETag may become a skip, a skip whose headers, metadata (or,
    with ``compare_tags``, tags) differ becomes a copy. A check that fails copies the key:
    a copy never loses anything, and fails visibly if the source cannot be read."""

    def needs(item: SyncItem) -> bool:
        if item.source is None or item.backup is None:
            return False
        return checker.needed(item.source, item.backup, item.action is ActionKind.SKIP)

    async def settle(item: SyncItem) -> SyncItem:
        assert item.source is not None and item.backup is not None
        settled = await checker.settle(item.source, item.backup, unchanged)
        action = ActionKind.SKIP if settled.verdict is Verdict.SAME else ActionKind.COPY
        return dataclasses.replace(item, action=action)

    async for outcome in in_order(plan, settle, needs=needs, workers=workers):
        if outcome.error is not None:
            yield dataclasses.replace(outcome.item, action=ActionKind.COPY)
        else:
            yield outcome.result or outcome.item


def current_listing(
    store: ObjectStore, url: S3Url, options: SyncOptions, seen: Seen | None = None
) -> AsyncIterator[ObjectVersion]:
    """The current versions in the folder ``url``, keys relative to it, ascending; the
    location's reserved folder left out; audited (a short listing ends the stream with
    IncompleteListing). ``seen`` notes the oldest and the newest entry listed
    there (versions and delete markers alike)."""
    workers = min(options.list_workers, LISTING_WORKERS)
    return live_state(store, url, workers=workers, seen=seen, listing=options.listing)


async def _stopping_at_writes(
    plan: AsyncIterable[SyncItem], listed: ListedState
) -> AsyncIterator[SyncItem]:
    async for item in plan:
        if item.action is not ActionKind.SKIP:
            listed.stop()  # the backup will change: its listing is no snapshot
        yield item


async def source_listing(
    store: ObjectStore, url: S3Url, options: SyncOptions
) -> AsyncIterator[ObjectVersion]:
    """The source's current objects, keys relative to its folder, ascending.

    A bucket whose versioning was never enabled holds one version of each key, ``null``: its
    ListObjectsV2 (:func:`.snapshot.live_objects`) is that state, with the objects' own ETags,
    at a fifth to a third of a version listing's server time on SeaweedFS, and complete there
    without an audit (docs/design.md, "A restore target's current state"). A versioned or
    suspended bucket is read from its versions, so that each copy pins the version listed, and
    so is a source whose versioning the credentials may not read (s3:GetBucketVersioning is
    optional on the source, docs/operations.md)."""
    try:
        versioning: Versioning | None = await store.get_versioning(url.bucket)
    except AccessDenied:
        versioning = None
    if versioning is Versioning.UNVERSIONED:
        rows = live_objects(store, url, listing=options.listing, version_id=NULL_VERSION)
    else:
        rows = current_listing(store, url, options)
    async for row in rows:
        yield row


async def refuse_reserved(store: ObjectStore, source: S3Url, key_filter: KeyFilter) -> None:
    """A source with keys in the reserved folder (in scope) would overwrite the backup's
    catalog and records: refused before anything is copied."""
    reserved = reserved_prefix(source)
    async for version in current_state(iter_versions(store, source.bucket, prefix=reserved)):
        relative = version.key[len(source.prefix) :]
        if key_filter(relative):
            raise UsageError(
                f"the source {source} has keys under {RESERVED} ({version.key!r}): that folder "
                "is where a backup keeps its catalog",
                hint=f"if this bucket is itself a backup, leave the folder out with --exclude "
                f"'{RESERVED}*'; otherwise rename those keys",
            )


# --- execute ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Tally:
    copied: int = 0
    deleted: int = 0
    skipped: int = 0
    bytes_copied: int = 0
    planned: int = 0
    planned_bytes: int = 0
    failures: list[ItemFailure] = field(default_factory=list)
    deletes: list[SyncItem] = field(default_factory=list)
    incomplete: IncompleteListing | None = None

    def result(self, dry_run: bool) -> SyncResult:
        return SyncResult(
            copied=self.copied,
            deleted=self.deleted,
            skipped=self.skipped,
            failed=len(self.failures),
            bytes_copied=self.bytes_copied,
            dry_run=dry_run,
            failures=tuple(self.failures),
            incomplete=self.incomplete,
        )


async def _copies(
    plan: AsyncIterable[SyncItem], tally: _Tally, progress: Progress
) -> AsyncIterator[SyncItem]:
    """The copy items of the plan; skips are counted, deletes kept for after the copies.

    A listing found short by its audit ends the plan: the copies under way finish, and no
    delete marker is written (a key missing from a short source listing is not deleted).
    """
    try:
        async for item in plan:
            if item.action is ActionKind.SKIP:
                tally.skipped += 1
                progress.advance(1)
            elif item.action is ActionKind.DELETE:
                tally.deletes.append(item)  # keys only: small even for a large deletion
            else:
                tally.planned += 1
                tally.planned_bytes += item.size
                yield item
    except IncompleteListing as exc:
        tally.incomplete = exc
        tally.deletes.clear()
    progress.total(tally.planned + tally.skipped + len(tally.deletes), tally.planned_bytes)


async def execute_sync(
    plan: AsyncIterable[SyncItem],
    source_store: ObjectStore,
    source_url: S3Url,
    backup_store: ObjectStore,
    backup_url: S3Url,
    options: SyncOptions,
    progress: Progress | None = None,
    on_planned: Callable[[SyncItem], None] | None = None,
) -> SyncResult:
    """Carry out a plan: copies first, then delete markers (never a version deleted).

    With ``options.dry_run`` nothing changes: ``on_planned`` sees each copy and delete of
    the plan, in key order, as it is planned (the CLI prints them).
    """
    report = progress or NullProgress()
    tally = _Tally()
    report.start("sync")
    if options.dry_run:
        async for item in plan:
            if item.action is ActionKind.SKIP:
                tally.skipped += 1
            else:
                tally.copied += item.action is ActionKind.COPY
                tally.deleted += item.action is ActionKind.DELETE
                tally.bytes_copied += item.size
                if on_planned is not None:
                    on_planned(item)
            report.advance(1)
        report.finish()
        return tally.result(dry_run=True)

    copy = SyncCopy(
        CopyBetween(
            source_url, backup_url, options.same_endpoint, options.multipart_threshold,
            options.part_size,
        )
    )  # fmt: skip
    both, workers = (source_store, backup_store), options.workers
    async for outcome in options.executor.map(
        _copies(plan, tally, report), Job(copy, both, workers)
    ):
        _record(outcome.item, outcome.error, tally, source_url)
        if outcome.error is None:
            tally.copied += 1
            tally.bytes_copied += outcome.item.size
        report.advance(1, outcome.item.size)

    delete: DeleteKey[SyncItem] = DeleteKey(backup_url)  # (a subscripted call fails: frozen)
    deletes = Job(delete, (backup_store,), workers)
    async for gone in options.executor.map(tally.deletes, deletes):
        _record(gone.item, gone.error, tally, backup_url)
        tally.deleted += gone.error is None
        report.advance(1)
    report.finish()
    return tally.result(dry_run=False)


@dataclass(frozen=True, slots=True)
class SyncCopy:
    """The copy unit (:mod:`.executor`): the listed source version (``stores[0]``) into the
    backup (``stores[1]``); returns the new version id."""

    copy: CopyBetween  # source folder -> backup folder

    @property
    def destination(self) -> S3Url:
        return self.copy.target

    async def __call__(self, stores: Sequence[ObjectStore], item: SyncItem) -> str:
        assert item.source is not None
        version = item.source.version_id
        return await self.copy(
            stores, item.key, None if version == NULL_VERSION else version,  # pin the listed one
            size=item.source.size, etag=item.source.etag, storage_class=item.source.storage_class,
        )  # fmt: skip


def _record(item: SyncItem, error: BackupError | None, tally: _Tally, where: S3Url) -> None:
    if error is not None:
        version = item.source.version_id if item.source is not None else None
        reason = f"{item.action.value}: {error.message}"
        tally.failures.append(ItemFailure(where.key(item.key), version, reason))


async def sync(
    source_store: ObjectStore,
    source_url: S3Url,
    backup_store: ObjectStore,
    backup_url: S3Url,
    options: SyncOptions,
    progress: Progress | None = None,
    on_planned: Callable[[SyncItem], None] | None = None,
    clock: Clock = SYSTEM_CLOCK,
    listed: ListedState | None = None,
) -> SyncResult:
    """Check both buckets, list both sides concurrently, plan and execute a sync.

    A sync that completes (not a dry run, no failures) records where the backup's history
    begins, unless that is known: the oldest entry the backup held before it, else (an empty
    backup) this sync's end (catalog/history.py). ``listed`` records the backup's listing
    as a snapshot index until the plan holds a write (``backup`` then need not list again)."""
    if options.same_endpoint:
        refuse_overlap(
            ("the source", source_url),
            ("the backup", backup_url),
            hint=OVERLAP_HINT,
        )
    seen = Seen()
    await source_store.check_bucket(source_url.bucket)
    await backup_store.check_bucket(backup_url.bucket)
    await require_versioning(backup_store, backup_url.bucket)
    await refuse_reserved(source_store, source_url, options.key_filter)
    backup_rows = current_listing(backup_store, backup_url, options, seen)
    if listed is not None:
        backup_rows = listed.tap(backup_rows)
    plan = plan_sync(
        prefetch(source_listing(source_store, source_url, options), PREFETCH),
        prefetch(backup_rows, PREFETCH),
        options.key_filter,
    )
    checker = Checker(
        Side(source_store, source_url),
        Side(backup_store, backup_url),
        compare_tags=options.compare_tags,
    )
    settled = settle_sync(plan, checker, Pace.now(options.workers))
    result = await execute_sync(
        settled if listed is None else _stopping_at_writes(settled, listed),
        source_store, source_url, backup_store, backup_url, options, progress, on_planned,
    )  # fmt: skip
    if not options.dry_run and not result.failures:
        await note_sync(backup_store, backup_url, seen.oldest, clock.now())
    newest_seen = seen.newest or NOTHING_LISTED
    return dataclasses.replace(result, checks=checker.requests, newest_seen=newest_seen)


def lifecycle_warnings(rules: Sequence[LifecycleRule], prefix: str) -> list[str]:
    """Lifecycle rules on the backup bucket that would destroy history restores need."""
    warnings: list[str] = []
    for rule in rules:
        overlaps = prefix.startswith(rule.prefix) or rule.prefix.startswith(prefix)
        if not rule.enabled or not overlaps:
            continue
        name = f"lifecycle rule {rule.id or '(no id)'!r} on prefix {rule.prefix!r}"
        if rule.noncurrent_expiration_days is not None:
            warnings.append(
                f"{name} expires noncurrent versions after "
                f"{plural(rule.noncurrent_expiration_days, 'day')}: restoration points older "
                "than that will lose their data"
            )
        if rule.expiration_days is not None:
            warnings.append(
                f"{name} expires current objects after {plural(rule.expiration_days, 'day')}: "
                "backups then look deleted until the next sync copies them again"
            )
    return warnings
