"""Run history: one JSON line per run of a plan, and the lock that keeps runs of a plan apart.

The history lives in the user data directory (``<data dir>/backup-my-bucket/plans/<plan>/``),
not beside the catalog: it must record the runs that could not reach the backup bucket at all
(bad credentials, an endpoint down) — the ones an operator most needs to see — and plans are
this machine's configuration, while the catalog belongs to the backup and is shared. It is
also what the daemon's scheduling (the last run, for catching up) and the metrics (the last
success survives a restart) are computed from.

Each record is appended and flushed to disk (fsync) before the run's command returns, so a
stopped daemon or a ``kill -9`` right after a run loses nothing. A file past
:data:`MAX_BYTES` keeps its newest :data:`KEEP_RECORDS` records (rewritten atomically).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import platformdirs

from ..errors import Locked, UsageError
from ..units import format_time
from .plans import PLAN_NAME

APP_NAME = "backup-my-bucket"
MAX_BYTES = 4 * 2**20
KEEP_RECORDS = 1000
Status = Literal["running", "ok", "partial", "failed", "skipped", "interrupted"]


def default_state_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME)) / "plans"


@dataclass(slots=True)
class RunRecord:
    """What one run of a plan did: the summary that hooks, notifications, metrics, the history
    and ``plan run --json`` all show."""

    plan: str
    run_id: str
    trigger: str  # "schedule" | "catch-up" | "first" | "manual"
    started: datetime
    scheduled: datetime | None = None
    finished: datetime | None = None
    duration_seconds: float = 0.0
    status: Status = "running"
    exit_code: int = 0
    failed_step: str | None = None
    error: str | None = None
    hint: str | None = None
    steps: dict[str, Any] = field(default_factory=dict)  # step → its JSON result
    failures: list[dict[str, Any]] = field(default_factory=list)  # the first item failures
    lock_waits: int = 0
    lock_wait_seconds: float = 0.0
    snapshots: int | None = None  # the catalog's snapshots of this backup after the run
    oldest_restorable: datetime | None = None
    newest_restorable: datetime | None = None
    hooks: dict[str, Any] = field(default_factory=dict)
    delivery_errors: list[str] = field(default_factory=list)  # notifications, pings, pushes
    host: str = field(default_factory=socket.gethostname)

    @classmethod
    def begin(
        cls, plan: str, trigger: str, started: datetime, scheduled: datetime | None = None
    ) -> RunRecord:
        run_id = started.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)
        return cls(plan=plan, run_id=run_id, trigger=trigger, started=started, scheduled=scheduled)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def counts_as_run(self) -> bool:
        """Skipped slots (the plan was running already) are not runs."""
        return self.status not in ("skipped", "running")

    def step_value(self, step: str, name: str) -> int:
        value = self.steps.get(step, {}).get(name, 0)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, datetime):
                out[key] = format_time(value)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRecord:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("started", "scheduled", "finished", "oldest_restorable", "newest_restorable"):
            if isinstance(known.get(key), str):
                known[key] = datetime.fromisoformat(known[key])
        return cls(**known)


class History:
    """The run records of every plan under ``root``, one directory per plan."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or default_state_dir()

    def _dir(self, plan: str) -> Path:
        if not PLAN_NAME.match(plan):  # a name that is not a plan's must not reach the disk
            raise UsageError(f"{plan!r} is not a plan name")
        return self.root / plan

    def append(self, record: RunRecord) -> None:
        path = self._dir(record.plan) / "history.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record.to_json(), ensure_ascii=False) + "\n"
        with path.open("a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        if path.stat().st_size > MAX_BYTES:
            self._trim(path)

    def _trim(self, path: Path) -> None:
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)[-KEEP_RECORDS:]
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".history.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.writelines(lines)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def records(self, plan: str) -> list[RunRecord]:
        """Oldest first. A line that does not parse (a torn write) is skipped."""
        path = self._dir(plan) / "history.jsonl"
        if not path.is_file():
            return []
        out = []
        for line in path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError, TypeError):
                out.append(RunRecord.from_json(json.loads(line)))
        return out

    def last_slot(self, plan: str) -> datetime | None:
        """The moment (schedule slot, else start) of the newest run or skipped slot that was
        not interrupted: a run stopped by SIGTERM did not back anything up, so its moment
        still counts as missed and a restarted daemon catches it up."""
        for record in reversed(self.records(plan)):
            if record.status != "interrupted":
                return record.scheduled or record.started
        return None

    @contextlib.contextmanager
    def plan_lock(self, plan: str) -> Iterator[None]:
        """Hold this plan's lock (an OS file lock: released when the process dies, whatever
        the way); a second holder, in this process or another, gets :class:`Locked`."""
        path = self._dir(plan) / "lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                raise Locked(
                    f"plan {plan!r} is running already (pid {holder})",
                    hint="wait for that run to finish; runs of one plan never overlap",
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            yield
        finally:
            os.close(fd)  # closing releases the lock


def status_of(exit_code: int) -> Status:
    return "ok" if exit_code == 0 else "partial" if exit_code == 3 else "failed"
