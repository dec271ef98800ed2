"""demo."""

from __future__ import annotations

import click

from ...errors import NotImplementedYet


@click.command()
def demo() -> None:
    """The whole story on an embedded local S3 server: back up, break, restore, verify."""
    raise NotImplementedYet("`demo` is not implemented yet")


COMMANDS = [demo]
