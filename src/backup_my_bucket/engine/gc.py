"""Garbage collection: drop expired snapshots, then the versions no restoration point needs.

The plan (which entries no restoration point needs) is :mod:`.gc_plan`'s.

Ordering (docs/design.md): expired snapshots leave the catalog first (with what killed runs
left in it), versions are deleted second. A crash in between leaves versions that nothing
references, which the next gc deletes: it plans from the listing and the remaining snapshots,
whatever an earlier run already did.

A refused deletion is "kept, locked" only when Object Lock explains it: a HEAD of the version
shows a legal hold or a retention date still ahead. Servers answer a locked version and a
missing permission alike (SeaweedFS: ``AccessDenied: Access Denied.`` for both), so the answer's
text decides nothing; any refusal the HEAD does not explain is a failure (exit 3).
"""

from __future__ import annotations

from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Sequence,
)
from dataclasses import dataclass, field, replace
from datetime import datetime

from ..catalog.catalog import Catalog, Damaged
from ..catalog.finder import refuse_unmigrated
from ..catalog.history import note_gc
from ..catalog.index import SnapshotMeta
from ..catalog.location import reserved_prefix
from ..catalog.tidy import tidy_reserved
from ..clock import Clock
from ..errors import BackupError, CatalogError, ItemFailure, Locked, PartialFailure, UsageError
from ..model import ObjectVersion, S3Url, VersionRef
from ..storage.iterate import iter_versions
from ..storage.listing import ListingOptions
from ..storage.protocol import MAX_DELETE_BATCH, ObjectStore
from ..units import format_time, plural
from .cut import server_now
from .executor import IN_PROCESS, Executor, Job
from .gc_plan import (
    IndexHolds,
    RestorePoints,
    lifecycle_warnings,
    plan_gc,
    stale_upload_warnings,
)
from .pace import Pace
from .progress import NullProgress, Progress
from .retention import Decision, RetentionPolicy, SnapshotRef, apply_policy
from .versions import require_versioning
from .workers import batched, run_pool

LOCK_CHECK_WORKERS = 8
"""Concurrent HEADs per delete batch that check refused versions for Object Lock."""


@dataclass(slots=True)
class _Tally:
    versions: int = 0
    delete_markers: int = 0
    nbytes: int = 0
    skipped_locked: list[ItemFailure] = field(default_factory=list)
    failures: list[ItemFailure] = field(default_factory=list)

    def count(self, entry: ObjectVersion) -> None:
        self.versions += 1
        self.delete_markers += entry.is_delete_marker
        self.nbytes += 0 if entry.is_delete_marker else entry.size


async def lock_of(
    store: ObjectStore, bucket: str, refused: ItemFailure, now: datetime
) -> ItemFailure | None:
    """``refused`` restated as "kept by Object Lock" when a HEAD of the version shows a lock in
    force at ``now``; None when nothing locks it (a delete marker, an unreadable version)."""
    if refused.version_id is None:
        return None
    try:
        info = await store.head(bucket, refused.key, refused.version_id)
    except BackupError:
        return None
    if not info.locked(now):
        return None
    if info.legal_hold:
        lock = "a legal hold"
    else:
        assert info.lock_until is not None
        lock = f"{info.lock_mode} retention until {format_time(info.lock_until)}"
    return ItemFailure(refused.key, refused.version_id, f"kept by Object Lock: {lock}")


async def _sort_refusals(
    store: ObjectStore, bucket: str, refused: Sequence[ItemFailure], now: datetime
) -> list[tuple[ItemFailure, ItemFailure | None]]:
    """Each refused deletion with its Object Lock (None: a failure)."""

    async def check(failure: ItemFailure) -> ItemFailure | None:
        return await lock_of(store, bucket, failure, now)

    sorted_: list[tuple[ItemFailure, ItemFailure | None]] = []
    workers = max(1, min(LOCK_CHECK_WORKERS, len(refused)))
    async for outcome in run_pool(refused, check, workers=workers, attempts=1):
        sorted_.append((outcome.item, outcome.result))
    return sorted_


