"""The restore journal: a local, append-only record of finished work, so a rerun resumes.

One file per *run identity* (the hash of backup URL, restoration point, target URL, mode and
filters). Each finished copy or delete appends one JSON line, flushed at once (a ``kill -9``
loses nothing the OS already has; a machine crash may lose the last lines, which is harmless:
see below). The file is removed when a run completes and verifies.

Why a journal at all? A rerun re-plans against the target's *current* listing, so finished
single-part copies (same size and MD5 ETag) and finished deletes (key absent) are skipped
without it. What a listing cannot prove is a copy whose source ETag is a multipart ETag: the
copy gets a different ETag, so "same size and ETag" says "changed" and a rerun would copy it
again, forever. The journal records, for each finished copy, the ETag the target got; a rerun
skips a key when the target still shows exactly that ETag and size for the same source
version. Losing journal lines therefore costs at most a repeated copy, never a wrong state.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..errors import BackupError

JOURNAL_FORMAT = 1


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """A finished copy: the source version it restored and what the target then showed."""

    version_id: str
    etag: str
    size: int


def run_identity(fields: Mapping[str, Any]) -> str:
    """A stable hex id for one restore request (same command → same id)."""
    blob = json.dumps({"format": JOURNAL_FORMAT, **fields}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


class Journal:
    """Append-only lines of finished work for one run identity, under ``directory``."""

    def __init__(self, directory: Path, identity: str, header: Mapping[str, Any]) -> None:
        self.path = directory / f"restore-{identity}.jsonl"
        self._header = dict(header)
        self._file: IO[str] | None = None
        self.copies: dict[str, JournalEntry] = {}
        """Finished copies of earlier runs whose ETag differs from the source's (multipart)."""
        self.earlier = 0
        """How many finished items earlier runs recorded."""

    def load(self) -> None:
        """Read what earlier runs finished; a torn last line (a crash mid-write) is ignored."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as exc:
            raise BackupError(f"cannot read the restore journal {self.path}: {exc}") from exc
        for line in text.splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(record, dict) or "op" not in record:
                continue
            self.earlier += 1
            if record["op"] == "copy" and record.get("etag") != record.get("src_etag"):
                self.copies[record["key"]] = JournalEntry(
                    record["version_id"], record["etag"], int(record["size"])
                )

    def open(self) -> None:
        """Open for appending (create with a header line the first time)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fresh = not self.path.exists()
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
            if fresh:
                self._write({"restore": self._header})
        except OSError as exc:
            raise BackupError(
                f"cannot write the restore journal {self.path}: {exc}",
                hint="pass --journal-dir with a writable directory",
            ) from exc

    def _write(self, record: Mapping[str, Any]) -> None:
        assert self._file is not None
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()  # to the OS: survives the death of this process

    def copied(self, key: str, version_id: str, src_etag: str | None, etag: str, size: int) -> None:
        self._write(
            {
                "op": "copy",
                "key": key,
                "version_id": version_id,
                "src_etag": src_etag,
                "etag": etag,
                "size": size,
            }
        )

    def deleted(self, key: str) -> None:
        self._write({"op": "delete", "key": key})

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.flush()
                os.fsync(self._file.fileno())
            self._file.close()
            self._file = None

    def remove(self) -> None:
        """The run completed and verified: nothing left to resume."""
        self.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
