"""Where a snapshot is cut: at a second that has ended on the server's clock.

The server stamps ``LastModified``, in whole seconds, with its own clock. A snapshot at T
records the newest version stamped at or before T, so T must be a second that had already
ended *on the server* when the listing began: then no write still to come can be stamped at
or before T, and the index stays the state at T for good (gc relies on it). This machine's
clock may disagree. Ahead of the server's, it would cut inside a second still open there;
behind it, the snapshot after a sync would leave out the sync's last writes. So T comes from
the ``Date`` of an answer asked for just before the listing (docs/design.md, "Snapshots");
this machine's clock serves only where the server sends no ``Date``.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from ..catalog.location import reserved_prefix
from ..clock import Clock
from ..errors import AccessDenied, StorageError
from ..model import ObjectVersion, S3Url
from ..storage.protocol import ObjectStore

log = logging.getLogger(__name__)

SKEW = timedelta(seconds=2)  # clocks this far apart are worth a warning (Date: whole seconds)
POLL = 0.05  # seconds between asks while waiting for the server's next second
PATIENCE = 5.0  # seconds a server's Date may stand still before the wait gives up
_warned: set[tuple[str, str]] = set()  # (bucket, warning) already logged by this process


async def server_now(store: ObjectStore, bucket: str, clock: Clock) -> datetime:
    """The current second on the server's clock; this machine's where the server sends no
    ``Date``. Every write the server acknowledged before this call is stamped at or before
    it."""
    mine = clock.now()
    try:
        theirs = await store.server_time(bucket)
    except AccessDenied:  # HeadBucket needs s3:ListBucket
        _warn_once(
            bucket,
            "HeadBucket is denied (s3:ListBucket): snapshots of s3://%s are cut by this "
            "machine's clock",
            bucket,
        )
        return mine.replace(microsecond=0)
    if theirs is None:
        _warn_once(bucket, "s3://%s answers with no Date: snapshots are cut by this machine's "
                   "clock", bucket)  # fmt: skip
        return mine.replace(microsecond=0)
    skew = theirs - mine
    if abs(skew) > SKEW:
        side = "behind" if skew > timedelta(0) else "ahead of"
        _warn_once(
            bucket, "this machine's clock is %.0f s %s the server's (s3://%s): snapshots are "
            "cut by the server's clock; times shown are this machine's",
            abs(skew.total_seconds()), side, bucket,
        )  # fmt: skip
    return theirs


def _warn_once(bucket: str, message: str, *args: object) -> None:
    if (bucket, message) not in _warned:
        _warned.add((bucket, message))
        log.warning(message, *args)


async def cut_now(store: ObjectStore, bucket: str, clock: Clock) -> datetime:
    """T for a listing of ``bucket`` that begins after this call: the last whole second that
    has ended on the server's clock."""
    return await server_now(store, bucket, clock) - timedelta(seconds=1)


async def wait_past(store: ObjectStore, bucket: str, clock: Clock, second: datetime) -> None:
    """Wait until ``second`` (a :func:`server_now` reading) has ended on the server's clock:
    a cut taken after this holds every write acknowledged before that reading (rule 8)."""
    waited = 0.0
    while await server_now(store, bucket, clock) <= second:
        if waited >= PATIENCE:
            raise StorageError(
                f"s3://{bucket}: the server's clock (its Date header) stood still for "
                f"{PATIENCE:.0f} s",
                hint="check the endpoint: a proxy may be replaying cached answers",
            )
        await clock.sleep(POLL)
        waited += POLL


class Holds:
    """The index rows gc must keep beyond what the snapshot's T explains: those of keys with a
    multipart upload open since at or before T (docs/design.md, rule 26).

    AWS stamps a completed upload with its *initiation*: one begun at or before T and
    completed after the listing lands at or before T without being in the index. gc reads
    a key's state at T from the stamps, so it would take that version for the one live at T
    and delete the index's. Listed after T is read and before the listing begins, the open
    uploads hold every such one (an upload begun at or before T and completed before this
    request is in the listing).

    Where the uploads cannot be listed (a role without ``s3:ListBucketMultipartUploads``, a
    server without that call), any key may have one: ``unknown``, and the snapshot holds every
    row of its index (``SnapshotMeta.holds_index``), which gc reads beside its listing."""

    def __init__(self, pending: frozenset[str] = frozenset(), *, unknown: bool = False) -> None:
        self.pending = pending  # relative keys with an upload open since at or before T
        self.unknown = unknown  # the open uploads could not be listed: every row is held
        self.held: list[tuple[str, str]] = []  # (relative key, version id) of index rows

    @classmethod
    async def find(cls, store: ObjectStore, backup: S3Url, cut: datetime) -> Holds:
        """The keys of ``backup``'s content with an upload open since at or before ``cut``.
        A role without ``s3:ListBucketMultipartUploads``, or a server without that call
        (NotImplemented), holds them all (``unknown``), with a warning."""
        try:
            uploads = await store.open_uploads(backup.bucket, backup.prefix)
        except StorageError as exc:
            if not isinstance(exc, AccessDenied) and "NotImplemented" not in exc.message:
                raise  # a failure to retry, not a server that cannot say
            _warn_once(
                backup.bucket, "the open multipart uploads of s3://%s cannot be listed "
                "(s3:ListBucketMultipartUploads: %s): each snapshot holds every version its "
                "index names, and gc reads the indexes of the snapshots it keeps (grant the "
                "permission to spare it that)", backup.bucket, exc.message,
            )  # fmt: skip
            return cls(unknown=True)
        reserved = reserved_prefix(backup)
        return cls(
            frozenset(
                key
                for upload in uploads
                if upload.initiated.replace(microsecond=0) <= cut
                and not upload.key.startswith(reserved)
                and (key := backup.relative(upload.key)) is not None
            )
        )

    def note(self, row: ObjectVersion) -> None:
        """Called with each index row (relative keys)."""
        if row.key in self.pending:
            self.held.append((row.key, row.version_id))
