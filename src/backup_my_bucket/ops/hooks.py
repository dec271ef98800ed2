"""Hooks: a plan's shell commands before a run, after a success and after a failure.

Each runs with ``sh -c`` and gets the run's summary twice: as ``BMB_*`` environment variables
(the handful a script usually needs) and as the whole record in JSON on stdin. Its output is
kept (the last lines) in the run record. A hook that exits non-zero or outlives its timeout
has failed: a failing ``pre`` hook skips the run (reported as failed at step ``pre-hook``,
nothing copied), a failing ``post`` hook makes a successful run a failed one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from .history import RunRecord
from .plans import Plan

OUTPUT_TAIL = 4000  # characters of a hook's output kept in the record
HOOK_VARIABLES = frozenset({
    "BMB_PLAN", "BMB_RUN_ID", "BMB_TRIGGER", "BMB_STATUS", "BMB_EXIT_CODE", "BMB_FAILED_STEP",
    "BMB_ERROR", "BMB_SOURCE", "BMB_BACKUP", "BMB_SNAPSHOT_ID", "BMB_OBJECTS_COPIED",
    "BMB_BYTES_COPIED", "BMB_OBJECTS_FAILED", "BMB_DURATION_SECONDS",
})  # fmt: skip
"""The variables :func:`hook_env` sets (a hook running ``bmb`` passes them on)."""


@dataclass(frozen=True, slots=True)
class HookResult:
    exit_code: int | None  # None: killed after the timeout
    output: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def describe(self) -> str:
        if self.exit_code is None:
            return "timed out"
        return f"exited {self.exit_code}"

    def to_json(self) -> dict[str, Any]:
        return {"exit_code": self.exit_code, "output": self.output}


def hook_env(plan: Plan, record: RunRecord) -> dict[str, str]:
    """The BMB_* variables a hook sees (on top of the daemon's own environment)."""
    snapshot = record.steps.get("snapshot") or {}
    values: dict[str, object] = {
        "BMB_PLAN": plan.name,
        "BMB_RUN_ID": record.run_id,
        "BMB_TRIGGER": record.trigger,
        "BMB_STATUS": record.status,
        "BMB_EXIT_CODE": record.exit_code,
        "BMB_FAILED_STEP": record.failed_step or "",
        "BMB_ERROR": record.error or "",
        "BMB_SOURCE": str(plan.source or ""),
        "BMB_BACKUP": str(plan.backup),
        "BMB_SNAPSHOT_ID": snapshot.get("id", ""),
        "BMB_OBJECTS_COPIED": record.step_value("sync", "copied"),
        "BMB_BYTES_COPIED": record.step_value("sync", "bytes_copied"),
        "BMB_OBJECTS_FAILED": record.step_value("sync", "failed"),
        "BMB_DURATION_SECONDS": f"{record.duration_seconds:.3f}",
    }
    return {key: str(value) for key, value in values.items()}


async def run_hook(
    command: str, env: dict[str, str], summary: dict[str, Any], limit: timedelta
) -> HookResult:
    """Run one hook to its end (or its timeout: then its whole process group is killed)."""
    process = await asyncio.create_subprocess_shell(
        command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **env},
        start_new_session=True,  # its own process group, so a timeout kills its children too
    )
    stdin = (json.dumps(summary, ensure_ascii=False) + "\n").encode()
    try:
        output, _ = await asyncio.wait_for(
            process.communicate(stdin), timeout=limit.total_seconds()
        )
    except TimeoutError:
        _kill_group(process.pid)
        output, _ = await process.communicate()
        return HookResult(None, _tail(output))
    except BaseException:  # cancelled (the daemon stops): do not leave the hook behind
        _kill_group(process.pid)
        with contextlib.suppress(ProcessLookupError):
            await process.wait()
        raise
    return HookResult(process.returncode, _tail(output))


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _tail(output: bytes | None) -> str:
    text = (output or b"").decode(errors="replace")
    return text[-OUTPUT_TAIL:]
