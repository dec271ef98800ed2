"""init, sync, backup."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from ...catalog.index import SnapshotMeta
from ...engine.backup import snapshot_after
from ...engine.cut import server_now
from ...engine.filters import KeyFilter, refuse_overlap
from ...engine.progress import Progress
from ...engine.snapshot import ListedState
from ...engine.sync import (
    OVERLAP_HINT,
    SyncOptions,
    SyncResult,
    lifecycle_warnings,
)
from ...engine.sync import (
    sync as run_engine,
)
from ...engine.transfer import DEFAULT_MULTIPART_THRESHOLD
from ...errors import PartialFailure, UsageError
from ...model import S3Url, Versioning
from ...units import format_size, plural
from ..app import App
from ..confirm import confirm
from ..human import describe_snapshot
from ..options import backup_option, source_option, sync_options, tag_option
from ..progress import make_progress


async def run_init(app: App, source: S3Url, backup: S3Url, *, yes: bool) -> dict[str, Any]:
    """Check both buckets, enable versioning on the backup one, report lifecycle risks."""
    if app.same_endpoint():
        refuse_overlap(("the source", source), ("the backup", backup), hint=OVERLAP_HINT)
    source_store, backup_store = await app.store("source"), await app.store("backup")
    for store, url in ((source_store, source), (backup_store, backup)):
        await store.check_bucket(url.bucket)
        await store.list_versions_page(url.bucket, prefix=url.prefix, max_keys=1)  # can list
    enabled_now = False
    if await backup_store.get_versioning(backup.bucket) is not Versioning.ENABLED:
        confirm(
            app.output,
            yes=yes,
            question=f"Enable versioning on s3://{backup.bucket}? "
            "It cannot be turned off, only suspended",
            refused=f"versioning is not enabled on {backup}",
            hint="pass --yes to enable it (a backup bucket keeps history through versioning)",
        )
        await backup_store.set_versioning(backup.bucket, True)
        enabled_now = True
    warnings = lifecycle_warnings(await backup_store.get_lifecycle(backup.bucket), backup.prefix)
    # an explicit --catalog is named in the backup bucket now; else the first snapshot names
    # the catalog it uses (the backup's own, unless that snapshot is given --catalog)
    catalog = await app.catalog(backup, writing=app.settings.catalog is not None)
    return {
        "source": str(source),
        "backup": str(backup),
        "versioning": Versioning.ENABLED.value,
        "versioning_enabled_now": enabled_now,
        "catalog": catalog.location,
        "warnings": warnings,
    }


@click.command()
@source_option()
@backup_option()
@click.option("--yes", is_flag=True, help="Enable versioning on the backup bucket without asking.")
@click.pass_obj
def init(app: App, source: S3Url, backup: S3Url, yes: bool) -> None:
    """Check access to both buckets and enable versioning on the backup bucket.

    Warns when a lifecycle rule would expire the noncurrent versions restores need.
    """
    result = app.run(lambda: run_init(app, source, backup, yes=yes))
    for warning in result["warnings"]:
        app.output.warn(warning)
    done = "enabled" if result["versioning_enabled_now"] else "already enabled"
    app.output.result(
        result, f"ready: {source} → {backup} (versioning {done}; catalog {result['catalog']})"
    )


async def run_sync(
    app: App,
    source: S3Url,
    backup: S3Url,
    *,
    dry_run: bool = False,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
    compare_tags: bool = False,
    progress: Progress | None = None,
    listed: ListedState | None = None,
) -> SyncResult:
    """Sync ``source`` into ``backup`` with the app's stores and settings (used by `backup`)."""
    options = SyncOptions(
        workers=app.copies("backup"),
        list_workers=app.settings.workers,
        dry_run=dry_run,
        same_endpoint=app.same_endpoint(),
        multipart_threshold=multipart_threshold,
        key_filter=KeyFilter(include=tuple(include), exclude=tuple(exclude)),
        compare_tags=compare_tags,
        listing=app.listing,
        executor=await app.executor(),
    )
    source_store, backup_store = await app.store("source"), await app.store("backup")
    return await run_engine(
        source_store,
        source,
        backup_store,
        backup,
        options,
        progress or make_progress(app.output),
        on_planned=lambda item: app.output.planned(item.to_json()),
        clock=app.clock,
        listed=listed,
    )


