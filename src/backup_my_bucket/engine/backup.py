"""The snapshot that follows a sync: what `bmb backup` and a plan's backup step run after
their sync (docs/design.md, rule 8)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ..catalog.catalog import Catalog
from ..catalog.index import SnapshotMeta, preload_index
from ..clock import Clock
from ..model import S3Url
from ..storage.listing import ListingOptions
from ..storage.protocol import ObjectStore
from ..storage.rangejob import RangeRunner
from .cut import cut_now, wait_past
from .progress import Progress
from .snapshot import ListedState, publish_listed, take_snapshot
from .sync import SyncResult


async def snapshot_after(
    synced: SyncResult,
    listed: ListedState | None,
    store: ObjectStore,
    backup: S3Url,
    catalog: Catalog,
    clock: Clock,
    *,
    ended: datetime,
    source: S3Url | None = None,
    tags: Sequence[str] = (),
    workers: int = 16,
    progress: Progress | None = None,
    listing: ListingOptions | None = None,
    ranges: RangeRunner | None = None,
) -> SnapshotMeta:
    """The snapshot after ``synced``, at a T that holds everything it wrote and compared
    against.

    The sync's own listing of the backup (``listed``), when it wrote nothing and saw nothing
    after that listing's T and no gc has pruned that T since. Otherwise a listing of the
    bucket: at once when the sync wrote nothing and saw nothing after the cut a snapshot
    takes now, else once ``ended`` (the server's second when the sync ended,
    :func:`~.cut.server_now`; the caller may open the catalog meanwhile) has ended on the
    server's clock. ``ranges``: where that listing's ranges run (a cluster's; None: here).
    """
    if listed is not None and synced.incomplete is None and listed.usable(synced.held_at):
        meta = await publish_listed(store, backup, catalog, listed, source=source, tags=tags)
        if meta is not None:
            return meta
    if listed is not None:
        listed.stop()  # its scratch file goes now, not at the end of a daemon's run
    preload_index()
    if not synced.held_at(await cut_now(store, backup.bucket, clock)):
        await wait_past(store, backup.bucket, clock, ended)
    return await take_snapshot(
        store, backup, catalog, clock, source=source, tags=tags, workers=workers,
        progress=progress, listing=listing, ranges=ranges,
    )  # fmt: skip
