"""Progress on stderr: a labelled bar on a terminal; in logs, lines with count, bytes, rate and
ETA at an interval and one at the end of each phase; nothing for machines (--json) or -q."""

from __future__ import annotations

import io
import logging
from datetime import timedelta

import pytest
from rich.console import Console

from backup_my_bucket.cli.output import Output
from backup_my_bucket.cli.progress import (
    LINE_INTERVAL,
    LineProgress,
    Phase,
    QuietProgress,
    RichProgress,
    make_progress,
)
from backup_my_bucket.clock import ManualClock


def test_bar_has_the_label_counts_bytes_rate_and_eta() -> None:
    stream = io.StringIO()
    clock = ManualClock()
    progress = RichProgress(Console(file=stream, force_terminal=True, width=160), clock)
    progress.start("restore: copying", unit="objects")
    progress.advance(3, 3 * 1024 * 1024)
    progress.total(10, 10 * 1024 * 1024)
    clock.advance(timedelta(seconds=2))
    progress.advance(2, 2 * 1024 * 1024)
    progress._bar.refresh()
    drawn = stream.getvalue()
    progress.finish()
    progress.advance(1)  # after finish: ignored, never an error
    assert "restore: copying" in drawn
    assert "5/10 objects, 5.0 MiB/10.0 MiB, 2 objects/s, 2.5 MiB/s, ETA 2s" in drawn


def test_unknown_totals_show_no_question_marks_or_zero_bytes() -> None:
    """The restore planning bar once ended at `2874/? 0 B`."""
    stream = io.StringIO()
    clock = ManualClock()
    progress = RichProgress(Console(file=stream, force_terminal=True, width=160), clock)
    progress.start("restore: planning", unit="keys")
    clock.advance(timedelta(seconds=1))
    progress.advance(2874)
    progress._bar.refresh()
    drawn = stream.getvalue()
    progress.finish()
    assert "restore: planning" in drawn and "2,874 keys, 2,874 keys/s" in drawn
    assert "/?" not in drawn and " 0 B" not in drawn


def test_lines_for_logs_carry_count_bytes_rate_and_eta() -> None:
    err = io.StringIO()
    clock = ManualClock()
    lines = make_progress(Output(False, io.StringIO(), err), clock)
    assert isinstance(lines, LineProgress)
    lines.start("sync", total=10, total_bytes=1000)
    lines.advance(3, 300)
    clock.advance(timedelta(seconds=LINE_INTERVAL - 1))
    lines.advance(1, 100)
    assert err.getvalue() == ""  # not before the interval
    clock.advance(timedelta(seconds=1))
    lines.advance(1, 100)
    assert err.getvalue() == "sync: 5/10 objects, 500 B/1000 B, 0 objects/s, 50 B/s, ETA 10s\n"
    lines.start("verify: checking versions", unit="versions")  # ends the last phase
    assert err.getvalue().splitlines()[-1] == "sync: 5 objects, 500 B in 10s"
    lines.advance(7)
    lines.finish()
    assert err.getvalue().splitlines()[-1] == "verify: checking versions: 7 versions in 0s"


def test_rates_use_the_slower_of_items_and_bytes_for_the_eta() -> None:
    phase = Phase("copy", total=100, total_bytes=1000, items=50, nbytes=100)
    assert phase.eta(10.0) == 90.0  # bytes: 900 left at 10 B/s (items alone would say 10 s)


def test_no_progress_for_json_or_quiet_but_the_log_has_the_phases(
    caplog: pytest.LogCaptureFixture,
) -> None:
    for output in (
        Output(True, io.StringIO(), io.StringIO()),
        Output(False, io.StringIO(), io.StringIO(), quiet=True),
    ):
        clock = ManualClock()
        progress = make_progress(output, clock)
        assert isinstance(progress, QuietProgress)
        with caplog.at_level(logging.INFO, logger="backup_my_bucket.cli.progress"):
            progress.start("sync", total=3)
            progress.advance(3, 30)
            clock.advance(timedelta(seconds=2))
            progress.finish()
        assert output.stderr.getvalue() == output.stdout.getvalue() == ""  # type: ignore[attr-defined]
        assert caplog.messages[-2:] == ["sync: started", "sync: 3 objects, 30 B in 2s"]
