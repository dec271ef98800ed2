"""The restore journals in a directory: what each is about, and their retention.

A journal (engine/journal.py) outlives a restore that failed or was interrupted, so that the
same command can continue. A restore whose moment was relative (``--at "3h ago"``) or that
is never rerun leaves its journal behind; :data:`RETENTION` bounds how long one stays: every
restore removes the journals not written to for that long before it starts, and
`bmb journals` lists them and removes them on request.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..units import format_time

RETENTION = timedelta(days=30)
PATTERN = "restore-*.jsonl"


@dataclass(frozen=True, slots=True)
class JournalInfo:
    """One journal file: the restore it belongs to and how much it records."""

    path: Path
    header: dict[str, Any]
    items: int  # finished copies and deletes recorded
    size: int
    modified: datetime

    @property
    def id(self) -> str:
        return self.path.stem.removeprefix("restore-")

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path": str(self.path),
            "backup": self.header.get("backup"),
            "point": self.header.get("point"),
            "target": self.header.get("target"),
            "mode": self.header.get("mode"),
            "items": self.items,
            "bytes": self.size,
            "modified": format_time(self.modified),
        }


def read_info(path: Path) -> JournalInfo | None:
    """What ``path`` records; None when it vanished meanwhile (another restore finished)."""
    try:
        stat = path.stat()
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
    header: dict[str, Any] = {}
    items = 0
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line
        if isinstance(record, dict) and isinstance(record.get("restore"), dict) and not header:
            header = record["restore"]
        elif isinstance(record, dict) and "op" in record:
            items += 1
    modified = datetime.fromtimestamp(stat.st_mtime, UTC)
    return JournalInfo(path, header, items, stat.st_size, modified)


def list_journals(directory: Path) -> list[JournalInfo]:
    """Every journal in ``directory``, oldest first (none when it does not exist)."""
    found = (read_info(p) for p in sorted(directory.glob(PATTERN)))
    return sorted((j for j in found if j is not None), key=lambda j: (j.modified, j.id))


def remove_old(
    directory: Path, now: datetime, older_than: timedelta = RETENTION
) -> list[JournalInfo]:
    """Remove the journals not written to within ``older_than`` of ``now``; return them.
    A journal is never needed for safety: without it a rerun only repeats the copies a
    listing cannot prove done (engine/journal.py)."""
    removed = []
    for journal in list_journals(directory):
        if now - journal.modified > older_than:
            with contextlib.suppress(FileNotFoundError):
                journal.path.unlink()
            removed.append(journal)
    return removed
