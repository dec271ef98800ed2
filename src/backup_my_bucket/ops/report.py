"""A run record in words: for `plan run`, `plan history` and the notifications."""

from __future__ import annotations

from ..units import format_size, format_time
from .history import RunRecord

VERDICTS = {
    "ok": "succeeded",
    "partial": "partly failed",
    "failed": "failed",
    "interrupted": "was interrupted",
    "skipped": "was skipped",
    "running": "is running",
}


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def headline(record: RunRecord) -> str:
    where = f" at {record.failed_step}" if record.failed_step and not record.ok else ""
    code = f" (exit {record.exit_code})" if record.exit_code else ""
    return (
        f"plan {record.plan} {VERDICTS[record.status]}{where}{code} in "
        f"{record.duration_seconds:.1f} s, run {record.run_id}"
    )


def step_lines(record: RunRecord) -> list[str]:
    """One line per step that ran, and the catalog's state after the run."""
    lines = []
    sync = record.steps.get("sync")
    if sync:
        failed = f", {sync['failed']:,} failed" if sync.get("failed") else ""
        size = format_size(sync["bytes_copied"])
        lines.append(
            f"sync: copied {_plural(sync['copied'], 'object')} ({size}), "
            f"marked {sync['deleted']:,} deleted, {sync['skipped']:,} unchanged{failed}"
        )
    snapshot = record.steps.get("snapshot")
    if snapshot:
        lines.append(
            f"snapshot {snapshot['id']}: {_plural(snapshot['keys'], 'key')}, "
            f"{format_size(snapshot['bytes'])} at {snapshot['at']}"
        )
    gc = record.steps.get("gc")
    if gc:
        lines.append(
            f"gc: removed {_plural(len(gc['snapshots_removed']), 'snapshot')}, deleted "
            f"{_plural(gc['versions_deleted'], 'version')}, freed {format_size(gc['bytes_freed'])}"
        )
    verify = record.steps.get("verify")
    if verify:
        lines.append(
            f"verify {verify['snapshot']}: checked {_plural(verify['checked'], 'version')}, "
            f"{verify['missing']:,} missing, {verify['mismatched']:,} mismatched"
        )
    if record.snapshots is not None:
        span = ""
        if record.oldest_restorable and record.newest_restorable:
            span = (
                f", restorable from {format_time(record.oldest_restorable)} "
                f"to {format_time(record.newest_restorable)}"
            )
        lines.append(f"snapshots kept: {record.snapshots:,}{span}")
    if record.lock_waits:
        lines.append(
            f"waited {record.lock_wait_seconds:.0f} s for the catalog lock "
            f"({_plural(record.lock_waits, 'time')})"
        )
    return lines


def problem_lines(record: RunRecord, limit: int = 10) -> list[str]:
    """What went wrong: the error, its hint, failed hooks, the first failed items."""
    lines = []
    if record.error:
        lines.append(f"error: {record.error}")
    if record.hint:
        lines.append(f"hint: {record.hint}")
    for name, hook in record.hooks.items():
        if hook.get("exit_code") != 0:
            output = hook.get("output", "").strip().splitlines()[-3:]
            lines.append(f"{name} hook: exit {hook.get('exit_code')}: " + " | ".join(output))
    for failure in record.failures[:limit]:
        lines.append(f"failed: {failure['key']!r}: {failure['reason']}")
    if len(record.failures) > limit:
        lines.append(f"... and {len(record.failures) - limit} more")
    lines += [f"could not deliver: {error}" for error in record.delivery_errors]
    return lines
