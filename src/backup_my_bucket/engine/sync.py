"""Sync: make the backup's current state equal the source's, losing nothing on the way.

*Listings*: the backup's current versions, from ListObjectVersions (key order on every server
we know), audited against ListObjectsV2; the source's likewise, unless its versioning was
never enabled: then its ListObjectsV2, sorted (:func:`source_listing`). Both start at once and
run ahead of the copies (:func:`~.workers.first_of_both`, :func:`~.workers.prefetch`); a
listing found short stops the plan (IncompleteListing) before any delete marker is written.

*Plan* (pure, :mod:`.sync_plan`): a merge-join of the two streams, keys relative to each
side's folder, into ``copy``, ``skip`` and ``delete`` items; what the listings cannot tell is
settled there (HEAD of a chunk ETag, headers of a source not older than its copy, tags with
``compare_tags``).

*Execute*: copies run first on a bounded worker pool (:func:`~.workers.run_pool`), then the
delete markers; a failed item is retried, then reported, and never stops the rest.

``listed`` (``backup``): the backup's listing is recorded as a snapshot index until the plan
holds a write (:class:`~.snapshot.ListedState`, design rule 8).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..catalog.history import note_sync
from ..catalog.location import RESERVED, reserved_prefix
from ..clock import SYSTEM_CLOCK, Clock
from ..errors import (
    BackupError,
    IncompleteListing,
    ItemFailure,
    NotFoundError,
    StorageError,
    UsageError,
)
from ..model import NULL_VERSION, LifecycleRule, ObjectVersion, S3Url, Versioning
from ..storage.iterate import iter_versions
from ..storage.listing import ListingOptions
from ..storage.protocol import ObjectStore
from ..units import plural
from .actions import ActionKind
from .confirm import Checker, Side
from .executor import IN_PROCESS, DeleteKey, Executor, Job
from .filters import KeyFilter, refuse_overlap
from .pace import Pace
from .progress import NullProgress, Progress
from .snapshot import ListedState, live_objects, live_state
from .sync_plan import SyncItem, plan_sync, settle_sync, stopping_at_writes
from .transfer import DEFAULT_MULTIPART_THRESHOLD, CopyBetween
from .versions import Seen, current_state, require_versioning
from .workers import prefetch

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


# --- listings --------------------------------------------------------------------------------


def current_listing(
    store: ObjectStore,
    url: S3Url,
    options: SyncOptions,
    seen: Seen | None = None,
    cut: datetime | None = None,
) -> AsyncIterator[ObjectVersion]:
    """The current versions in the folder ``url``, keys relative to it, ascending; the
    location's reserved folder left out; audited (a short listing ends the stream with
    IncompleteListing). ``seen`` notes the oldest and the newest entry listed
    there (versions and delete markers alike). Its ranges run where the executor runs the
    copies (on a cluster: storage/rangejob.py)."""
    workers = min(options.list_workers, LISTING_WORKERS)
    return live_state(
        store, url, workers=workers, seen=seen, listing=options.listing, cut=cut,
        ranges=options.executor.ranges(store),
    )  # fmt: skip


async def source_listing(
    store: ObjectStore, url: S3Url, options: SyncOptions
) -> AsyncIterator[ObjectVersion]:
    """The source's current objects, keys relative to its folder, ascending.

    A bucket whose versioning was never enabled holds one version of each key, ``null``: its
    ListObjectsV2 (:func:`.snapshot.live_objects`) is that state, with the objects' own ETags,
    at a fifth to a third of a version listing's server time on SeaweedFS, and complete there
    without an audit (docs/design.md, "A restore target's current state"). A versioned or
    suspended bucket is read from its versions, so that each copy pins the version listed, and
    so is a source whose versioning cannot be read (s3:GetBucketVersioning is optional on the
    source, docs/operations.md; some servers do not answer it)."""
    try:
        versioning: Versioning | None = await store.get_versioning(url.bucket)
    except (StorageError, NotFoundError):  # denied, or a server without it: versions tell
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
    cut = await listed.begin(backup_store, backup_url) if listed is not None else None
    backup_rows = current_listing(backup_store, backup_url, options, seen, cut)
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
        settled if listed is None else stopping_at_writes(settled, listed),
        source_store, source_url, backup_store, backup_url, options, progress, on_planned,
    )  # fmt: skip
    noted = not options.dry_run and not result.failures
    if noted and await note_sync(backup_store, backup_url, seen.oldest, clock.now()) and listed:
        # written outside the catalog lock: on a server without conditional writes it may
        # have replaced a gc's record (rule 21), which the listing's use relies on
        listed.stop()
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
