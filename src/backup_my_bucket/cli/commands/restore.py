"""restore."""

from __future__ import annotations

import click

from ...errors import NotImplementedYet
from ..options import S3URL, backup_option, dry_run_option, filter_options


@click.command()
@click.argument("snapshot_id", metavar="ID", required=False)
@click.option("--at", metavar="TIME", help="Restore to this moment (no snapshot needed).")
@backup_option(required=False)
@click.option("--to", "target", type=S3URL, help="Restore into this bucket/prefix instead.")
@click.option("--prefix", default="", help="Only keys under this prefix.")
@filter_options
@click.option(
    "--mode",
    type=click.Choice(["rollback", "safe", "undelete"]),
    default="rollback",
    show_default=True,
    help="rollback: end equal to the point; safe: only add; undelete: only deleted keys.",
)
@dry_run_option
def restore(**_: object) -> None:
    """Bring a bucket back to a snapshot (ID) or to a moment (--at TIME --backup S3URL)."""
    raise NotImplementedYet("`restore` is not implemented yet")


COMMANDS = [restore]
