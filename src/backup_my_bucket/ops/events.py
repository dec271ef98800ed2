"""The daemon's log: one event per line, JSON by default (journald, Loki, jq), or text."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, TextIO

from ..clock import Clock
from ..units import format_time


def _plain(value: Any) -> str:
    return format_time(value) if isinstance(value, datetime) else str(value)


class EventLog:
    """Writes events such as ``run.started`` with their fields; ``stream`` None: silent."""

    def __init__(self, stream: TextIO | None, clock: Clock, *, json_lines: bool = True) -> None:
        self.stream = stream
        self.clock = clock
        self.json_lines = json_lines

    def emit(self, event: str, level: str = "info", **fields: Any) -> None:
        if self.stream is None:
            return
        moment = format_time(self.clock.now())
        if self.json_lines:
            data = {"time": moment, "level": level, "event": event, **fields}
            line = json.dumps(data, ensure_ascii=False, default=_plain)
        else:
            values = " ".join(f"{key}={_plain(value)}" for key, value in fields.items())
            line = f"{moment} {level} {event} {values}".rstrip()
        self.stream.write(line + "\n")
        self.stream.flush()
