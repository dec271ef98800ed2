"""The rich progress on stderr: drawn on a terminal, silent for machines."""

from __future__ import annotations

import io
from datetime import timedelta

from rich.console import Console

from backup_my_bucket.cli.output import Output
from backup_my_bucket.cli.progress import LineProgress, RichProgress, make_progress
from backup_my_bucket.clock import ManualClock
from backup_my_bucket.engine.progress import NullProgress


def test_progress_draws_rate_bytes_and_total() -> None:
    stream = io.StringIO()
    progress = RichProgress(Console(file=stream, force_terminal=True, width=120))
    progress.start("sync")
    progress.advance(3, 3 * 1024 * 1024)
    progress.total(10, 10 * 1024 * 1024)
    progress.advance(7, 0)
    progress.finish()
    progress.advance(1)  # after finish: ignored, never an error
    assert "sync" in stream.getvalue()


def test_no_progress_for_json_and_lines_for_pipes() -> None:
    assert isinstance(make_progress(Output(True, io.StringIO(), io.StringIO())), NullProgress)
    err = io.StringIO()
    clock = ManualClock()
    lines = make_progress(Output(False, io.StringIO(), err), clock)
    assert isinstance(lines, LineProgress)
    lines.start("copying", total=10)
    lines.advance(3, 300)
    clock.advance(timedelta(seconds=6))
    lines.advance(1, 100)
    assert "copying: 4/10 (400 B)" in err.getvalue()
