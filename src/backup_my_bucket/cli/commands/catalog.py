"""catalog info, catalog migrate, catalog remove."""

from __future__ import annotations

from typing import Any

import click

from ...catalog.finder import find_legacy, legacy_root
from ...catalog.history import read_span
from ...catalog.location import default_catalog_url
from ...catalog.migrate import MigrateResult, migrate, sources_for
from ...errors import DamagedSnapshots, ItemFailure, SnapshotNotFound, UsageError
from ...model import S3Url
from ...units import format_time
from ..app import App
from ..options import backup_option, dry_run_option


@click.group(name="catalog")
def catalog_group() -> None:
    """Where a backup's snapshots live: show it, move old catalogs into it, drop snapshots.

    A backup's catalog lives in its own bucket (under .backup-my-bucket/), or where
    --catalog said when the backup was first used; the bucket records which, so every machine
    finds the same snapshots.
    """


@catalog_group.command(name="info")
@backup_option()
@click.pass_obj
def info(app: App, backup: S3Url) -> None:
    """Show the backup's catalog, its snapshot count and the restorable span."""

    async def main() -> dict[str, Any]:
        finder = await app.finder()
        binding = await finder.binding(backup)
        catalog = await app.catalog(backup)
        listing = await catalog.scan()
        span = await read_span(finder.store, backup)
        now = app.clock.now()
        return {
            "backup": str(backup),
            "catalog": catalog.location,
            "catalog_id": await catalog.identity(),
            "named_by_bucket": binding is not None,
            "bound_at": format_time(binding.bound_at) if binding else None,
            "host": binding.host if binding else None,
            "snapshots": len(listing.snapshots),
            "damaged": [d.to_json() for d in listing.damaged],
            "span": {
                "earliest": format_time(span.earliest) if span.earliest else None,
                "start_from": span.start_from,
                "latest": format_time(now),
                "pruned": [[format_time(a), format_time(b)] for a, b in span.gaps],
            },
            "old_local_catalogs": [str(old.path) for old in find_legacy(legacy_root(), backup)],
            "text_span": span.describe(now),
        }

    data = app.run(main)
    text = data.pop("text_span")
    lines = [
        f"backup:    {data['backup']}",
        f"catalog:   {data['catalog']}"
        + ("" if data["named_by_bucket"] else " (not named by the bucket yet)"),
        f"snapshots: {data['snapshots']}"
        + (f", {len(data['damaged'])} damaged" if data["damaged"] else ""),
        f"restorable: {text}",
    ]
    lines += [f"old local catalog (run `catalog migrate`): {p}" for p in data["old_local_catalogs"]]
    app.output.result(data, "\n".join(lines))


@catalog_group.command(name="migrate")
@backup_option()
@click.option(
    "--from",
    "sources",
    multiple=True,
    metavar="PATH|s3://BUCKET/PREFIX",
    help="A catalog to move snapshots from (repeatable); default: this machine's catalogs "
    "of the old layout that hold snapshots of --backup.",
)
@dry_run_option
@click.pass_obj
def migrate_cmd(app: App, backup: S3Url, sources: tuple[str, ...], dry_run: bool) -> None:
    """Move snapshots into the backup's catalog and make the bucket name it, once.

    The target is the backup's own catalog in its bucket, or --catalog. Snapshots already
    there are skipped; each one is checked against its checksum before it is copied. Old
    catalog directories are renamed *.migrated afterwards.
    """

    async def main() -> MigrateResult:
        finder = await app.finder()
        await finder.store.check_bucket(backup.bucket)
        target = finder.open(app.settings.catalog or str(default_catalog_url(backup)))
        return await migrate(
            finder, backup, target, sources_for(finder, backup, sources), dry_run=dry_run
        )

    result = app.run(main)
    verb = "would copy" if dry_run else "copied"
    text = [
        f"{verb} {len(result.copied)} snapshot(s) into {result.catalog} "
        f"({result.present} already there)",
        *(f"  from {where}" for where in result.sources),
    ]
    if result.bound:
        text.append(f"{backup} {'would name' if dry_run else 'now names'} this catalog")
    text += [f"  retired {where}" for where in result.retired]
    app.output.result(result.to_json(), "\n".join(text))
    if result.damaged:
        raise DamagedSnapshots(
            f"{len(result.damaged)} snapshot(s) were damaged and not copied",
            [ItemFailure(d["where"], None, f"{d['id']}: {d['problem']}") for d in result.damaged],
            hint="repair them and rerun, or leave them out: the rest is migrated",
        )


@catalog_group.command(name="remove")
@click.argument("snapshot_ids", metavar="ID...", nargs=-1, required=True)
@backup_option()
@click.pass_obj
def remove(app: App, snapshot_ids: tuple[str, ...], backup: S3Url) -> None:
    """Drop snapshots from the catalog (full ids, damaged ones included), under the lock.

    Their versions stay until the next gc, which then frees what no other snapshot needs.
    """

    async def main() -> list[str]:
        catalog = await app.catalog(backup, writing=True)
        async with catalog.lock("catalog remove") as lease:
            listing = await catalog.scan()
            known = {m.id for m in listing.snapshots} | {d.id for d in listing.damaged}
            missing = [i for i in snapshot_ids if i not in known]
            if missing:
                raise SnapshotNotFound(
                    f"no snapshot {', '.join(missing)} in {catalog.location}",
                    hint="give full ids, as `snapshots` lists them",
                )
            await lease.check("removing snapshots")
            await catalog.remove(snapshot_ids)
        return list(snapshot_ids)

    if not snapshot_ids:
        raise UsageError("name the snapshots to remove")
    removed = app.run(main)
    app.output.result({"removed": removed}, f"removed {len(removed)} snapshot(s)")


COMMANDS = [catalog_group]
