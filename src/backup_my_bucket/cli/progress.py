"""Progress on stderr for people: a bar, objects per second, bytes, and an ETA.

Silent (:class:`~backup_my_bucket.engine.progress.NullProgress`) for machines: with ``--json``
or when stderr is not a terminal.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichBar
from rich.text import Text

from ..engine.progress import NullProgress, Progress
from ..units import format_size
from .output import Output


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} obj/s" if speed else "- obj/s")


class RichProgress:
    """A :class:`Progress` drawn with rich; the ETA appears once the total is known."""

    def __init__(self, console: Console) -> None:
        self._bar = RichBar(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[nbytes]}"),
            _RateColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self._task: TaskID | None = None
        self._nbytes = 0

    def start(
        self, description: str, total: int | None = None, total_bytes: int | None = None
    ) -> None:
        self._bar.start()
        self._nbytes = 0
        self._task = self._bar.add_task(description, total=total, nbytes="")

    def total(self, total: int | None = None, total_bytes: int | None = None) -> None:
        if self._task is not None:
            self._bar.update(self._task, total=total)

    def advance(self, items: int = 1, nbytes: int = 0) -> None:
        if self._task is not None:
            self._nbytes += nbytes
            self._bar.update(self._task, advance=items, nbytes=format_size(self._nbytes))

    def finish(self) -> None:
        self._bar.stop()
        self._task = None


def make_progress(output: Output) -> Progress:
    """Rich progress on a terminal; nothing with --json or when stderr is piped."""
    if output.json_mode or not output.stderr.isatty():
        return NullProgress()
    return RichProgress(output.console)
