"""The CLI's log: JSON lines or text, every line redacted; stderr's level follows -v."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

from backup_my_bucket.cli.logs import (
    OUTPUT_LOGGER,
    JsonLinesFormatter,
    close_logging,
    level_for,
    setup_logging,
)
from backup_my_bucket.errors import UsageError
from backup_my_bucket.storage.s3.redact import remember

SECRET = "log-secret-Qw7r"


def test_json_lines_are_redacted_and_carry_the_traceback() -> None:
    remember(SECRET)
    try:
        raise ValueError(f"boom with {SECRET}")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "key %s", (SECRET,), True)
        record.exc_info = sys.exc_info()
    line = JsonLinesFormatter().format(record)
    data = json.loads(line)
    assert set(data) == {"time", "level", "logger", "message", "traceback"}
    assert data["level"] == "error" and data["message"] == "key ***"
    assert "ValueError: boom with ***" in data["traceback"] and SECRET not in line


def test_levels_and_the_log_file(tmp_path: Path) -> None:
    assert [level_for(v, False) for v in (0, 1, 2)] == [logging.WARNING, logging.INFO, 10]
    assert level_for(0, True) == logging.DEBUG
    log = tmp_path / "run.log"
    setup_logging(0, False, log)
    try:
        logging.getLogger("backup_my_bucket.x").info("a detail")
        logging.getLogger("backup_my_bucket.x").debug("not at INFO")
        logging.getLogger(OUTPUT_LOGGER).info("a line printed for people")
    finally:
        close_logging()
    text = log.read_text()
    assert "INFO a detail" in text and "a line printed for people" in text
    assert "not at INFO" not in text


def test_an_unwritable_log_file_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match=r"cannot write the log file /proc/bmb/x\.log"):
        setup_logging(0, False, Path("/proc/bmb/x.log"))
    close_logging()