@dataclass(frozen=True, slots=True)
class DeleteVersions:
    """The delete unit (:mod:`.executor`): one DeleteObjects request of exact version ids in
    ``bucket`` (``stores[0]``), each refusal paired with the Object Lock that explains it
    (None: a failure). Idempotent: a version deleted twice is simply gone."""

    bucket: str
    now: datetime

    @property
    def destination(self) -> S3Url:
        return S3Url(self.bucket)

    async def __call__(
        self, stores: Sequence[ObjectStore], batch: list[ObjectVersion]
    ) -> list[tuple[ItemFailure, ItemFailure | None]]:
        store = stores[0]
        refs = [VersionRef(self.bucket, e.key, e.version_id) for e in batch]
        refused = await store.delete_versions(self.bucket, refs)
        return await _sort_refusals(store, self.bucket, refused, self.now)


async def execute_deletions(
    store: ObjectStore,
    bucket: str,
    plan: AsyncIterable[ObjectVersion],
    *,
    workers: int | Pace,
    progress: Progress,
    now: datetime,
    batch_size: int = MAX_DELETE_BATCH,
    guard: Guard | None = None,
    executor: Executor = IN_PROCESS,
) -> _Tally:
    """Delete the planned entries in batches of ≤ 1,000, ``workers`` batches at a time; a
    refused deletion is skipped if Object Lock keeps the version at ``now``, else a failure.

    ``guard`` runs before each batch (the catalog lock's check): when it raises Locked,
    no batch starts any more and the error propagates."""
    if not 1 <= batch_size <= MAX_DELETE_BATCH:
        raise ValueError(f"batch_size must be within 1..{MAX_DELETE_BATCH}")
    tally = _Tally()
    work = DeleteVersions(bucket, now)
    before = None if guard is None else lambda: guard("its next batch of deletions")
    batches = batched(plan, batch_size)
    run = executor.map(batches, Job(work, (store,), workers, before=before, unit_size=1))
    async for outcome in run:
        batch = outcome.item
        if isinstance(outcome.error, Locked):
            raise outcome.error  # the lock is lost: stop before anything more is deleted
        if outcome.error is not None:  # the whole request failed: every item is a failure
            reason = outcome.error.message
            tally.failures += [ItemFailure(e.key, e.version_id, reason) for e in batch]
            continue
        failed: dict[tuple[str, str | None], ItemFailure] = {}
        for failure, locked in outcome.result or []:
            failed[(failure.key, failure.version_id)] = failure
            if locked is not None:
                tally.skipped_locked.append(locked)
            else:
                tally.failures.append(failure)
        done = [e for e in batch if (e.key, e.version_id) not in failed]
        for entry in done:
            tally.count(entry)
        progress.advance(len(done), sum(e.size for e in done if not e.is_delete_marker))
    return tally


async def _count_only(
    plan: AsyncIterable[ObjectVersion],
    on_planned: Callable[[ObjectVersion], None] | None,
    progress: Progress,
) -> _Tally:
    tally = _Tally()
    async for entry in plan:
        tally.count(entry)
        progress.advance(1, 0 if entry.is_delete_marker else entry.size)
        if on_planned is not None:
            on_planned(entry)
    return tally


@dataclass(frozen=True, slots=True)
class GcResult:
    """What gc did (or, with ``dry_run``, would do). :meth:`to_json` is the CLI's ``--json``."""

    snapshots_removed: tuple[str, ...]
    snapshots_kept: tuple[str, ...]
    versions_deleted: int  # delete markers included
    delete_markers_deleted: int
    bytes_freed: int
    dry_run: bool
    decisions: tuple[Decision, ...] = ()  # newest first, with reasons (for --dry-run display)
    skipped_locked: tuple[ItemFailure, ...] = ()
    failures: tuple[ItemFailure, ...] = ()
    warnings: tuple[str, ...] = ()
    catalog_leftovers: tuple[str, ...] = ()  # files of interrupted runs swept from the catalog
    records_tidied: int = 0  # noncurrent entries deleted from the reserved folder (tidy.py)
    records_bytes: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            "snapshots_removed": list(self.snapshots_removed),
            "snapshots_kept": list(self.snapshots_kept),
            "catalog_leftovers_removed": list(self.catalog_leftovers),
            "catalog_versions_removed": self.records_tidied,
            "versions_deleted": self.versions_deleted,
            "delete_markers_deleted": self.delete_markers_deleted,
            "bytes_freed": self.bytes_freed,
            "dry_run": self.dry_run,
            "skipped_locked": [_failure_json(f) for f in self.skipped_locked],
            "failures": [_failure_json(f) for f in self.failures],
            "warnings": list(self.warnings),
            "decisions": [
                {"id": d.snapshot.id, "keep": d.keep, "reasons": list(d.reasons)}
                for d in self.decisions
            ],
        }


