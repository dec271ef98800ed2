"""Where the CLI writes: results on stdout (JSON with --json), people's text on stderr."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO

from ..units import format_size
from .logs import OUTPUT_LOGGER

if TYPE_CHECKING:
    from rich.console import Console

_log = logging.getLogger(OUTPUT_LOGGER)


def printable(key: str) -> str:
    """A key on one line of text: as it is, or quoted when it holds control characters."""
    return key if key.isprintable() else repr(key)


def _default(value: object) -> object:
    if hasattr(value, "isoformat"):
        from ..units import format_time

        return format_time(value)  # type: ignore[arg-type]
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class Output:
    """One writer for a command's results, messages and progress.

    With ``json_mode`` stdout carries exactly one JSON object per result (or one per line for
    listings) and nothing else; human text and progress always go to stderr. With ``quiet``
    (``-q``) stderr gets only warnings, errors and what belongs to them (:meth:`detail`).
    Every line for people also goes to the log (a ``--log-file`` keeps it; cli/logs.py).
    """

    def __init__(
        self,
        json_mode: bool,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
        *,
        quiet: bool = False,
    ) -> None:
        self.json_mode = json_mode
        self.quiet = quiet
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr

    @functools.cached_property
    def console(self) -> Console:
        """rich's console on stderr, made (and rich imported) when first written to."""
        from rich.console import Console

        return Console(file=self.stderr, highlight=False, soft_wrap=True)

    def _say(self, text: str, style: str | None = None) -> None:
        """A line on stderr: through rich on a terminal (colour, wrapping), as is elsewhere
        (logs, pipes: what rich would write there, without importing it)."""
        if self.stderr.isatty():
            self.console.print(text, markup=False, emoji=False, style=style)
        else:
            self.stderr.write(text + "\n")
            self.stderr.flush()

    def result(self, data: Mapping[str, Any], human: str | None = None) -> None:
        """The final result: JSON on stdout with --json, else ``human`` on stdout."""
        if self.json_mode:
            self.stdout.write(json.dumps(data, default=_default, ensure_ascii=False) + "\n")
        elif human is not None:
            self.stdout.write(human.rstrip("\n") + "\n")
        self.stdout.flush()

    def item(self, data: Mapping[str, Any], human: str) -> None:
        """One item of a listing: a JSON line with --json, else a text line."""
        if self.json_mode:
            self.stdout.write(json.dumps(data, default=_default, ensure_ascii=False) + "\n")
        else:
            self.stdout.write(human + "\n")

    def planned(self, action: Mapping[str, Any]) -> None:
        """One planned action of a dry run (``{"action", "key", "version_id", "size",
        "reason"}``): a JSON line, else ``copy    key  1.2 KiB  (reason)``."""
        self.item(
            action,
            f"{action['action']:<6}  {printable(action['key'])}  "
            f"{format_size(action['size'])}  ({action['reason']})",
        )

    def info(self, text: str) -> None:
        """Narration and progress lines: not with ``-q``."""
        _log.info(text)
        if not self.quiet:
            self._say(text)

    def detail(self, text: str) -> None:
        """A line that belongs to an error or a question (the failures, what would be
        deleted): shown even with ``-q``."""
        _log.info(text)
        self._say(text)

    def warn(self, text: str) -> None:
        _log.warning(text)
        self._say(f"warning: {text}", "yellow")

    def error(self, text: str, hint: str | None = None) -> None:
        _log.error(text + (f" (hint: {hint})" if hint else ""))
        self._say(f"error: {text}", "bold red")
        if hint:
            self._say(f"hint: {hint}")
