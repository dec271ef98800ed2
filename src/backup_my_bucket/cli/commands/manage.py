"""gc, verify, promote."""

from __future__ import annotations

from typing import Any

import click

from ...catalog.finder import refuse_unmigrated
from ...engine.gc import GcPartialFailure, GcResult, backup_of, gc_catalog
from ...engine.retention import policy_from_options
from ...engine.verify import VerifyResult, verify_snapshot
from ...errors import VerificationFailed
from ...model import ObjectVersion, S3Url
from ...units import format_size, plural
from ..app import App
from ..options import S3URL, dry_run_option


@click.command()
@click.option(
    "--backup",
    type=S3URL,
    help="The backup location (default: the one the catalog's snapshots record).",
)
@click.option("--keep-last", type=int, metavar="N", help="Keep the N newest snapshots.")
@click.option("--keep-within", metavar="DURATION", help="Keep every snapshot younger than this.")
@click.option("--keep-hourly", type=int, metavar="N", help="Keep the last snapshot of N hours.")
@click.option("--keep-daily", type=int, metavar="N", help="Keep the last snapshot of N days.")
@click.option("--keep-weekly", type=int, metavar="N", help="Keep the last snapshot of N weeks.")
@click.option("--keep-monthly", type=int, metavar="N", help="Keep the last snapshot of N months.")
@click.option("--keep-yearly", type=int, metavar="N", help="Keep the last snapshot of N years.")
@click.option(
    "--min-keep",
    type=int,
    default=1,
    show_default=True,
    metavar="N",
    help="Never keep fewer snapshots than this, whatever the other rules say.",
)
@click.option(
    "--pit-window",
    metavar="DURATION",
    help="Also keep every version needed to restore any moment of the last DURATION.",
)
@dry_run_option
@click.pass_obj
def gc(app: App, /, backup: S3Url | None, dry_run: bool, **policy_options: Any) -> None:
    """Drop snapshots past the retention policy and the versions only they needed.

    Removes expired snapshots from the catalog first, then deletes the noncurrent versions and
    delete markers that no kept snapshot (and no --pit-window moment) needs. Current versions
    are never deleted. Runs under the catalog lock. An empty policy is refused.
    A version that Object Lock keeps (legal hold, retention in force) is skipped and
    reported; any other refused deletion, AccessDenied included, fails the run (exit 3).
    Last, the old versions of the backup's .backup-my-bucket/ folder that nothing reads any
    more (removed snapshots' indexes, past locks and records) are deleted.
    """
    policy = policy_from_options(**policy_options)
    policy.check()
    shown: list[ObjectVersion] = []

    def planned(version: ObjectVersion) -> None:
        if len(shown) < 20:
            shown.append(version)

    async def main() -> GcResult:
        url = backup or backup_of(await (await app.catalog(None)).list())
        finder = await app.finder()  # old local catalogs: refused before anything is written
        await refuse_unmigrated(
            await finder.for_backup(url, app.settings.catalog, writing=False), url
        )
        return await gc_catalog(
            await app.store("backup"),
            await app.catalog(url, writing=True),
            url,
            policy,
            app.clock,
            dry_run=dry_run,
            workers=app.copies("backup"),
            list_workers=app.settings.workers,
            progress=app.progress(),
            on_planned=planned if dry_run else None,
            listing=app.listing,
            executor=await app.executor(),
        )

    try:
        result = app.run(main)
    except GcPartialFailure as exc:
        app.output.result(exc.result.to_json(), _gc_text(exc.result, shown))
        raise
    app.output.result(result.to_json(), _gc_text(result, shown))


def _gc_text(result: GcResult, planned: list[ObjectVersion]) -> str:
    lines = []
    for decision in result.decisions:
        verdict = "keep  " if decision.keep else "remove"
        lines.append(f"{verdict} {decision.snapshot.id}  ({', '.join(decision.reasons)})")
    verb = "would delete" if result.dry_run else "deleted"
    lines.append(
        f"{verb} {plural(result.versions_deleted, 'version')} and "
        f"{plural(result.delete_markers_deleted, 'delete marker')}, freeing "
        f"{format_size(result.bytes_freed)}"
    )
    for version in planned:
        kind = "delete marker" if version.is_delete_marker else format_size(version.size)
        lines.append(f"  {version.key}  {version.version_id}  ({kind})")
    if result.dry_run and result.versions_deleted + result.delete_markers_deleted > len(planned):
        lines.append("  ...")
    if result.catalog_leftovers:
        verb = "would remove" if result.dry_run else "removed"
        lines.append(
            f"{verb} {plural(len(result.catalog_leftovers), 'file')} that interrupted runs left "
            f"in the catalog: {', '.join(result.catalog_leftovers[:5])}"
            + (", ..." if len(result.catalog_leftovers) > 5 else "")
        )
    if result.records_tidied:
        verb = "would delete" if result.dry_run else "deleted"
        lines.append(
            f"{verb} {plural(result.records_tidied, 'old version')} of the catalog's records "
            f"({format_size(result.records_bytes)}: removed snapshots, past locks)"
        )
    for warning in result.warnings:
        lines.append(f"warning: {warning}")
    for failure in result.skipped_locked:
        lines.append(f"skipped (locked): {failure.key} {failure.version_id}: {failure.reason}")
    return "\n".join(lines)


@click.command()
@click.argument("snapshot_id", metavar="ID")
@click.option(
    "--read-data",
    type=click.FloatRange(0, 100),
    default=0,
    metavar="PERCENT",
    help="Also read this share of the data and check it against the recorded MD5 ETags.",
)
@click.option("--backup", type=S3URL, help="The backup location whose default catalog to use.")
@click.pass_obj
def verify(app: App, snapshot_id: str, read_data: float, backup: S3Url | None) -> None:
    """Check that every version a snapshot needs still exists, with its size and ETag.

    With --read-data, a random sample (a different one each run) is read in full. Exits 1 and
    lists what is wrong when anything is missing or changed.
    """

    async def main() -> VerifyResult:
        _, result = await verify_snapshot(
            await app.store("backup"),
            await app.catalog(backup),
            snapshot_id,
            read_share=read_data / 100,
            salt=app.clock.now().isoformat(),
            workers=app.settings.workers,
            progress=app.progress(),
            executor=await app.executor(),
        )
        return result

    result = app.run(main)
    lines = [f"checked {plural(result.checked, 'version')}, read {result.read:,} in full"]
    if result.unverifiable:
        lines.append(
            f"  {plural(result.unverifiable, 'version')} read could not be checked: their ETag "
            "is not an MD5 (multipart or server-encrypted)"
        )
    lines += [f"  {p.problem}: {p.key} ({p.version_id}) {p.detail}" for p in result.problems[:50]]
    app.output.result(result.to_json(), "\n".join(lines))
    if result.problems:
        raise VerificationFailed(
            f"{plural(result.missing, 'version')} missing and {result.mismatched:,} changed in "
            "the backup",
            hint="restore what you can now; investigate who deletes versions in the backup bucket",
        )


COMMANDS = [gc, verify]
