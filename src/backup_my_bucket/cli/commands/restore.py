"""restore."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import click
import platformdirs

from ...clock import Clock
from ...engine.progress import NullProgress, Progress
from ...engine.restore import KeyFilter, Mode, RestoreResult, run_restore
from ...engine.versions import state_at
from ...errors import Interrupted, NotImplementedYet, PartialFailure, UsageError
from ...model import ObjectVersion, S3Url
from ...storage.iterate import iter_versions
from ...storage.protocol import ObjectStore
from ...units import format_size, format_time, parse_time
from ..app import App
from ..config import APP_NAME
from ..options import S3URL, backup_option, dry_run_option, filter_options
from ..output import Output


def default_journal_dir() -> Path:
    """Where restore journals live unless --journal-dir says otherwise."""
    return Path(platformdirs.user_data_dir(APP_NAME)) / "journals"


class LineProgress:
    """Plain progress lines on stderr, at most one per ``interval`` seconds per phase."""

    def __init__(self, output: Output, clock: Clock, interval: float = 1.0) -> None:
        self._output, self._clock, self._interval = output, clock, interval
        self._description = ""
        self._total: int | None = None
        self._items = self._bytes = 0
        self._last = 0.0

    def start(
        self, description: str, total: int | None = None, total_bytes: int | None = None
    ) -> None:
        self._description, self._total, self._items, self._bytes = description, total, 0, 0
        self._last = self._clock.monotonic()

    def total(self, total: int | None = None, total_bytes: int | None = None) -> None:
        self._total = total

    def advance(self, items: int = 1, nbytes: int = 0) -> None:
        self._items += items
        self._bytes += nbytes
        now = self._clock.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self._line()

    def _line(self) -> None:
        of = f"/{self._total}" if self._total is not None else ""
        size = f" ({format_size(self._bytes)})" if self._bytes else ""
        self._output.info(f"{self._description}: {self._items}{of}{size}")

    def finish(self) -> None:
        if self._items:
            self._line()


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
    store: ObjectStore, backup: S3Url, prefix: str, at: datetime
) -> AsyncIterator[ObjectVersion]:
    listing = iter_versions(store, backup.bucket, prefix=backup.prefix + prefix)
    async for version in state_at(listing, at):
        yield version


@click.command()
@click.argument("snapshot_id", metavar="ID", required=False)
@click.option("--at", metavar="TIME", help="Restore to this moment (no snapshot needed).")
@backup_option(required=False)
@click.option("--to", "target", type=S3URL, help="Restore into this bucket/prefix instead.")
@click.option("--prefix", default="", help="Only keys under this prefix (relative keys).")
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
) -> None:
    """Bring a bucket back to a snapshot (ID) or to a moment (--at TIME --backup S3URL).

    The plan (copy what is missing or different, delete what did not exist then, skip what
    is unchanged) is computed first; --dry-run prints it and changes nothing. Rerun the same
    command after an interruption: finished work is skipped.
    """
    if snapshot_id is not None:
        if at is not None:
            raise UsageError("give a snapshot ID or --at TIME, not both")
        raise NotImplementedYet("restore from a snapshot ID needs the catalog (issue 3)")
    if at is None or backup is None:
        raise UsageError(
            "restore needs a snapshot ID or --at TIME --backup S3URL",
            hint="e.g. restore --at 2026-11-26T10:00:00Z --backup s3://bk --to s3://src",
        )
    if target is None:
        raise UsageError(
            "--at needs --to: the backup bucket does not record its source",
            hint="name the bucket to restore into: --to s3://bucket[/prefix]",
        )
    when = parse_time(at, app.clock.now())
    filters = KeyFilter(prefix, include, exclude)

    async def main() -> RestoreResult:
        backup_store = await app.store("backup")
        target_store = await app.store("source")
        await backup_store.check_bucket(backup.bucket)
        await target_store.check_bucket(target.bucket)
        progress: Progress = (
            NullProgress() if app.settings.json else LineProgress(app.output, app.clock)
        )
        return await run_restore(
            backup_store=backup_store,
            backup=backup,
            desired=_desired(backup_store, backup, prefix, when),
            target_store=target_store,
            target=target,
            point=f"at:{format_time(when)}",
            mode=Mode(mode),
            filters=filters,
            dry_run=dry_run,
            workers=app.settings.workers,
            journal_dir=journal_dir or default_journal_dir(),
            progress=progress,
            same_endpoint=app.same_endpoint(),
            skip_archived=skip_archived,
        )

    try:
        result = app.run(main)
    except KeyboardInterrupt:
        raise Interrupted(
            "restore interrupted", hint="rerun the same command to continue: finished work is kept"
        ) from None
    app.output.result(result.to_json(), _summary(result, when, target))
    if result.failed:
        raise PartialFailure(
            f"{result.failed} object(s) of the restore failed; the rest is done",
            result.failures,
        )


COMMANDS = [restore]
