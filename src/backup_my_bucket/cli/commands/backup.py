"""init, sync, backup."""

from __future__ import annotations

import click

from ...errors import NotImplementedYet
from ...model import S3Url
from ..options import backup_option, snapshot_options, source_option, sync_options


@click.command()
@source_option()
@backup_option()
@click.option("--yes", is_flag=True, help="Enable versioning on the backup bucket without asking.")
def init(source: S3Url, backup: S3Url, yes: bool) -> None:
    """Check access to both buckets and enable versioning on the backup bucket.

    Warns when a lifecycle rule would expire the noncurrent versions restores need.
    """
    raise NotImplementedYet("`init` is not implemented yet")


@click.command()
@sync_options
def sync(**_: object) -> None:
    """Copy new and changed objects from the source into the backup bucket.

    Keys gone from the source get a delete marker in the backup: their history stays.
    """
    raise NotImplementedYet("`sync` is not implemented yet")


@click.command()
@sync_options
@snapshot_options
def backup(**_: object) -> None:
    """Sync, then take a snapshot: one restoration point in one command."""
    raise NotImplementedYet("`backup` is not implemented yet")


COMMANDS = [init, sync, backup]