def describe(result: SyncResult) -> str:
    """The human summary of a sync (stdout without --json)."""
    size = format_size(result.bytes_copied)
    if result.dry_run:
        return (
            f"dry run: would copy {plural(result.copied, 'object')} ({size}), mark "
            f"{result.deleted:,} deleted; {result.skipped:,} unchanged"
        )
    failed = f", {result.failed:,} failed" if result.failed else ""
    return (
        f"copied {plural(result.copied, 'object')} ({size}), marked {result.deleted:,} "
        f"deleted, {result.skipped:,} unchanged{failed}"
    )


def report_sync(app: App, result: SyncResult) -> None:
    """Print the result, then fail: exit 1 if a listing was short (its audit), exit 3 if some
    objects failed (the list on stderr)."""
    app.output.result(result.to_json(), describe(result))
    raise_failures(result)


def raise_failures(result: SyncResult) -> None:
    if result.incomplete is not None:
        raise result.incomplete
    if result.failures:
        raise PartialFailure(f"{plural(result.failed, 'object')} failed to sync", result.failures)


@click.command()
@sync_options
@click.pass_obj
def sync(
    app: App,
    source: S3Url,
    backup: S3Url,
    dry_run: bool,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    multipart_threshold: int,
    compare_tags: bool,
) -> None:
    """Copy new and changed objects from the source into the backup bucket.

    Keys gone from the source get a delete marker in the backup: their history stays, so a
    sync never asks for confirmation. --dry-run prints every planned copy and delete.
    Changed means other bytes, or other headers, user metadata or storage class (the source
    is then newer than its backup copy: HEAD of both tells); other tags with --compare-tags.
    """
    result = app.run(
        lambda: run_sync(
            app, source, backup, dry_run=dry_run, include=include, exclude=exclude,
            multipart_threshold=multipart_threshold, compare_tags=compare_tags,
        )
    )  # fmt: skip
    report_sync(app, result)


@click.command()
@sync_options
@tag_option
@click.option("--at", hidden=True)  # not offered: only to say why, below
@click.pass_obj
def backup(
    app: App,
    source: S3Url,
    backup: S3Url,
    dry_run: bool,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    multipart_threshold: int,
    compare_tags: bool,
    tags: tuple[str, ...],
    at: str | None,
) -> None:
    """Sync, then take a snapshot: one restoration point in one command.

    The snapshot is taken even when some objects failed to sync (it is a consistent cut of
    the backup bucket all the same); the command then exits 3 with the failures listed.
    With --dry-run, only the sync plan is shown and no snapshot is taken. When the sync
    changes nothing, its own listing of the backup is the snapshot (no second listing).
    """
    if at is not None:
        raise UsageError(
            "backup takes its snapshot after the sync: --at does not apply",
            hint="use `snapshot --at TIME` to record an earlier instant",
        )

    async def main() -> tuple[SyncResult, SnapshotMeta | None]:
        if dry_run:
            synced = await run_sync(
                app, source, backup, dry_run=True, include=include, exclude=exclude,
                multipart_threshold=multipart_threshold, compare_tags=compare_tags,
            )  # fmt: skip
            return synced, None
        with ListedState(app.clock) as listed:
            synced = await run_sync(
                app, source, backup, include=include, exclude=exclude,
                multipart_threshold=multipart_threshold, compare_tags=compare_tags,
                listed=listed,
            )  # fmt: skip
            # a snapshot that lists waits for the server's second after the sync (rule 8),
            # unless the sync wrote nothing: the catalog is opened meanwhile
            store = await app.store("backup")
            ended = await server_now(store, backup.bucket, app.clock)
            catalog = await app.catalog(backup, writing=True)
            meta = await snapshot_after(
                synced, listed, store, backup, catalog, app.clock,
                ended=ended, source=source, tags=tags, workers=app.settings.workers,
                progress=app.progress(), listing=app.listing,
                ranges=(await app.executor()).ranges(store),
            )  # fmt: skip
            return synced, meta

    synced, meta = app.run(main)
    text = describe(synced)
    if meta is not None:
        text += "\n" + describe_snapshot(meta)
    app.output.result(
        {"sync": synced.to_json(), "snapshot": meta.summary() if meta else None}, text
    )
    raise_failures(synced)


COMMANDS = [init, sync, backup]
