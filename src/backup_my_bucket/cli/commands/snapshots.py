"""snapshot, snapshots, show, ls, diff."""

from __future__ import annotations

from collections.abc import AsyncIterator

import click

from ...catalog.catalog import Damaged, Listing
from ...catalog.history import require_restorable
from ...catalog.index import SnapshotMeta
from ...engine.cut import server_now
from ...engine.diff import aiter_sync, diff_states
from ...engine.filters import KeyFilter
from ...engine.snapshot import live_state, take_snapshot
from ...errors import DamagedSnapshots, ItemFailure
from ...model import ObjectVersion, S3Url
from ...units import format_size, format_time, human_time, parse_time, plural
from ..app import App
from ..human import describe_snapshot, show_json, show_text, snapshot_line
from ..options import S3URL, backup_option, prefix_option, snapshot_options, source_option
from ..output import printable

catalog_backup_option = click.option(
    "--backup",
    type=S3URL,
    help="The backup location: its bucket holds (or names) its catalog. Needed unless "
    "--catalog names a catalog to read.",
)


@click.command()
@backup_option()
@source_option(required=False)
@snapshot_options
@click.pass_obj
def snapshot(
    app: App, backup: S3Url, source: S3Url | None, at: str | None, tags: tuple[str, ...]
) -> None:
    """Record a restoration point: the version of every key in the backup bucket at one instant.

    The instant defaults to the last whole second before the command starts; writes that go on
    while it lists are newer and are left out, so the snapshot is a consistent cut.
    """

    async def main() -> SnapshotMeta:
        store = await app.store("backup")
        now = app.clock.now()
        when = parse_time(at, now) if at else None
        if when is not None:  # before the catalog is touched: a refused --at changes nothing
            await store.check_bucket(backup.bucket)
            served = await server_now(store, backup.bucket, app.clock)  # the stamping clock
            await require_restorable(store, backup, when, served)
        catalog = await app.catalog(backup, writing=True)
        return await take_snapshot(
            store,
            backup,
            catalog,
            app.clock,
            at=when,
            source=source,
            tags=tags,
            workers=app.settings.workers,
            progress=app.progress(),
            listing=app.listing,
            ranges=(await app.executor()).ranges(store),
        )

    meta = app.run(main)
    app.output.result(meta.summary(), describe_snapshot(meta))


@click.command()
@catalog_backup_option
@click.pass_obj
def snapshots(app: App, backup: S3Url | None) -> None:
    """List the restoration points in the catalog, oldest first.

    A damaged snapshot (unreadable manifest, missing or truncated index) is listed as such
    after the others, and the command then exits 3."""

    async def main() -> Listing:
        return await (await app.catalog(backup)).scan()

    listing = app.run(main)
    for meta in listing.healthy:
        app.output.item(meta.summary(), snapshot_line(meta))
    for bad in listing.damaged:
        app.output.item(bad.to_json(), f"{bad.id}  DAMAGED: {bad.problem} ({bad.where})")
    if listing.damaged:
        raise damaged_error(listing.damaged)


def damaged_error(damaged: tuple[Damaged, ...]) -> DamagedSnapshots:
    first = damaged[0].id
    return DamagedSnapshots(
        f"{len(damaged)} snapshot(s) are damaged; the others are intact",
        [ItemFailure(d.where, None, f"{d.id}: {d.problem}") for d in damaged],
        hint="restore and verify work for every other snapshot; drop a damaged one with "
        f"`bmb catalog remove {first} --backup ...` (or repair its files)",
    )


@click.command()
@click.argument("snapshot_id", metavar="ID")
@catalog_backup_option
@click.pass_obj
def show(app: App, snapshot_id: str, backup: S3Url | None) -> None:
    """Show one snapshot's metadata. ID may be a unique prefix, or `latest`."""

    async def main() -> SnapshotMeta:
        catalog = await app.catalog(backup)
        meta = await catalog.resolve(snapshot_id)
        await catalog.open_index(meta)  # verifies the index: a broken one is reported now
        return meta

    meta = app.run(main)
    app.output.result(show_json(meta), show_text(meta))


@click.command(name="ls")
@click.argument("snapshot_id", metavar="ID")
@prefix_option("Only keys in this folder (docs means docs/).")
@catalog_backup_option
@click.pass_obj
def ls_(app: App, snapshot_id: str, prefix: str, backup: S3Url | None) -> None:
    """List the keys and versions a snapshot holds (in key order)."""

    async def main() -> None:
        catalog = await app.catalog(backup)
        reader = await catalog.open_index(await catalog.resolve(snapshot_id))
        in_scope = KeyFilter(prefix)
        for v in filter(lambda v: in_scope(v.key), reader.rows(prefix)):
            app.output.item(
                {
                    "key": v.key,
                    "version_id": v.version_id,
                    "size": v.size,
                    "etag": v.etag,
                    "last_modified": format_time(v.last_modified),
                },
                f"{human_time(v.last_modified)}  {format_size(v.size):>10}  {printable(v.key)}",
            )

    app.run(main)


@click.command()
@click.argument("snapshot_id", metavar="ID")
@click.argument("other", metavar="ID2|live")
@catalog_backup_option
@click.pass_obj
def diff(app: App, snapshot_id: str, other: str, backup: S3Url | None) -> None:
    """Show what changed between two snapshots, or between a snapshot and the live backup.

    `live` is the backup bucket as it is now. Changes stream out in key order.
    """

    async def main() -> int:
        catalog = await app.catalog(backup)
        first = await catalog.resolve(snapshot_id)
        old = aiter_sync((await catalog.open_index(first)).rows())
        new: AsyncIterator[ObjectVersion]
        if other == "live":
            url, store = S3Url.parse(first.backup), await app.store("backup")
            new = live_state(
                store,
                url,
                workers=app.settings.workers,
                listing=app.listing,
                ranges=(await app.executor()).ranges(store),
            )
        else:
            new = aiter_sync((await catalog.open_index(await catalog.resolve(other))).rows())
        count = 0
        async for change in diff_states(old, new):
            count += 1
            sign = {"added": "+", "removed": "-", "changed": "~"}[change.change]
            app.output.item(change.to_json(), f"{sign} {change.key}")
        return count

    changes = app.run(main)
    if not app.output.json_mode:
        app.output.info(plural(changes, "change"))


COMMANDS = [snapshot, snapshots, show, ls_, diff]
