"""A click group whose commands are imported when one of them runs, not at start-up.

Each command module pulls in its engines (asyncio, the catalog, the ops layer...); importing
all of them cost more than the rest of ``bmb --help``. The group knows each command by name,
the module that defines it (``cli/commands/<module>.py``, whose ``COMMANDS`` it registers) and
its one-line summary, so the command list of ``--help`` needs no import.
tests/cli/test_docs.py checks every summary against the command's own help text.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

import click


class LazyGroup(click.Group):
    """Commands listed in the given order (the workflow's, docs/cli.md), imported on use."""

    def __init__(self, *args: object, lazy: Mapping[str, tuple[str, str]], **kwargs: object):
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy = dict(lazy)  # name -> (module under cli/commands, one-line summary)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*self.lazy, *(name for name in self.commands if name not in self.lazy)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            package = __name__.rpartition(".")[0]
            module = importlib.import_module(f"{package}.commands.{self.lazy[cmd_name][0]}")
            for command in module.COMMANDS:
                self.commands.setdefault(command.name or "", command)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's command list, each summary from the table unless the command is loaded."""
        rows: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            command = self.commands.get(name)
            if command is None and name in self.lazy:
                command = click.Command(name, help=self.lazy[name][1])
            if command is not None and not command.hidden:
                rows.append((name, command))
        if rows:
            limit = formatter.width - 6 - max(len(name) for name, _ in rows)
            with formatter.section("Commands"):
                formatter.write_dl([(name, cmd.get_short_help_str(limit)) for name, cmd in rows])
