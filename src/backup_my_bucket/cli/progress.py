"""Progress on stderr for people: a bar, objects per second, bytes, and an ETA.

Plain lines every few seconds when stderr is not a terminal (logs of scheduled runs); silent
(:class:`~backup_my_bucket.engine.progress.NullProgress`) with ``--json``.
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

from ..clock import SYSTEM_CLOCK, Clock
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


def make_progress(output: Output, clock: Clock = SYSTEM_CLOCK) -> Progress:
    """A bar on a terminal; a line per second in logs (stderr piped); nothing with --json."""
    if output.json_mode:
        return NullProgress()
    if not output.stderr.isatty():
        return LineProgress(output, clock, interval=5.0)
    return RichProgress(output.console)
