"""Where the CLI's log records go: stderr at the verbosity asked for, and a log file.

- stderr: warnings and errors; ``-v`` adds what the command does (INFO: the endpoint each
  client talks to, the catalog in use, each phase's totals); ``-vv`` and ``--debug`` add
  every S3 request (DEBUG; ``--debug`` also prints tracebacks).
- ``--log-file PATH``: appended to, INFO and up (DEBUG with ``-vv``/``--debug``), whatever
  ``-q`` says; it also records every line the command printed for people (the
  :data:`OUTPUT_LOGGER` records: narration, warnings, errors, progress lines). Text lines, or
  JSON lines (``{"time", "level", "logger", "message"}``, plus ``"traceback"``) when PATH
  ends in ``.jsonl`` or ``.json``.

Every line, tracebacks included, goes through :func:`~..storage.s3.redact.redact`.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

from ..errors import UsageError
from ..storage.s3.redact import RedactingFormatter, redact
from ..units import format_time

OUTPUT_LOGGER = "backup_my_bucket.output"
"""The lines :class:`~.output.Output` printed for people; stderr has them already."""

TEXT_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"
JSON_SUFFIXES = (".jsonl", ".json")


class JsonLinesFormatter(RedactingFormatter):
    """One JSON object per record: time (UTC, ISO), level, logger, message[, traceback]."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": format_time(datetime.fromtimestamp(record.created, UTC)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["traceback"] = self.formatException(record.exc_info)
        return redact(json.dumps(data, ensure_ascii=False))


class _NotOutput(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.name != OUTPUT_LOGGER


def level_for(verbose: int, debug: bool) -> int:
    """stderr's level: WARNING, INFO with -v, DEBUG with -vv or --debug."""
    if debug or verbose >= 2:
        return logging.DEBUG
    return logging.INFO if verbose == 1 else logging.WARNING


def setup_logging(verbose: int = 0, debug: bool = False, log_file: Path | None = None) -> None:
    """Replace the root logger's handlers (an earlier in-process run's are closed)."""
    close_logging()
    stderr_level = level_for(verbose, debug)
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setLevel(stderr_level)
    stderr.addFilter(_NotOutput())
    stderr.setFormatter(RedactingFormatter(TEXT_FORMAT))
    handlers: list[logging.Handler] = [stderr]
    levels = [stderr_level]
    if log_file is not None:
        try:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            file = logging.FileHandler(log_file, encoding="utf-8")
        except OSError as exc:
            raise UsageError(
                f"cannot write the log file {log_file}: {exc.strerror or exc}",
                hint="pass --log-file a path in a writable directory",
            ) from None
        file_level = min(stderr_level, logging.INFO)
        file.setLevel(file_level)
        file.setFormatter(
            JsonLinesFormatter()
            if log_file.suffix.lower() in JSON_SUFFIXES
            else RedactingFormatter(TEXT_FORMAT)
        )
        handlers.append(file)
        levels.append(file_level)
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(min(levels))
    requests = debug or verbose >= 2
    # botocore's own DEBUG is a firehose of signing internals; requests are enough. Without
    # -vv, undo what an earlier in-process run set (request bodies must not be logged).
    logging.getLogger("botocore").setLevel(logging.INFO if requests else logging.WARNING)
    logging.getLogger("botocore.endpoint").setLevel(logging.DEBUG if requests else logging.NOTSET)


def close_logging() -> None:
    """Close the handlers :func:`setup_logging` opened (the log file), keeping stderr's."""
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.close()
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, logging.FileHandler)]
