"""snapshot, snapshots, show, ls, diff."""

from __future__ import annotations

import click

from ...errors import NotImplementedYet
from ..options import backup_option, snapshot_options, source_option


@click.command()
@backup_option()
@source_option(required=False)
@snapshot_options
def snapshot(**_: object) -> None:
    """Record a restoration point: the version of every key in the backup bucket at one instant."""
    raise NotImplementedYet("`snapshot` is not implemented yet")


@click.command()
def snapshots() -> None:
    """List the restoration points in the catalog."""
    raise NotImplementedYet("`snapshots` is not implemented yet")


@click.command()
@click.argument("snapshot_id", metavar="ID")
def show(snapshot_id: str) -> None:
    """Show one snapshot's metadata. ID may be a unique prefix."""
    raise NotImplementedYet("`show` is not implemented yet")


@click.command(name="ls")
@click.argument("snapshot_id", metavar="ID")
@click.option("--prefix", default="", help="Only keys under this prefix.")
def ls_(snapshot_id: str, prefix: str) -> None:
    """List the keys and versions a snapshot holds."""
    raise NotImplementedYet("`ls` is not implemented yet")


@click.command()
@click.argument("snapshot_id", metavar="ID")
@click.argument("other", metavar="ID2|live")
def diff(snapshot_id: str, other: str) -> None:
    """Show what changed between two snapshots, or between a snapshot and the live bucket."""
    raise NotImplementedYet("`diff` is not implemented yet")


COMMANDS = [snapshot, snapshots, show, ls_, diff]