def _failure_json(failure: ItemFailure) -> dict[str, object]:
    return {"key": failure.key, "version_id": failure.version_id, "reason": failure.reason}


class GcPartialFailure(PartialFailure):
    """Some deletions failed (exit 3); ``result`` says what was done all the same."""

    def __init__(self, result: GcResult) -> None:
        super().__init__(
            f"gc could not delete {plural(len(result.failures), 'version')}; the rest is done",
            result.failures,
        )
        self.result = result


RemoveSnapshots = Callable[[Sequence[str]], Awaitable[None]]
Guard = Callable[[str], Awaitable[None]]
OnPruned = Callable[["RestorePoints"], Awaitable[None]]
Leftovers = Callable[[], Awaitable[Sequence[str]]]
Sweep = Callable[[Sequence[str]], Awaitable[None]]
IndexRows = Callable[[str], Awaitable[Iterator[tuple[str, str]]]]
"""A snapshot's index rows by its id, as (absolute key, version id) in key order."""


async def run_gc(
    store: ObjectStore,
    bucket: str,
    prefix: str,
    snapshots: Sequence[SnapshotRef],
    policy: RetentionPolicy,
    now: datetime,
    *,
    remove_snapshots: RemoveSnapshots,
    leftovers: Leftovers | None = None,
    sweep: Sweep | None = None,
    dry_run: bool = False,
    workers: int | Pace = 8,  # deletion batches at once
    list_workers: int = 8,  # listing requests at once
    progress: Progress | None = None,
    on_planned: Callable[[ObjectVersion], None] | None = None,
    guard: Guard | None = None,
    on_pruned: OnPruned | None = None,
    listing: ListingOptions | None = None,
    executor: Executor = IN_PROCESS,
    index_rows: IndexRows | None = None,
) -> GcResult:
    """Apply ``policy`` to every snapshot of the backup at ``s3://bucket/prefix`` and collect.

    ``prefix`` is a folder (``site`` means ``site/``): no key outside it is ever deleted.

    The caller holds the catalog lock and passes *all* the catalog's snapshots of this backup.
    ``remove_snapshots`` drops ids from the catalog; it runs before any version is deleted.
    ``leftovers`` lists what killed runs left in the catalog (an index without its manifest, a
    temporary file) and ``sweep`` removes it, right after ``remove_snapshots``: a gc killed
    between a manifest and its index leaves such an index, and its rerun removes it.
    With ``dry_run``, nothing is removed or deleted and ``on_planned`` (if given) sees each
    entry that would be deleted, so the CLI can list them.
    ``guard`` (the catalog lock's check) runs before the catalog removals and before each
    batch of deletions; ``on_pruned`` records what the run makes unrestorable, after the
    catalog removals and before the first deletion. The location's reserved folder (its
    catalog and records) is never touched. ``executor`` runs the batches of deletions
    (:mod:`.executor`); the plan, the guard and the catalog stay in this process.
    ``index_rows`` reads the index of a kept snapshot that holds all of it (``holds_index``),
    opened before anything is removed or deleted: a damaged one stops gc there.
    Raises UsageError for an empty policy or when nothing at all would stay restorable, and
    GcPartialFailure (exit 3, with the result) when some deletions failed.
    """
    progress = progress or NullProgress()
    decisions = apply_policy(snapshots, policy, now)
    kept = tuple(d.snapshot.id for d in decisions if d.keep)
    removed = tuple(d.snapshot.id for d in decisions if not d.keep)
    kept_refs = [d.snapshot for d in decisions if d.keep]
    held = frozenset[tuple[str, str]]().union(*(ref.held for ref in kept_refs))
    points = RestorePoints.build((ref.at for ref in kept_refs), policy.pit_window, now, held)
    if points.empty and snapshots:
        raise UsageError(
            f"the policy would remove all {len(snapshots)} snapshots and every old version",
            hint="set --min-keep 1 (or more), or widen the policy",
        )
    indexes = None
    if whole := [ref.id for ref in kept_refs if ref.holds_index]:
        if index_rows is None:
            raise AssertionError(f"snapshots {whole} hold their indexes: gc needs to read them")
        indexes = IndexHolds([await index_rows(i) for i in whole])
    guard = guard if guard is not None and not dry_run else None
    if removed and not dry_run:
        if guard is not None:
            await guard("removing expired snapshots from the catalog")
        await remove_snapshots(removed)  # catalog first: see the ordering rules
    swept = tuple(await leftovers()) if leftovers is not None else ()
    if swept and sweep is not None and not dry_run:
        if guard is not None:
            await guard("sweeping the catalog")
        await sweep(swept)
    if points.empty:
        # Nothing references history yet: deleting it all is never what a user means.
        warning = "no snapshots yet: gc deletes no versions until a snapshot exists"
        return GcResult((), (), 0, 0, 0, dry_run, warnings=(warning,), catalog_leftovers=swept)
    backup = S3Url(bucket, prefix)
    warnings = await _lifecycle_check(store, bucket, backup.prefix, points, now)
    if on_pruned is not None and not dry_run:
        await on_pruned(points)  # the narrower span first: see catalog/history.py
    listing = listing or ListingOptions()
    versions = iter_versions(
        store, bucket, prefix=backup.prefix, workers=list_workers, page_size=listing.page_size,
        paging=listing.paging,
    )  # fmt: skip
    plan = plan_gc(_content(versions, backup), points, indexes)
    tally = await _collect(
        store, bucket, plan, dry_run, workers, progress, on_planned, now, guard, executor
    )
    result = GcResult(
        removed,
        kept,
        tally.versions,
        tally.delete_markers,
        tally.nbytes,
        dry_run,
        tuple(decisions),
        tuple(tally.skipped_locked),
        tuple(tally.failures),
        tuple(warnings),
        swept,
    )
    if result.failures:
        raise GcPartialFailure(result)
    return result


