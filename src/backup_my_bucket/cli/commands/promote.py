"""promote: fall back to the backup when the primary is lost (the seed's future work 3)."""

from __future__ import annotations

from typing import Any

import click

from ...engine.cut import server_now, wait_past
from ...engine.restore import Mode, run_restore
from ...engine.snapshot import take_snapshot
from ...errors import PartialFailure, UsageError
from ...model import S3Url
from ...units import plural
from ..app import App
from ..confirm import confirm_restore
from ..options import S3URL, dry_run_option, yes_option
from .backup import run_init, run_sync
from .restore import journal_dir_of, restore_summary, snapshot_point


@click.command()
@click.argument("snapshot_id", metavar="ID")
@click.option(
    "--to",
    "target",
    type=S3URL,
    required=True,
    help="The bucket (and prefix) that becomes the primary; it must exist.",
)
@click.option(
    "--new-backup",
    type=S3URL,
    help="Start a new backup relationship: back the new primary up into this bucket.",
)
@click.option("--backup", type=S3URL, help="The old backup location whose catalog to use.")
@yes_option(
    "Answer yes to every question: overwrite or delete objects already in --to, enable "
    "versioning on --new-backup."
)
@dry_run_option
@click.pass_obj
def promote(
    app: App,
    snapshot_id: str,
    target: S3Url,
    new_backup: S3Url | None,
    backup: S3Url | None,
    yes: bool,
    dry_run: bool,
) -> None:
    """Fallback: make a restoration point the new primary and start a fresh backup relationship.

    Restores snapshot ID (rollback) into --to, the bucket the application will use from now
    on. With --new-backup, it then enables versioning there, backs the new primary up and
    takes a first snapshot; the old restoration points are carried into the new catalog, so
    they stay listed next to the new ones and restorable from the old backup bucket, which is
    never written. Objects already in --to that the restore would delete or overwrite are
    named first and need a "y" on a terminal, or --yes.
    """
    if new_backup is not None and new_backup.bucket == target.bucket:
        raise UsageError("--new-backup must be another bucket than --to")

    async def main() -> dict[str, Any]:
        old_catalog = await app.catalog(backup)
        meta = await old_catalog.resolve(snapshot_id)
        old_backup = S3Url.parse(meta.backup)
        reader = await old_catalog.open_index(meta)
        target_store = await app.store("source")
        await target_store.check_bucket(target.bucket)
        restored = await run_restore(
            backup_store=await app.store("backup"),
            backup=old_backup,
            desired=snapshot_point(reader, old_backup),
            target_store=target_store,
            target=target,
            point=f"snapshot:{meta.id}",
            mode=Mode.ROLLBACK,
            dry_run=dry_run,
            workers=app.settings.workers,
            copy_workers=app.copies("source"),
            journal_dir=journal_dir_of(app, None),
            progress=app.progress(),
            same_endpoint=app.same_endpoint(),
            confirm=confirm_restore(app.output, yes, "promote"),
            on_planned=lambda action: app.output.planned(action.to_json()),
            listing=app.listing,
            executor=await app.executor(),
        )
        report: dict[str, Any] = {
            "snapshot": meta.id,
            "primary": str(target),
            "restore": restored.to_json(),
            "new_backup": str(new_backup) if new_backup else None,
            "carried_snapshots": 0,
            "first_snapshot": None,
            "dry_run": dry_run,
        }
        texts.append(restore_summary(restored, meta.at, target))
        if restored.failed:
            raise PartialFailure(
                f"{plural(restored.failed, 'object')} could not be restored into {target}; "
                "the new backup relationship was not started",
                restored.failures,
            )
        if new_backup is None or dry_run:
            return report
        await run_init(app, target, new_backup, yes=yes)
        synced = await run_sync(app, target, new_backup)
        if synced.incomplete is not None:
            raise synced.incomplete  # no first snapshot of a backup made from a short listing
        store = await app.store("backup")
        ended = await server_now(store, new_backup.bucket, app.clock)  # the sync's last second
        new_catalog = await app.catalog(new_backup, writing=True)
        carried = 0
        if new_catalog.location != old_catalog.location:
            known = {m.id for m in await new_catalog.list()}
            for old in await old_catalog.list():
                if old.id not in known:
                    await new_catalog.publish(old, await old_catalog.index_path(old))
                    carried += 1
        await wait_past(store, new_backup.bucket, app.clock, ended)
        first = await take_snapshot(
            store,
            new_backup,
            new_catalog,
            app.clock,
            source=target,
            tags=("promoted", f"from:{meta.id}"),
            workers=app.settings.workers,
            progress=app.progress(),
            listing=app.listing,
        )
        report.update(
            sync=synced.to_json(),
            carried_snapshots=carried,
            first_snapshot=first.summary(),
        )
        return report

    texts: list[str] = []
    report = app.run(main)
    app.output.result(report, _text(report, texts[0]))


def _text(report: dict[str, Any], restored: str) -> str:
    """What promote did (or, with --dry-run, would do), for people."""
    primary, snapshot, new_backup = report["primary"], report["snapshot"], report["new_backup"]
    if report["dry_run"]:
        lines = [f"dry run: promote snapshot {snapshot} into {primary}; nothing changed", restored]
        if new_backup:
            lines.append(
                f"then: enable versioning on {new_backup}, back {primary} up into it, take "
                "a first snapshot and carry the old snapshots into its catalog"
            )
        return "\n".join(lines)
    lines = [f"{primary} now holds snapshot {snapshot}", restored]
    if new_backup:
        first = report["first_snapshot"]
        lines.append(
            f"new backup {new_backup}: first snapshot {first['id']}, "
            f"{plural(report['carried_snapshots'], 'old snapshot')} carried into its catalog"
        )
    return "\n".join(lines)


COMMANDS = [promote]
