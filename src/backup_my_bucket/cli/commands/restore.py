"""restore."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import click
import platformdirs

from ...catalog.catalog import Catalog
from ...catalog.index import IndexReader
from ...engine.diff import aiter_sync
from ...engine.filters import KeyFilter
from ...engine.restore import Mode, RestoreResult, run_restore
from ...engine.snapshot import state_at
from ...errors import BackupError, Interrupted, PartialFailure, UsageError
from ...model import ObjectVersion, S3Url
from ...storage.protocol import ObjectStore
from ...units import format_size, format_time, parse_time
from ..app import App
from ..config import APP_NAME
from ..confirm import confirm_restore
from ..options import (
    S3URL,
    backup_option,
    compare_tags_option,
    dry_run_option,
    filter_options,
    prefix_option,
    yes_option,
)


def default_journal_dir() -> Path:
    """Where restore journals live unless --journal-dir says otherwise."""
    return Path(platformdirs.user_data_dir(APP_NAME)) / "journals"


def _summary(result: RestoreResult, at: datetime, target: S3Url) -> str:
    verb = "would copy" if result.dry_run else "copied"
    deleted = "would delete" if result.dry_run else "deleted"
    lines = [
        f"restore of {format_time(at)} into {target}"
        + (" (dry run: nothing changed)" if result.dry_run else ""),
        f"  {verb} {result.copied} object(s), {format_size(result.bytes_copied)}",
        f"  {deleted} {result.deleted}, skipped {result.skipped}, failed {result.failed}",
    ]
    lines += [f"    {reason}: {n}" for reason, n in sorted(result.plan.by_reason.items())]
    if result.archived:
        lines.append(f"  archived (not copyable): {result.archived}")
    if result.resumed:
        lines.append(f"  resumed: {result.resumed} item(s) finished by an earlier run")
    if not result.dry_run:
        lines.append("  verified" if result.verified else "  verification found problems")
    return "\n".join(lines)


async def _desired(
    store: ObjectStore, backup: S3Url, prefix: str, at: datetime, workers: int
) -> AsyncIterator[ObjectVersion]:
    """The backup's state at ``at`` in the folder ``prefix``, with absolute backup keys."""
    scope = backup.child(prefix)
    async for version in state_at(store, scope, at, workers=workers):
        yield dataclasses.replace(version, key=scope.key(version.key))


def snapshot_point(
    reader: IndexReader, backup: S3Url, prefix: str = ""
) -> AsyncIterator[ObjectVersion]:
    """A snapshot's rows in the folder ``prefix``, with absolute backup keys (a restore's
    desired state)."""
    return aiter_sync(dataclasses.replace(v, key=backup.key(v.key)) for v in reader.rows(prefix))


async def _recorded_source(catalog: Catalog, backup: S3Url) -> str | None:
    """The source the newest snapshot of this backup recorded, if any."""
    try:
        metas = await catalog.list()
    except BackupError:
        return None
    sources = [m.source for m in metas if m.of(backup) and m.source]
    return sources[-1] if sources else None