async def gc_catalog(
    store: ObjectStore,
    catalog: Catalog,
    backup: S3Url | None,
    policy: RetentionPolicy,
    clock: Clock,
    *,
    dry_run: bool = False,
    workers: int | Pace = 8,  # deletion batches at once
    list_workers: int = 8,  # listing requests at once
    progress: Progress | None = None,
    on_planned: Callable[[ObjectVersion], None] | None = None,
    listing: ListingOptions | None = None,
    executor: Executor = IN_PROCESS,
) -> GcResult:
    """The whole `gc` command: under the catalog lock, collect the backup at ``backup``
    (default: the one location the catalog's snapshots record) with :func:`run_gc`.

    ``catalog`` must be the one the backup names (the caller opened it for writing). gc
    stops rather than guess: on a snapshot whose manifest is unreadable (exit 1), and while
    this machine's old local catalogs hold snapshots of the backup that ``catalog`` lacks
    (exit 2). It checks its lock before every destructive step and records what it prunes
    (catalog/history.py) before the first deletion. Ages and windows are measured from the
    server's clock (engine/cut.py), which stamps the versions and cuts the snapshots."""
    async with catalog.lock("gc") as lease:
        scanned = await catalog.scan()
        if scanned.unreadable:
            raise cannot_tell(scanned.unreadable)
        url = backup or backup_of(scanned.snapshots)
        await require_versioning(store, url.bucket)
        await refuse_unmigrated(catalog, url)
        now = await server_now(store, url.bucket, clock)
        mine = [m for m in scanned.snapshots if m.of(url)]

        async def pruned(points: RestorePoints) -> None:
            if points.keep_from is not None:
                await note_gc(store, url, points.instants, points.keep_from)

        by_id = {m.id: m for m in mine}

        async def index_rows(snapshot_id: str) -> Iterator[tuple[str, str]]:
            reader = await catalog.open_index(by_id[snapshot_id])  # checked against its sum
            return ((url.key(key), version) for key, version in reader.refs())

        result = await run_gc(
            store,
            url.bucket,
            url.prefix,
            [
                SnapshotRef(
                    m.id, m.at, frozenset((url.key(k), v) for k, v in m.held), m.holds_index
                )
                for m in mine
            ],
            policy,
            now,
            remove_snapshots=catalog.remove,
            leftovers=catalog.leftovers,
            sweep=catalog.sweep,
            dry_run=dry_run,
            workers=workers,
            list_workers=list_workers,
            progress=progress,
            listing=listing,
            on_planned=on_planned,
            guard=lease.check,
            on_pruned=pruned,
            executor=executor,
            index_rows=index_rows,
        )
        if not dry_run:
            await lease.check("tidying the catalog's folder")
        tidied = await tidy_reserved(store, url, dry_run=dry_run)
        sorted_ = await _sort_refusals(store, url.bucket, tidied.refused, now)
        result = replace(
            result, records_tidied=tidied.deleted, records_bytes=tidied.nbytes,
            skipped_locked=(*result.skipped_locked, *(lock for _, lock in sorted_ if lock)),
            failures=tuple(refused for refused, lock in sorted_ if lock is None),
        )  # fmt: skip
        if result.failures:
            raise GcPartialFailure(result)
        return result


