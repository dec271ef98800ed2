"""Progress on stderr for people: what is counted, how far, how fast, and how long to go.

A bar on a terminal; without one (logs of scheduled runs) a plain line every
:data:`LINE_INTERVAL` seconds and one when the phase ends; nothing with ``--json`` or ``-q``.
Both say the same thing, made by :class:`Phase`:
``restore: copying  1,200/3,000 objects, 45.2 MiB/120.0 MiB, 310 objects/s, 5.1 MiB/s, ETA 6m05s``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..clock import SYSTEM_CLOCK, Clock
from ..engine.progress import Progress
from ..units import format_duration, format_size
from .output import Output

if TYPE_CHECKING:
    from rich.console import Console

log = logging.getLogger(__name__)
LINE_INTERVAL = 10.0  # seconds between two lines in a log: a run of an hour writes ~360


@dataclass(slots=True)
class Phase:
    """One phase's counters, and the text both renderers print."""

    description: str
    unit: str = "objects"
    started: float = 0.0
    total: int | None = None
    total_bytes: int | None = None
    items: int = 0
    nbytes: int = 0

    def counts(self) -> str:
        done = f"{self.items:,}" + (f"/{self.total:,}" if self.total is not None else "")
        return f"{done} {self.unit}"

    def sizes(self) -> str | None:
        if self.total_bytes:
            return f"{format_size(self.nbytes)}/{format_size(self.total_bytes)}"
        return format_size(self.nbytes) if self.nbytes else None

    def stats(self, now: float) -> str:
        """Counts, bytes, rates and the ETA (once a total is known) at ``now`` (monotonic)."""
        parts = [self.counts()]
        sizes = self.sizes()
        if sizes:
            parts.append(sizes)
        elapsed = now - self.started
        if elapsed >= 1 and self.items:
            parts.append(f"{self.items / elapsed:,.0f} {self.unit}/s")
            if self.nbytes:
                parts.append(f"{format_size(int(self.nbytes / elapsed))}/s")
            eta = self.eta(elapsed)
            if eta is not None:
                parts.append(f"ETA {format_duration(eta)}")
        return ", ".join(parts)

    def eta(self, elapsed: float) -> float | None:
        """Seconds left at the average rate so far: the slower of items and bytes."""
        left: list[float] = []
        if self.total is not None and self.items:
            left.append((self.total - self.items) * elapsed / self.items)
        if self.total_bytes and self.nbytes:
            left.append((self.total_bytes - self.nbytes) * elapsed / self.nbytes)
        return max(0.0, max(left)) if left else None

    def summary(self, now: float) -> str:
        size = f", {format_size(self.nbytes)}" if self.nbytes else ""
        return f"{self.description}: {self.items:,} {self.unit}{size} in " + format_duration(
            now - self.started
        )


class _PhaseProgress:
    """A :class:`Progress` that keeps the current :class:`Phase` and logs its start and
    totals (INFO: ``-v``, ``--log-file``); subclasses draw it (the ``_on_*`` hooks)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.phase: Phase | None = None

    def start(
        self,
        description: str,
        total: int | None = None,
        total_bytes: int | None = None,
        *,
        unit: str = "objects",
    ) -> None:
        self.finish()
        self.phase = Phase(description, unit, self.clock.monotonic(), total, total_bytes)
        log.info("%s: started", description)
        self._on_start(self.phase)

    def total(self, total: int | None = None, total_bytes: int | None = None) -> None:
        if self.phase is not None:
            self.phase.total, self.phase.total_bytes = total, total_bytes
            self._on_total(self.phase)

    def advance(self, items: int = 1, nbytes: int = 0) -> None:
        if self.phase is not None:
            self.phase.items += items
            self.phase.nbytes += nbytes
            self._on_advance(self.phase)

    def finish(self) -> None:
        phase, self.phase = self.phase, None
        if phase is not None:
            self._on_finish(phase)
            log.info("%s", phase.summary(self.clock.monotonic()))

    def _on_start(self, phase: Phase) -> None:
        pass

    def _on_total(self, phase: Phase) -> None:
        pass

    def _on_advance(self, phase: Phase) -> None:
        pass

    def _on_finish(self, phase: Phase) -> None:
        pass


class QuietProgress(_PhaseProgress):
    """Nothing on stderr (``--json``, ``-q``); each phase's start and totals still go to the
    log (``-v`` on stderr, ``--log-file``)."""


class RichProgress(_PhaseProgress):
    """Drawn with rich (imported when a bar is drawn, not at start-up): the label, a bar once
    the total is known, then :meth:`Phase.stats`."""

    def __init__(self, console: Console, clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(clock)
        from rich.progress import BarColumn, TextColumn
        from rich.progress import Progress as RichBar

        self._bar = RichBar(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[stats]}"),
            console=console,
            transient=True,
        )
        self._task: Any = None

    def _on_start(self, phase: Phase) -> None:
        self._bar.start()
        self._task = self._bar.add_task(phase.description, total=phase.total, stats=phase.counts())

    def _on_total(self, phase: Phase) -> None:
        self._bar.update(self._task, total=phase.total)

    def _on_advance(self, phase: Phase) -> None:
        stats = phase.stats(self.clock.monotonic())
        self._bar.update(self._task, completed=phase.items, stats=stats)

    def _on_finish(self, phase: Phase) -> None:
        self._bar.stop()
        self._bar.remove_task(self._task)
        self._task = None


class LineProgress(_PhaseProgress):
    """Plain lines on stderr: one per ``interval`` seconds, and one when the phase ends."""

    def __init__(self, output: Output, clock: Clock, interval: float = LINE_INTERVAL) -> None:
        super().__init__(clock)
        self._output, self._interval = output, interval
        self._last = 0.0

    def _on_start(self, phase: Phase) -> None:
        self._last = phase.started

    def _on_advance(self, phase: Phase) -> None:
        now = self.clock.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self._output.info(f"{phase.description}: {phase.stats(now)}")

    def _on_finish(self, phase: Phase) -> None:
        if phase.items:
            self._output.info(phase.summary(self.clock.monotonic()))


def make_progress(output: Output, clock: Clock = SYSTEM_CLOCK) -> Progress:
    """A bar on a terminal; a line every few seconds in logs (stderr not a terminal);
    nothing on stderr with --json or -q (the log still has each phase)."""
    if output.json_mode or output.quiet:
        return QuietProgress(clock)
    if not output.stderr.isatty():
        return LineProgress(output, clock)
    return RichProgress(output.console, clock)
