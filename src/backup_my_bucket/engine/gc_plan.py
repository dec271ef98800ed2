"""gc's plan (pure): which entries of the backup's listing no restoration point needs.

The needed-version rule. Within one key's history (newest first, in listing order), entry
``e_i`` is what :meth:`KeyHistory.live_at` returns for exactly the instants
``T ∈ [t_i, min(t_0 … t_{i-1}))`` — its *live interval* (with the listing's usual
non-increasing timestamps, simply ``[t_i, t_{i-1})``; a tie gives an empty interval). An entry
is needed iff its live interval contains a kept snapshot's instant or meets the point-in-time
window ``[now - pit_window, now]``, or a kept snapshot *holds* it. This holds for delete
markers as much as for versions: a marker live at a kept T is what makes the key absent at
T, and deleting it would revive the version below it. The newest entry of every key (the
current version or delete marker) is never deleted.

Why this is exact: for a kept T, ``live_at(T)`` is the first entry (in listing order) written
at or before T. That entry is needed, so it stays; every entry before it was written after T
and removing some of them cannot make one of them qualify. So after gc, ``live_at(T)`` is
unchanged for every kept T — including "nothing live". The one place the stamps can name
another entry than the snapshot's index is a multipart upload open at T: AWS stamps its
version with the upload's initiation, so completed after the listing it reads as live at T.
A snapshot holds its index rows of such keys (engine/cut.Holds), and gc keeps them; one
that could not list the open uploads holds every row of its index, which gc reads beside its
listing, in the same key order (:class:`IndexHolds`).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import attrgetter

from ..model import UNKNOWN_START, LifecycleRule, ObjectVersion, OpenUpload, S3Url
from ..units import format_time, plural
from .versions import KeyHistory, histories


@dataclass(frozen=True, slots=True)
class RestorePoints:
    """The moments gc must keep restorable: kept snapshots' instants, an optional window, and
    every moment from gc's own start on (``tail``: what is written while it runs)."""

    instants: tuple[datetime, ...]  # ascending
    window: tuple[datetime, datetime] | None = None  # [start, end], both included
    tail: datetime | None = None  # every moment at or after it
    held: frozenset[tuple[str, str]] = frozenset()  # (key, version id) kept snapshots hold

    @classmethod
    def build(
        cls,
        instants: Iterable[datetime],
        pit_window: timedelta | None,
        now: datetime,
        held: frozenset[tuple[str, str]] = frozenset(),
    ) -> RestorePoints:
        window = (now - pit_window, now) if pit_window is not None else None
        return cls(tuple(sorted(instants)), window, now, held)

    @property
    def empty(self) -> bool:
        return not self.instants and self.window is None

    @property
    def keep_from(self) -> datetime | None:
        """From this moment on, every moment stays restorable."""
        return self.window[0] if self.window is not None else self.tail

    def needs(self, start: datetime, end: datetime | None) -> bool:
        """Whether a point lies in ``[start, end)``; ``end`` None means unbounded."""
        if end is not None and end <= start:
            return False  # an empty interval: nothing was ever restored from it
        if self.tail is not None and (end is None or end > self.tail):
            return True
        if self.window is not None:
            low, high = self.window
            if start <= high and (end is None or end > low):
                return True
        index = bisect_left(self.instants, start)
        return index < len(self.instants) and (end is None or self.instants[index] < end)


class IndexHolds:
    """The rows of kept snapshots that hold their whole index (their open uploads could not
    be listed: rule 26), each read as ``(key, version id)`` in ascending key order, one at a
    time, beside gc's listing: :meth:`at` is asked for ascending keys and memory stays flat."""

    def __init__(self, indexes: list[Iterator[tuple[str, str]]]) -> None:
        self.indexes = indexes
        self._next = [next(rows, None) for rows in indexes]  # each index's first row not taken
        self._last: str | None = None

    def at(self, key: str) -> frozenset[str]:
        """The version ids of ``key`` the indexes hold."""
        if self._last is not None and key <= self._last:
            raise AssertionError(f"keys out of order: {key!r} after {self._last!r}")
        self._last = key
        found: set[str] = set()
        for i, rows in enumerate(self.indexes):
            row = self._next[i]
            while row is not None and row[0] < key:
                row = next(rows, None)
            while row is not None and row[0] == key:
                found.add(row[1])
                row = next(rows, None)
            self._next[i] = row
        return frozenset(found)


