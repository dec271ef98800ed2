"""Snapshots described for people (``snapshot``, ``backup``, ``snapshots``, ``show``).

The words and numbers themselves (sizes, counts with their noun, UTC times) are formatted in
one place, :mod:`backup_my_bucket.units`; JSON output keeps raw numbers and ISO times.
"""

from __future__ import annotations

from typing import Any

from ..catalog.index import SnapshotMeta
from ..units import format_bytes, format_size, human_time, plural


def describe_snapshot(meta: SnapshotMeta) -> str:
    """One snapshot taken: id, keys, size and instant."""
    return (
        f"snapshot {meta.id}: {plural(meta.keys, 'key')}, {format_size(meta.total_bytes)}, "
        f"at {human_time(meta.at)}"
    )


def snapshot_line(meta: SnapshotMeta) -> str:
    """One row of `snapshots`."""
    tags = f"  [{', '.join(meta.tags)}]" if meta.tags else ""
    return (
        f"{meta.id}  {human_time(meta.at)}  {meta.keys:>10,} keys  "
        f"{format_size(meta.total_bytes):>10}  {meta.backup}{tags}"
    )


def show_json(meta: SnapshotMeta) -> dict[str, Any]:
    """`show --json`: the fields `snapshot` prints (``bytes``...), then the manifest's own.
    ``total_bytes`` stays as a deprecated alias of ``bytes`` (docs/cli.md)."""
    return {**meta.summary(), **meta.to_json()}


def show_text(meta: SnapshotMeta) -> str:
    """`show` for people: sizes and times formatted, nothing raw."""
    rows = [
        ("snapshot", meta.id),
        ("at", human_time(meta.at)),
        ("taken", human_time(meta.created)),
        ("backup", meta.backup),
        ("source", meta.source or "(not recorded: restore needs --to)"),
        ("keys", f"{meta.keys:,}"),
        ("size", format_bytes(meta.total_bytes)),
        ("tags", ", ".join(meta.tags) or "(none)"),
        ("index", f"{format_size(meta.index_size)}, sha256 {meta.index_sha256}"),
        ("written by", f"backup-my-bucket {meta.tool_version} (format {meta.format_version})"),
    ]
    return "\n".join(f"{name:>10}: {value}" for name, value in rows)
