"""Ask before destroying: the one confirmation every command that needs one uses.

A question is asked only of a person: stdin and stderr are a terminal and ``--json`` is not
given. Anyone else (a script, cron, a pipe, ``--json``) must pass ``--yes``; without it the
command stops with exit 2 before changing anything. The question and what it is about go to
stderr, never to stdout, so results stay clean.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from ..engine.actions import ActionKind
from ..errors import NotConfirmed
from ..units import format_size, plural
from .output import Output, printable

if TYPE_CHECKING:  # the restore engine: not imported by the commands that only ask
    from ..engine.restore import Confirm, Destruction

NO_ANSWER = "the answer was no: nothing changed"


def interactive(output: Output) -> bool:
    """Whether a person can answer: a terminal on both ends of the question, no --json."""
    return not output.json_mode and sys.stdin.isatty() and output.stderr.isatty()


def confirm(
    output: Output,
    *,
    yes: bool,
    question: str,
    refused: str,
    hint: str,
    details: Sequence[str] = (),
) -> None:
    """Return when the step may go on: ``--yes``, or "y" typed at the terminal.

    Otherwise raise :class:`NotConfirmed` (exit 2): ``refused`` and ``hint`` when nobody can
    be asked, "the answer was no" when the person said no. ``details`` (what would be lost)
    are printed on stderr first, in both cases.
    """
    if yes:
        return
    for line in details:
        output.detail(line)
    if not interactive(output):
        raise NotConfirmed(refused, hint=hint)
    if not click.confirm(question, default=False, err=True):
        raise NotConfirmed(NO_ANSWER)


def _what(plan: Destruction) -> str:
    """``delete 2 objects and overwrite 1 object``."""
    return (
        f"delete {plural(plan.deletes, 'object')} and overwrite {plural(plan.overwrites, 'object')}"
    )


def describe_destruction(plan: Destruction) -> list[str]:
    """What a restore would delete or overwrite: counts, bytes, the first keys, the way back."""
    lines = [
        f"this restore would {_what(plan)} in {plan.target} ({format_size(plan.nbytes)} there now):"
    ]
    for action in plan.first:
        verb = "delete   " if action.kind is ActionKind.DELETE else "overwrite"
        lines.append(f"  {verb} {printable(action.key)}  ({format_size(action.target_size or 0)})")
    more = plan.deletes + plan.overwrites - len(plan.first)
    if more > 0:
        lines.append(f"  ... and {more:,} more (--dry-run lists every one)")
    if plan.versioned is True:
        lines.append(
            f"s3://{plan.target.bucket} is versioned: what is replaced stays there as "
            "older versions"
        )
    elif plan.versioned is False:
        lines.append(
            f"s3://{plan.target.bucket} is NOT versioned: what is deleted or "
            "overwritten there is gone for good"
        )
    return lines


def confirm_restore(output: Output, yes: bool, command: str = "restore") -> Confirm:
    """The ``confirm`` callback of a restore (restore, promote): asks about the plan."""

    def ask(plan: Destruction) -> None:
        confirm(
            output,
            yes=yes,
            question="Go on?",
            refused=f"{command} would {_what(plan)} in {plan.target}, and was not "
            "confirmed: nothing changed",
            hint="pass --yes to go ahead, or run it with --dry-run first to see every change",
            details=describe_destruction(plan),
        )

    return ask