def backup_of(metas: Sequence[SnapshotMeta]) -> S3Url:
    """The one backup location a catalog's snapshots record (else a usage error)."""
    backups = sorted({str(S3Url.parse(m.backup)) for m in metas})
    if len(backups) != 1:
        raise UsageError(
            "cannot tell which backup to collect"
            + (f": the catalog holds snapshots of {', '.join(backups)}" if backups else ""),
            hint="name it with --backup s3://bucket[/prefix]",
        )
    return S3Url.parse(backups[0])


async def _content(
    entries: AsyncIterable[ObjectVersion], backup: S3Url
) -> AsyncIterator[ObjectVersion]:
    """The entries that are the folder's content: not its own marker key, nor its reserved
    folder (the backup's catalog and records)."""
    reserved = reserved_prefix(backup)
    async for entry in entries:
        if backup.relative(entry.key) is not None and not entry.key.startswith(reserved):
            yield entry


def cannot_tell(damaged: Sequence[Damaged]) -> CatalogError:
    """gc does not guess what a snapshot with an unreadable manifest needs."""
    names = ", ".join(f"{d.id} ({d.problem})" for d in damaged[:5])
    return CatalogError(
        f"gc stopped: {len(damaged)} snapshot manifest(s) are damaged, so which versions they "
        f"need is unknown: {names}",
        hint=f"repair the manifest, or drop the snapshot with `bmb catalog remove {damaged[0].id} "
        "--backup ...`; then rerun gc",
    )


async def _lifecycle_check(
    store: ObjectStore, bucket: str, prefix: str, points: RestorePoints, now: datetime
) -> list[str]:
    """Lifecycle rules that expire what gc keeps, and uploads a killed run left open."""
    try:
        rules = await store.get_lifecycle(bucket)
    except BackupError as exc:
        return [f"could not read the lifecycle rules of s3://{bucket}: {exc.message}"]
    warnings = lifecycle_warnings(rules, prefix, points, now)
    try:
        uploads = await store.open_uploads(bucket, prefix)
    except BackupError as exc:
        return [*warnings, f"could not list the open uploads of s3://{bucket}: {exc.message}"]
    where = S3Url(bucket, prefix)
    stale = stale_upload_warnings(uploads, where, now, reserved=reserved_prefix(where))
    return [*warnings, *stale]


async def _collect(
    store: ObjectStore,
    bucket: str,
    plan: AsyncIterable[ObjectVersion],
    dry_run: bool,
    workers: int | Pace,
    progress: Progress,
    on_planned: Callable[[ObjectVersion], None] | None,
    now: datetime,
    guard: Guard | None,
    executor: Executor,
) -> _Tally:
    progress.start(
        "gc: planning (dry run)" if dry_run else "gc: deleting versions", unit="versions"
    )
    try:
        if dry_run:
            return await _count_only(plan, on_planned, progress)
        return await execute_deletions(
            store, bucket, plan, workers=workers, progress=progress, now=now, guard=guard,
            executor=executor,
        )  # fmt: skip
    finally:
        progress.finish()
