"""The restore journal: a local, append-only record of finished work, so a rerun resumes.

One file per *run identity* (the hash of backup URL, restoration point, target URL, mode and
filters). Each finished copy or delete appends one JSON line, flushed at once (a ``kill -9``
loses nothing the OS already has; a machine crash may lose the last lines, which is harmless:
see below). When a run completes and verifies, the file shrinks to the copies that no listing
can prove (below), so rerunning the same restore copies nothing; without any, it is removed.

Why a journal at all? A rerun re-plans against the target's *current* listing, so finished
single-part copies (same size and MD5 ETag) and finished deletes (key absent) are skipped
without it. What a listing cannot prove is a copy whose source ETag is a multipart ETag: the
copy gets a different ETag, so "same size and ETag" says "changed" and a rerun would copy it
again, forever. The journal records, for each finished copy, the ETag the target got; a rerun
skips a key when the target still shows exactly that ETag and size for the same source
version and source ETag (a ``null`` version id alone does not name one content). Losing
journal lines therefore costs at most a repeated copy, never a wrong state.
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
_PROOF = "proof"
"""A copy that a completed run kept (not work an interrupted run finished)."""


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """A finished copy: the source version it restored and what the target then showed."""

    version_id: str
    etag: str
    size: int
    src_etag: str | None = None  # the source version's ETag as the restoration point lists it


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
            op, key = record["op"], str(record.get("key"))
            self.earlier += op != _PROOF
            self.copies.pop(key, None)  # the last line about a key is what holds
            if op in ("copy", _PROOF) and record.get("etag") != record.get("src_etag"):
                version, etag, size = record["version_id"], record["etag"], int(record["size"])
                self.copies[key] = JournalEntry(version, etag, size, record.get("src_etag"))

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

    def finish(self) -> None:
        """The run completed and verified: keep only the copies a listing cannot prove (their
        ETag differs from the source's), for the next run of the same restore; else remove."""
        self.close()
        earlier = self.earlier
        self.load()  # adds what this run recorded to what the earlier runs had
        self.earlier = earlier
        if not self.copies:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            return
        lines = [json.dumps({"restore": self._header}, ensure_ascii=False)]
        for key, entry in self.copies.items():
            record = {
                "op": _PROOF, "key": key, "version_id": entry.version_id,
                "src_etag": entry.src_etag, "etag": entry.etag, "size": entry.size,
            }  # fmt: skip
            lines.append(json.dumps(record, ensure_ascii=False))
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        try:
            temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
            os.replace(temporary, self.path)
        except OSError as exc:
            raise BackupError(f"cannot write the restore journal {self.path}: {exc}") from exc
