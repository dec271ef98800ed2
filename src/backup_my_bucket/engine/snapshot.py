"""Snapshots: a consistent cut of the backup bucket at one instant, written to the catalog.

For every key under the backup prefix, the snapshot records the newest version with
``LastModified <= T`` unless that entry is a delete marker (then the key is absent at T). The
listing runs after T, so writes that continue during it are newer than T and are ignored:
the result is the bucket exactly as it was at T, whatever happens while the command runs.

S3 stamps ``LastModified`` in whole seconds. The default T is therefore the last whole second
that had fully passed when the command started (start 10:00:00.7 → T = 09:59:59): every
version stamped at or before it was written before the command began, and none after.

Keys in the index are relative to the backup prefix (the object's name in the source).
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .. import __version__
from ..catalog.catalog import Catalog, new_snapshot_id
from ..catalog.history import note_start, read_span, read_span_whole
from ..catalog.index import IndexWriter, SnapshotMeta
from ..catalog.location import reserved_prefix
from ..clock import Clock
from ..errors import BackupError, UsageError
from ..model import UNLISTED_VERSION, ObjectVersion, S3Url
from ..storage.current import current_objects
from ..storage.listing import ListingOptions, ParallelListing
from ..storage.protocol import ObjectStore
from ..storage.rangejob import RangeRunner
from ..storage.scratch import scratch_prefix, sweep_stale
from ..units import format_time, human_time
from .cut import Holds, cut_now
from .progress import NullProgress, Progress
from .versions import KeyHistory, Seen, require_versioning

log = logging.getLogger(__name__)


def relative(version: ObjectVersion, url: S3Url) -> ObjectVersion | None:
    """The version with its key relative to ``url``'s folder; None when it is not the folder's
    content (the folder's own marker key ``p/``)."""
    key = url.relative(version.key)
    if key is None:
        return None
    return dataclasses.replace(version, key=key) if url.prefix else version


@dataclass(frozen=True, slots=True)
class LiveAt:
    """Reduces a key's history to its version live at ``at``, keyed relative to ``url``: a
    plain value, so a listing's ranges can run it on a cluster (storage/rangejob.py)."""

    at: datetime
    url: S3Url

    def __call__(self, history: KeyHistory) -> ObjectVersion | None:
        live = history.live_at(self.at)
        return None if live is None else relative(live, self.url)


@dataclass(frozen=True, slots=True)
class Current:
    """Reduces a key's history to its current version, keyed relative to ``url`` (a plain
    value, as :class:`LiveAt`)."""

    url: S3Url

    def __call__(self, history: KeyHistory) -> ObjectVersion | None:
        current = history.current
        return None if current is None else relative(current, self.url)


def _listing(
    store: ObjectStore,
    backup: S3Url,
    reduce: LiveAt | Current,
    seen: Seen | None,
    ranges: RangeRunner | None,
    **options: Any,
) -> AsyncIterator[ObjectVersion]:
    """The backup location's versions under ``options["prefix"]`` reduced by ``reduce``, its
    reserved folder left out; ``seen`` notes the oldest and newest entry: by the reducer
    here, from each job's stamps when ``ranges`` run on a cluster."""
    noted: Callable[[KeyHistory], ObjectVersion | None] = reduce
    if seen is not None and ranges is None:

        def noted(history: KeyHistory) -> ObjectVersion | None:
            seen.add(history.versions)
            return reduce(history)

    return ParallelListing(
        store, backup.bucket, noted, skip_prefix=reserved_prefix(backup), remote=ranges,
        on_span=seen.stretch if seen is not None and ranges is not None else None, **options,
    ).results()  # fmt: skip


def state_at(
    store: ObjectStore,
    backup: S3Url,
    at: datetime,
    *,
    workers: int,
    within: str = "",
    seen: Seen | None = None,
    progress: Progress | None = None,
    listing: ListingOptions | None = None,
    ranges: RangeRunner | None = None,
) -> AsyncIterator[ObjectVersion]:
    """The backup location's state at ``at`` in its sub-folder ``within`` (the whole location
    by default), keys relative to that folder, streamed in key order. The location's reserved
    folder is never part of it; ``seen`` notes the oldest and the newest entry listed.
    ``ranges``: where the listing's ranges run (a cluster's, engine/executor.py; None: here).

    The listing is audited (``listing.audit``): a short one ends the stream with
    IncompleteListing after its last row.
    """
    scope = backup.child(within)
    return _listing(
        store, backup, LiveAt(at, scope), seen, ranges, prefix=scope.prefix, workers=workers,
        options=listing, on_page=(lambda n: progress.advance(n)) if progress else None, cut=at,
    )  # fmt: skip


def live_state(
    store: ObjectStore,
    backup: S3Url,
    *,
    workers: int,
    within: str = "",
    seen: Seen | None = None,
    listing: ListingOptions | None = None,
    cut: datetime | None = None,
    ranges: RangeRunner | None = None,
) -> AsyncIterator[ObjectVersion]:
    """The bucket's current state in the folder ``backup`` (keys relative to it), streamed in
    key order; ``within``: only relative keys in that sub-folder (a :func:`folder`). The
    location's reserved folder is never part of it (a restore target may be a backup
    location itself); ``seen`` notes the oldest and the newest entry listed. Audited like
    :func:`state_at`; ``cut``: the instant it may be read at later (no key stamped at or
    before it is excused by the audit); ``ranges`` as for :func:`state_at`."""
    # ListObjectVersions, not ListObjectsV2: only the version listing is in key order on
    # every server we know (SeaweedFS lists V2 in its own directory order).
    return _listing(
        store, backup, Current(backup), seen, ranges, prefix=backup.child(within).prefix,
        workers=workers, options=listing, cut=cut,
    )  # fmt: skip


async def live_objects(
    store: ObjectStore,
    url: S3Url,
    *,
    within: str = "",
    listing: ListingOptions | None = None,
    version_id: str = UNLISTED_VERSION,
) -> AsyncIterator[ObjectVersion]:
    """The folder's current objects (keys relative to it; ``within``: only a sub-folder), in
    key order, from ListObjectsV2 (:mod:`..storage.current`) rather than from its versions:
    what a restore needs of its target, and a sync of an unversioned source. Complete on
    SeaweedFS without an audit, a fifth to a third of a version listing's server time, and
    the ETags are the objects' own; the version ids are ``version_id`` (default
    :data:`~..model.UNLISTED_VERSION`: not known). The location's reserved folder is never
    part of it."""
    options = listing or ListingOptions()
    async for obj in current_objects(
        store, url.bucket, url.child(within).prefix, skip_prefix=reserved_prefix(url),
        page_size=options.page_size, told=options.paging,
    ):  # fmt: skip
        entry = relative(obj.as_current(version_id), url)
        if entry is not None:
            yield entry


async def take_snapshot(
    store: ObjectStore,
    backup: S3Url,
    catalog: Catalog,
    clock: Clock,
    *,
    at: datetime | None = None,
    source: S3Url | None = None,
    tags: Sequence[str] = (),
    workers: int = 16,
    progress: Progress | None = None,
    listing: ListingOptions | None = None,
    ranges: RangeRunner | None = None,
) -> SnapshotMeta:
    """List the backup bucket, write the index, publish it. Runs under the catalog lock,
    which it checks before publishing (a lost lock: Locked, exit 11, nothing published).
    Where the backup's history begins is recorded if nothing recorded it yet (the oldest
    version listed). Nothing is published when the listing's audit finds it short
    (IncompleteListing). ``ranges``: where the listing's ranges run (:func:`state_at`).
    """
    progress = progress or NullProgress()
    started = clock.now()
    if at is not None and at > started:
        raise UsageError(
            f"--at {format_time(at)} is in the future", hint="a snapshot can only record the past"
        )
    await require_versioning(store, backup.bucket)
    seen = Seen()
    async with catalog.lock("snapshot") as lease:
        # Whole seconds, ended on the server's clock, read under the lock (no gc runs
        # between T and the listing): a write later in the current second would get a
        # LastModified <= T and change the state at T after the index was written (gc
        # relies on an index staying equal to the listing's state at T).
        cut = await cut_now(store, backup.bucket, clock)
        if at is not None:
            asked = at.replace(microsecond=0)
            cut = min(asked, cut)
            if asked - cut > timedelta(seconds=1):
                log.warning(
                    "--at %s has not ended on the server's clock yet: the snapshot is at %s",
                    format_time(asked), format_time(cut),
                )  # fmt: skip
        holds = await Holds.find(store, backup, cut)
        snapshot_id = new_snapshot_id(cut)
        sweep_stale("snapshot")  # the working directories of killed snapshots
        with tempfile.TemporaryDirectory(prefix=scratch_prefix("snapshot")) as work:
            path = Path(work) / f"{snapshot_id}.parquet"
            writer = IndexWriter(path, snapshot_id)
            progress.start(
                f"snapshot: listing {backup} (state at {human_time(cut)})", unit="versions"
            )
            try:
                rows = state_at(
                    store, backup, cut, workers=workers, seen=seen, progress=progress,
                    listing=listing, ranges=ranges,
                )  # fmt: skip
                async for version in rows:
                    writer.add(version)
                    holds.note(version)
            except BaseException:
                writer.abort()
                raise
            finally:
                progress.finish()
            meta = _finished(writer, cut, started, backup, source, tags, holds)
            if seen.oldest is not None and (await read_span(store, backup)).start is None:
                await note_start(store, backup, seen.oldest, "earliest version", required=False)
            await lease.check("publishing the snapshot")
            await catalog.publish(meta, path)
    return meta


def _finished(
    writer: IndexWriter,
    cut: datetime,
    created: datetime,
    backup: S3Url,
    source: S3Url | None,
    tags: Sequence[str],
    holds: Holds,
) -> SnapshotMeta:
    sha256, size = writer.close()
    return SnapshotMeta(
        id=writer.snapshot_id,
        at=cut,
        created=created,
        backup=str(backup),
        source=str(source) if source else None,
        keys=writer.rows,
        total_bytes=writer.bytes,
        index_sha256=sha256,
        index_size=size,
        tags=tuple(tags),
        tool_version=__version__,
        held=tuple(holds.held),
        holds_index=holds.unknown,
    )


class ListedState:
    """A sync's listing of the backup, kept as a snapshot index at T, the last whole second
    that had ended before that listing began: when the sync writes nothing and sees nothing
    after T, its current versions are the state at T, and ``backup`` publishes them
    (:func:`publish_listed`) instead of listing the bucket again (docs/design.md, rule 8).

    Recording stops (and its file goes) at the first write the sync plans. Use as a context
    manager: the scratch directory goes on every exit path (``sweep_stale`` takes a killed
    process's)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.cut: datetime | None = None
        self.created: datetime | None = None
        self.complete = False  # the whole listing went through, in order
        self.holds: Holds | None = None  # None: the open uploads unknown, nothing recorded
        self._writer: IndexWriter | None = None
        self._work: tempfile.TemporaryDirectory[str] | None = None

    @property
    def writer(self) -> IndexWriter | None:
        """The index being recorded (None: not recording)."""
        return self._writer

    def __enter__(self) -> ListedState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def begin(self, store: ObjectStore, backup: S3Url) -> datetime:
        """T, the last second ended on the backup's server: call it before the listing is
        made (its audit excuses nothing stamped at or before T, ``live_state(cut=...)``),
        then :meth:`tap` that listing."""
        self.created = self.clock.now()
        self.cut = await cut_now(store, backup.bucket, self.clock)
        try:
            self.holds = await Holds.find(store, backup, self.cut)
        except BackupError as exc:  # the sync goes on; the snapshot lists afresh (and says)
            log.warning("the sync's listing of the backup is not recorded (%s)", exc.message)
        return self.cut

    async def tap(self, rows: AsyncIterable[ObjectVersion]) -> AsyncIterator[ObjectVersion]:
        """``rows`` (a current-state listing of the backup folder, relative keys, begun after
        :meth:`begin`) unchanged, recorded on the way."""
        assert self.cut is not None, "begin() first"
        holds = self.holds
        try:
            if holds is not None:
                sweep_stale("snapshot")  # killed snapshots' and recordings' working directories
                self._work = tempfile.TemporaryDirectory(prefix=scratch_prefix("snapshot"))
                snapshot_id = new_snapshot_id(self.cut)
                path = Path(self._work.name) / f"{snapshot_id}.parquet"
                self._writer = IndexWriter(path, snapshot_id)
        except OSError as exc:
            self._give_up(exc)
        async for row in rows:
            if self._writer is not None and holds is not None:
                try:
                    self._writer.add(row)
                    holds.note(row)
                except OSError as exc:  # a full disk costs the second listing, not the sync
                    self._give_up(exc)
            yield row
        self.complete = self._writer is not None

    def _give_up(self, exc: OSError) -> None:
        log.warning("the sync's listing of the backup is not recorded (%s): listed again", exc)
        self.stop()

    def stop(self) -> None:
        """Record no more: the sync writes something (or ended)."""
        if self._writer is not None:
            self._writer.abort()
            self._writer = None
        if self._work is not None:
            self._work.cleanup()
            self._work = None
        self.complete = False

    def usable(self, wrote_nothing_after: Callable[[datetime], bool]) -> bool:
        """Whether the recorded rows are the state at T: the listing went through whole and
        ``wrote_nothing_after(T)`` (``SyncResult.held_at``)."""
        return self.complete and self.cut is not None and wrote_nothing_after(self.cut)


async def publish_listed(
    store: ObjectStore,
    backup: S3Url,
    catalog: Catalog,
    listed: ListedState,
    *,
    source: S3Url | None = None,
    tags: Sequence[str] = (),
) -> SnapshotMeta | None:
    """Publish a sync's listing (:class:`ListedState`, ``usable``) as the snapshot at its T,
    or None when T is no longer restorable: a gc that ran since the listing began may have
    deleted what it holds, and records that before its first deletion (rule 21). A record
    that cannot be read whole cannot say, and also gives None. The check
    and the publish run under the catalog lock, so no gc runs between them. On None the
    caller lists afresh (:func:`take_snapshot`)."""
    writer, cut, created = listed.writer, listed.cut, listed.created
    assert writer is not None and cut is not None and created is not None and listed.complete
    async with catalog.lock("snapshot") as lease:
        span = await read_span_whole(store, backup)
        if span is None or span.problem(cut, listed.clock.now()) is not None:
            return None  # pruned since, or a damaged record that cannot say
        assert listed.holds is not None  # a recording has them
        meta = _finished(writer, cut, created, backup, source, tags, listed.holds)
        await lease.check("publishing the snapshot")
        await catalog.publish(meta, writer.path)
    listed.stop()
    return meta