@click.command()
@click.argument("snapshot_id", metavar="ID", required=False)
@click.option("--at", metavar="TIME", help="Restore to this moment (no snapshot needed).")
@backup_option(required=False)
@click.option("--to", "target", type=S3URL, help="Restore into this bucket/folder instead.")
@prefix_option("Only keys in this folder (relative keys; docs means docs/).")
@filter_options
@click.option(
    "--mode",
    type=click.Choice([m.value for m in Mode]),
    default="rollback",
    show_default=True,
    help="rollback: end equal to the point; safe: only add; undelete: only deleted keys.",
)
@dry_run_option
@click.option(
    "--skip-archived",
    is_flag=True,
    help="Restore everything else when some versions are in GLACIER/DEEP_ARCHIVE (exit 3).",
)
@click.option(
    "--journal-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the resume journal lives (default: the user data dir).",
)
@yes_option("Delete and overwrite objects in the target without asking (needed off a terminal).")
@compare_tags_option
@click.pass_obj
def restore(
    app: App,
    snapshot_id: str | None,
    at: str | None,
    backup: S3Url | None,
    target: S3Url | None,
    prefix: str,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    mode: str,
    dry_run: bool,
    skip_archived: bool,
    journal_dir: Path | None,
    yes: bool,
    compare_tags: bool,
) -> None:
    """Bring a bucket back to a snapshot (ID, a prefix of one, or `latest`) or to a moment
    (--at TIME --backup S3URL).

    The target is the snapshot's source unless --to names another bucket/folder.
    The plan (copy what is missing or different, delete what did not exist then, skip what
    is unchanged) is computed first; --dry-run prints every copy and delete and changes
    nothing. A plan that deletes or overwrites objects asks first (on a terminal) or needs
    --yes. Rerun the same command after an interruption: finished work is skipped. In
    rollback, "different" is other bytes, or other headers, user metadata or storage class
    on a target object changed since the point (HEAD of it and of the point's version
    tells); other tags only with --compare-tags (only in rollback, the mode that overwrites).
    """
    if snapshot_id is not None and at is not None:
        raise UsageError("give a snapshot ID or --at TIME, not both")
    if snapshot_id is None and (at is None or backup is None):
        raise UsageError(
            "restore needs a snapshot ID or --at TIME --backup S3URL",
            hint="e.g. restore latest, or restore --at 2026-11-26T10:00:00Z --backup s3://bk",
        )
    filters = KeyFilter(prefix, include, exclude)
    when = parse_time(at, app.clock.now()) if at is not None else None
    chosen: dict[str, object] = {}

    async def main() -> RestoreResult:
        catalog = await app.catalog(backup)
        if snapshot_id is not None:
            meta = await catalog.resolve(snapshot_id)
            source, where = S3Url.parse(meta.backup), meta.source
            reader = await catalog.open_index(meta)
            desired = snapshot_point(reader, source, prefix)
            point, chosen["at"] = f"snapshot:{meta.id}", meta.at
        else:
            assert backup is not None and when is not None
            source, where = backup, await _recorded_source(catalog, backup)
            desired = _desired(
                await app.store("backup"), backup, prefix, when, app.settings.workers
            )
            point, chosen["at"] = f"at:{format_time(when)}", when
        into = target or (S3Url.parse(where) if where else None)
        if into is None:
            raise UsageError(
                "no target: the restoration point does not record its source bucket",
                hint="name the bucket to restore into: --to s3://bucket[/prefix]",
            )
        chosen["target"] = into
        backup_store = await app.store("backup")
        target_store = await app.store("source")
        await backup_store.check_bucket(source.bucket)
        await target_store.check_bucket(into.bucket)
        return await run_restore(
            backup_store=backup_store,
            backup=source,
            desired=desired,
            target_store=target_store,
            target=into,
            point=point,
            mode=Mode(mode),
            filters=filters,
            dry_run=dry_run,
            workers=app.settings.workers,
            journal_dir=journal_dir or default_journal_dir(),
            progress=app.progress(),
            same_endpoint=app.same_endpoint(),
            skip_archived=skip_archived,
            confirm=confirm_restore(app.output, yes),
            on_planned=lambda action: app.output.planned(action.to_json()),
            compare_tags=compare_tags,
        )

    try:
        result = app.run(main)
    except KeyboardInterrupt:
        raise Interrupted(
            "restore interrupted", hint="rerun the same command to continue: finished work is kept"
        ) from None
    app.output.result(
        result.to_json(),
        _summary(result, chosen["at"], chosen["target"]),  # type: ignore[arg-type]
    )
    if result.failed:
        raise PartialFailure(
            f"{result.failed} object(s) of the restore failed; the rest is done",
            result.failures,
        )


COMMANDS = [restore]