def plan_key(
    history: KeyHistory, points: RestorePoints, also: frozenset[str] = frozenset()
) -> Iterator[ObjectVersion]:
    """The entries of one key that no restoration point needs (never the newest entry);
    ``also``: version ids of this key held beyond ``points.held``."""
    newer: datetime | None = None  # the earliest timestamp among entries listed before
    for index, entry in enumerate(history.versions):
        held = (entry.key, entry.version_id) in points.held or entry.version_id in also
        if index > 0 and not held and not points.needs(entry.last_modified, newer):
            yield entry
        newer = entry.last_modified if newer is None else min(newer, entry.last_modified)


async def plan_gc(
    entries: AsyncIterable[ObjectVersion],
    points: RestorePoints,
    indexes: IndexHolds | None = None,
) -> AsyncIterator[ObjectVersion]:
    """Stream the versions and delete markers to delete, key by key, from a full listing
    (in key order, as ``indexes`` are read)."""
    async for history in histories(entries):
        also = indexes.at(history.key) if indexes is not None else frozenset()
        for entry in plan_key(history, points, also):
            yield entry


def lifecycle_warnings(
    rules: Sequence[LifecycleRule], prefix: str, points: RestorePoints, now: datetime
) -> list[str]:
    """Warn about lifecycle rules that expire noncurrent versions sooner than gc keeps them."""
    oldest = min([*points.instants, *(points.window[:1] if points.window else ())], default=now)
    needed_days = (now - oldest).days
    warnings = []
    for rule in rules:
        overlaps = rule.prefix.startswith(prefix) or prefix.startswith(rule.prefix)
        days = rule.noncurrent_expiration_days
        if rule.enabled and overlaps and days is not None and days <= needed_days:
            warnings.append(
                f"lifecycle rule {rule.id!r} expires noncurrent versions after "
                f"{plural(days, 'day')}, but the oldest kept restoration point is "
                f"{plural(needed_days, 'day')} old: it may already be incomplete"
            )
    return warnings


STALE_UPLOAD = timedelta(days=1)
"""An upload open longer than this is taken for one a killed run left behind."""


def stale_upload_warnings(
    uploads: Sequence[OpenUpload], where: S3Url, now: datetime, *, reserved: str = ""
) -> list[str]:
    """Warn about multipart uploads open for more than :data:`STALE_UPLOAD` in ``where``:
    a sync killed during a multipart copy leaves one, billed for its parts, and every
    snapshot holds its key's indexed version while it stays open (engine/cut.Holds). Those
    under ``reserved`` (the reserved folder's keys: the catalog's own, an index upload of a
    killed run; no snapshot holds them) are warned of apart. gc does not abort them: an
    upload cannot tell who began it."""
    data: list[OpenUpload] = []
    catalog: list[OpenUpload] = []
    for upload in sorted(uploads, key=attrgetter("initiated")):
        if now - upload.initiated > STALE_UPLOAD:
            (catalog if reserved and upload.key.startswith(reserved) else data).append(upload)
    abort = (
        "abort them (aws s3api abort-multipart-upload) or add an "
        "AbortIncompleteMultipartUpload lifecycle rule"
    )
    warnings = []
    if data:
        warnings.append(
            f"{plural(len(data), 'multipart upload')} in {where} open for more than a day "
            f"({_oldest(data)}): billed for their parts, and every snapshot holds their keys' "
            f"versions; {abort}"
        )
    if catalog:
        warnings.append(
            f"{plural(len(catalog), 'multipart upload')} of the catalog in "
            f"{S3Url(where.bucket, reserved)} open for more than a day ({_oldest(catalog)}): "
            f"left by a run killed while it uploaded a snapshot's index, billed for their "
            f"parts; {abort}"
        )
    return warnings


def _oldest(stale: Sequence[OpenUpload]) -> str:
    """The oldest of ``stale`` (sorted by start), for a warning."""
    oldest = stale[0]
    since = (
        "a time not given" if oldest.initiated == UNKNOWN_START else format_time(oldest.initiated)
    )
    return f"the oldest: {oldest.key!r} since {since}"
