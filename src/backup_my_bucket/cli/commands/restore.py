"""restore."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import click
import platformdirs

from ...catalog.catalog import Catalog
from ...catalog.history import require_restorable
from ...catalog.index import IndexReader
from ...engine.cut import server_now
from ...engine.diff import aiter_sync
from ...engine.filters import KeyFilter
from ...engine.journals import list_journals, remove_old
from ...engine.restore import Mode, Reason, RestoreResult, run_restore
from ...engine.snapshot import state_at
from ...errors import BackupError, PartialFailure, UsageError
from ...model import ObjectVersion, S3Url
from ...storage.protocol import ObjectStore
from ...units import (
    format_size,
    format_time,
    human_time,
    parse_duration,
    parse_time,
    plural,
)
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

log = logging.getLogger(__name__)


def default_journal_dir() -> Path:
    """Where restore journals live unless --journal-dir says otherwise."""
    return Path(platformdirs.user_data_dir(APP_NAME)) / "journals"


def journal_dir_of(app: App, chosen: Path | None) -> Path:
    """The journal directory of a restore, after removing what outlived the retention
    (engine/journals.py): journals of restores that were never rerun."""
    directory = chosen or default_journal_dir()
    for old in remove_old(directory, app.clock.now()):
        log.info("removed the restore journal %s, untouched since %s", old.path, old.modified)
    return directory


journal_dir_option = click.option(
    "--journal-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where restore journals live (default: the user data dir).",
)


def restore_summary(result: RestoreResult, at: datetime, target: S3Url) -> str:
    """The human summary; "verified" only when nothing failed and the check found nothing."""
    dry = result.dry_run
    lines = [
        f"restore of {human_time(at)} into {target}"
        + (" (dry run: nothing changed)" if dry else ""),
        f"  {'would copy' if dry else 'copied'} {plural(result.copied, 'object')} "
        f"({format_size(result.bytes_copied)}), {'would delete' if dry else 'deleted'} "
        f"{result.deleted:,}, skipped {result.skipped:,}"
        + (f", failed {result.failed:,}" if result.failed else ""),
    ]
    lines += [f"    {reason}: {n:,}" for reason, n in sorted(result.plan.by_reason.items())]
    if result.archived:
        lines.append(f"  archived (not copyable): {plural(result.archived, 'version')}")
    if result.resumed:
        lines.append(
            f"  resumed: skipped {plural(result.resumed, 'copy', 'copies')} an earlier run "
            "finished (its journal proves what a listing cannot)"
        )
    if result.failed and not dry:
        lines.append(
            f"  NOT verified: {plural(result.failed, 'object')} failed or differ (listed below)"
        )
    elif result.verified:
        lines.append("  verified: the target matches the restoration point")
    return "\n".join(lines)


_POINT_KEYS = {r.value for r in Reason} - {Reason.EXTRA.value, Reason.KEPT_EXTRA.value}


def _point_keys(result: RestoreResult) -> int:
    """How many keys the restoration point holds in the restore's scope."""
    return sum(n for reason, n in result.plan.by_reason.items() if reason in _POINT_KEYS)


async def _desired(
    app: App, store: ObjectStore, backup: S3Url, prefix: str, at: datetime
) -> AsyncIterator[ObjectVersion]:
    """The backup's state at ``at`` in the folder ``prefix``, with absolute backup keys (the
    backup's reserved folder is never part of it, whatever ``prefix`` says)."""
    scope = backup.child(prefix)
    workers, listing = app.settings.workers, app.listing
    ranges = (await app.executor()).ranges(store)  # a cluster's, or None: here
    async for version in state_at(
        store, backup, at, workers=workers, within=prefix, listing=listing, ranges=ranges
    ):
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
@journal_dir_option
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
        if backup is not None and when is not None:
            # before anything is planned: a moment outside the history changes nothing
            store = await app.store("backup")
            await store.check_bucket(backup.bucket)
            # "now" on the server's clock, which stamps the versions (engine/cut.py)
            now = await server_now(store, backup.bucket, app.clock)
            await require_restorable(store, backup, when, now)
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
            desired = _desired(app, await app.store("backup"), backup, prefix, when)
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
            copy_workers=app.copies("source"),
            journal_dir=journal_dir_of(app, journal_dir),
            progress=app.progress(),
            same_endpoint=app.same_endpoint(),
            skip_archived=skip_archived,
            confirm=confirm_restore(app.output, yes),
            on_planned=lambda action: app.output.planned(action.to_json()),
            compare_tags=compare_tags,
            listing=app.listing,
            executor=await app.executor(),
        )

    result = app.run(main)  # Ctrl-C, SIGTERM: exit 130, 143; the journal is flushed
    if not _point_keys(result):
        where = f" in {prefix}" if prefix else ""
        app.output.warn(
            f"the restoration point holds nothing{where}: there is nothing to restore. A "
            "backup taken after a deletion records it: the latest snapshot no longer has "
            "what was deleted before it. Pick an earlier one (`bmb snapshots --backup ...`, "
            "`bmb ls ID --prefix ...`) or an earlier --at"
        )
    app.output.result(
        {**result.to_json(), "at": format_time(chosen["at"])},  # type: ignore[arg-type]
        restore_summary(result, chosen["at"], chosen["target"]),  # type: ignore[arg-type]
    )
    if result.failed:
        raise PartialFailure(
            f"{plural(result.failed, 'object')} of the restore failed; the rest is done",
            result.failures,
        )


@click.command()
@journal_dir_option
@click.option(
    "--remove-older-than",
    metavar="DURATION",
    help="Remove the journals not written to for this long (7d, 12h; 0s: all of them).",
)
@click.pass_obj
def journals(app: App, journal_dir: Path | None, remove_older_than: str | None) -> None:
    """List the restore journals, oldest first: those failed or interrupted restores left,
    and the proofs completed ones keep.

    A rerun of the same restore continues from its journal; once it completes and
    verifies, the journal keeps only the copies a listing cannot prove (or goes). A journal
    of a restore never rerun stays: any restore removes those untouched for 30 days (or
    --remove-older-than now). Removing one is safe: a rerun then only repeats the copies a
    listing cannot prove done.
    """
    directory = journal_dir or default_journal_dir()
    if remove_older_than is not None:
        found = remove_old(directory, app.clock.now(), parse_duration(remove_older_than))
        verb = "removed"
    else:
        found = list_journals(directory)
        verb = "journal"
    for journal in found:
        header = journal.to_json()
        app.output.item(
            {**header, "removed": remove_older_than is not None},
            f"{verb} {journal.id}  {human_time(journal.modified)}  "
            f"{plural(journal.items, 'item')} done  {format_size(journal.size)}  "
            f"{header['point']} -> {header['target']} ({header['mode']})",
        )
    if not app.output.json_mode:
        what = plural(len(found), "journal")
        app.output.info(
            f"removed {what} from {directory}" if verb == "removed" else f"{what} in {directory}"
        )


COMMANDS = [restore, journals]
