"""The restorable span of a backup location: which moments a restore can really bring back.

A moment T is restorable when the backup's listing still holds the state of the source at T.
That is true from the backup's *start* (the end of its first complete sync; for a backup made
before this record existed, the earliest version it holds) up to now, minus what gc pruned:
after a gc that kept snapshot instants P and every moment from ``keep_from`` on (its
point-in-time window's start, else its own start), only P and ``[keep_from, ∞)`` stay exact
among the moments before it. So the span is

    [earliest, now]  minus the open intervals in ``gaps``

with ``earliest = max(start, pruned_before)``. ``history.json`` in the reserved area (format
1.0) records ``start``, ``pruned_before`` and ``gaps``; sync and snapshot set ``start`` once,
gc narrows the rest under the catalog lock *before* it deletes a version (a gc killed after
recording has pruned at most what it recorded).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from ..errors import BackupError, UsageError
from ..model import S3Url
from ..storage.iterate import iter_versions
from ..storage.protocol import ObjectStore
from ..units import format_time
from .conditional import Change, parse_object, read_doc, update_json
from .location import probe_key, record_key, reserved_prefix

HISTORY_FORMAT = "1.0"
log = logging.getLogger(__name__)
Gap = tuple[datetime, datetime]


@dataclass(frozen=True, slots=True)
class Span:
    start: datetime | None = None
    start_from: str | None = None  # "first sync" | "earliest version" | "snapshot"
    pruned_before: datetime | None = None
    gaps: tuple[Gap, ...] = ()
    damaged: bool = False  # read from a record not legible in full (what could be read)

    @property
    def earliest(self) -> datetime | None:
        known = [t for t in (self.start, self.pruned_before) if t is not None]
        return max(known) if known else None

    def gap_at(self, at: datetime) -> Gap | None:
        return next((g for g in self.gaps if g[0] < at < g[1]), None)

    def problem(self, at: datetime, now: datetime) -> str | None:
        """Why ``at`` is not restorable, or None when it is."""
        earliest = self.earliest
        if at > now:
            return "is in the future"
        if earliest is not None and at < earliest:
            return "is before the history the backup holds"
        gap = self.gap_at(at)
        if gap is not None:
            return f"falls in a span gc pruned ({format_time(gap[0])} … {format_time(gap[1])})"
        return None

    def describe(self, now: datetime) -> str:
        earliest = format_time(self.earliest) if self.earliest else "(unknown)"
        text = f"earliest {earliest}, latest {format_time(now)} (now)"
        inside = [g for g in self.gaps if self.earliest is None or g[1] > self.earliest]
        if inside:
            shown = ", ".join(f"{format_time(a)} … {format_time(b)}" for a, b in inside[-3:])
            text += f"; pruned by gc: {shown}" + (" and earlier" if len(inside) > 3 else "")
        return text

    def with_start(self, start: datetime, how: str) -> Span:
        return self if self.start is not None else replace(self, start=start, start_from=how)

    def after_gc(self, kept: Iterable[datetime], keep_from: datetime) -> Span:
        """The span after a gc that kept the instants ``kept`` and every moment from
        ``keep_from`` on (see the module docstring)."""
        points = sorted({t for t in kept if t < keep_from} | {keep_from})
        before = points[0]
        pruned_before = before if self.pruned_before is None else max(self.pruned_before, before)
        new = [(a, b) for a, b in itertools.pairwise(points) if a < b]
        gaps = [g for g in _merge([*self.gaps, *new]) if g[1] > pruned_before]
        return replace(self, pruned_before=pruned_before, gaps=tuple(gaps))

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": HISTORY_FORMAT,
            "start": _fmt(self.start),
            "start_from": self.start_from,
            "pruned_before": _fmt(self.pruned_before),
            "gaps": [[format_time(a), format_time(b)] for a, b in self.gaps],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Span:
        if not data:
            return cls()
        try:
            return cls(
                start=_parse(data.get("start")),
                start_from=data.get("start_from"),
                pruned_before=_parse(data.get("pruned_before")),
                gaps=tuple((_req(a), _req(b)) for a, b in data.get("gaps") or ()),
            )
        except (TypeError, ValueError):
            # a damaged record must not make moments look restorable: the safe reading is
            # "nothing before its last pruning" when that much is legible, else unknown
            return cls(pruned_before=_parse_or_none(data.get("pruned_before")), damaged=True)


def _merge(gaps: Sequence[Gap]) -> tuple[Gap, ...]:
    """Union of open intervals; two that only touch stay apart (the point between them is
    restorable)."""
    merged: list[Gap] = []
    for a, b in sorted(gaps):
        if merged and a < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return tuple(merged)


def _fmt(t: datetime | None) -> str | None:
    return format_time(t) if t is not None else None


def _parse(text: object) -> datetime | None:
    return None if text is None else _req(text)


def _req(text: object) -> datetime:
    if not isinstance(text, str):
        raise TypeError(f"not a time: {text!r}")
    return datetime.fromisoformat(text)


def _parse_or_none(text: object) -> datetime | None:
    try:
        return _parse(text)
    except (TypeError, ValueError):
        return None


# --- the record in the backup bucket ---------------------------------------------------------


async def read_span(store: ObjectStore, backup: S3Url) -> Span:
    doc = await read_doc(store, backup.bucket, record_key(backup, "history.json"))
    return Span.from_json(parse_object(doc.data))


async def read_span_whole(store: ObjectStore, backup: S3Url) -> Span | None:
    """The record, or None when it is there but not legible in full (a damaged record may
    have lost a gap; :meth:`Span.from_json` then keeps only what it can read). Absent, it is
    the empty span: a gc writes it before its first deletion."""
    doc = await read_doc(store, backup.bucket, record_key(backup, "history.json"))
    if doc.data is None:
        return Span()
    data = parse_object(doc.data)
    if data is None:
        return None
    span = Span.from_json(data)
    return None if span.damaged else span


async def _update(store: ObjectStore, backup: S3Url, change: Change) -> Span:
    key = record_key(backup, "history.json")
    done = await update_json(store, backup.bucket, key, change, probe_key=probe_key(backup))
    return Span.from_json(done)


async def note_start(
    store: ObjectStore, backup: S3Url, start: datetime, how: str, *, required: bool = True
) -> bool:
    """Record where the backup's history begins, unless it is already known; whether the
    record was written (or may have been: a failure). With ``required`` False, a failure is
    logged (a later sync or snapshot records it)."""
    wrote = False

    def change(current: dict[str, Any] | None) -> dict[str, Any] | None:
        nonlocal wrote
        span = Span.from_json(current)
        wrote = span.start is None
        return span.with_start(start, how).to_json() if wrote else None

    try:
        await _update(store, backup, change)
    except BackupError as exc:
        if required:
            raise
        log.warning("could not record where the history of %s begins: %s", backup, exc.message)
        return True
    return wrote


async def note_sync(
    store: ObjectStore, backup: S3Url, oldest: datetime | None, now: datetime
) -> bool:
    """After a complete sync: unless recorded already, the backup's history begins with the
    oldest entry it held before the sync, else (an empty backup) at the end of this one.
    A failure to record is a warning: the next sync or snapshot records it. S3 stamps whole
    seconds: every copy of the sync is stamped at or before the second it ended in, so the
    state at that second is already complete. Whether it wrote the record (see
    :func:`note_start`)."""
    end = now.replace(microsecond=0)
    start, how = (oldest, "earliest version") if oldest is not None else (end, "first sync")
    return await note_start(store, backup, start, how, required=False)


async def note_gc(
    store: ObjectStore, backup: S3Url, kept: Sequence[datetime], keep_from: datetime
) -> Span:
    """Record what a gc is about to make unrestorable (call it before the first delete)."""

    def change(current: dict[str, Any] | None) -> dict[str, Any]:
        return Span.from_json(current).after_gc(kept, keep_from).to_json()

    return await _update(store, backup, change)


async def earliest_version(store: ObjectStore, backup: S3Url) -> datetime | None:
    """The oldest entry the backup holds (a full listing: only for backups whose start was
    never recorded)."""
    skip = reserved_prefix(backup)
    oldest: datetime | None = None
    async for v in iter_versions(store, backup.bucket, prefix=backup.prefix):
        if not v.key.startswith(skip) and (oldest is None or v.last_modified < oldest):
            oldest = v.last_modified
    return oldest


async def require_restorable(
    store: ObjectStore, backup: S3Url, at: datetime, now: datetime, *, option: str = "--at"
) -> Span:
    """Refuse (exit 2) a moment the backup cannot bring back exactly, naming the span."""
    span = await read_span(store, backup)
    if span.start is None:
        oldest = await earliest_version(store, backup)
        if oldest is None:
            raise UsageError(
                f"{option} {format_time(at)}: the backup {backup} holds no history yet",
                hint="run `bmb sync` (or `bmb backup`) first",
            )
        span = span.with_start(oldest, "earliest version")
    problem = span.problem(at, now)
    if problem is not None:
        raise UsageError(
            f"{option} {format_time(at)} {problem}; restorable moments of {backup}: "
            + span.describe(now),
            hint="choose a moment in that span (times without Z are refused; an offset like "
            "+02:00 is converted to UTC)",
        )
    return span
