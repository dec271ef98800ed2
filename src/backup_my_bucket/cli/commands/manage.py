"""gc, verify, promote."""

from __future__ import annotations

import click

from ...errors import NotImplementedYet
from ..options import dry_run_option


@click.command()
@click.option("--keep-last", type=int, metavar="N", help="Keep the N newest snapshots.")
@click.option("--keep-within", metavar="DURATION", help="Keep every snapshot younger than this.")
@click.option("--keep-hourly", type=int, metavar="N", help="Keep the last snapshot of N hours.")
@click.option("--keep-daily", type=int, metavar="N", help="Keep the last snapshot of N days.")
@click.option("--keep-weekly", type=int, metavar="N", help="Keep the last snapshot of N weeks.")
@click.option("--keep-monthly", type=int, metavar="N", help="Keep the last snapshot of N months.")
@click.option("--keep-yearly", type=int, metavar="N", help="Keep the last snapshot of N years.")
@click.option("--min-keep", type=int, metavar="N", help="Never keep fewer snapshots than this.")
@dry_run_option
def gc(**_: object) -> None:
    """Drop snapshots past the retention policy and the versions only they needed."""
    raise NotImplementedYet("`gc` is not implemented yet")


@click.command()
@click.argument("snapshot_id", metavar="ID")
@click.option(
    "--read-data", type=float, metavar="PERCENT", help="Also read this share of the data."
)
def verify(snapshot_id: str, read_data: float | None) -> None:
    """Check that every version a snapshot needs still exists, with its size and ETag."""
    raise NotImplementedYet("`verify` is not implemented yet")


@click.command()
def promote() -> None:
    """Fallback: make the backup the new primary and start a fresh backup relationship."""
    raise NotImplementedYet("`promote` is not implemented yet")


COMMANDS = [gc, verify, promote]
