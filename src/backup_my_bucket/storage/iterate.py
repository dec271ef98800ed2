"""Whole listings built from the pages any :class:`ObjectStore` returns."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ..errors import StorageError
from ..model import KeyHistory, ObjectSummary, ObjectVersion
from .listing import ListingOptions, ParallelListing
from .paging import Paging
from .protocol import MAX_PAGE, ObjectStore
from .retry import retrying


async def iter_versions(
    store: ObjectStore,
    bucket: str,
    *,
    prefix: str = "",
    start_after: str = "",
    end_before: str | None = None,
    page_size: int = MAX_PAGE,
    workers: int = 4,
    paging: Paging | None = None,
) -> AsyncIterator[ObjectVersion]:
    """Every version and delete marker of keys in (start_after, end_before), in listing order.

    The one version listing (:class:`~.listing.ParallelListing`, complete on SeaweedFS too),
    flattened; without its audit (engines that act on a whole bucket ask for that). Raises
    StorageError if the server lists keys out of order.
    """
    histories = iter_histories(
        store, bucket, prefix=prefix, start_after=start_after, page_size=page_size,
        workers=workers, paging=paging,
    )  # fmt: skip
    async for history in histories:
        if end_before is not None and history.key >= end_before:
            return
        for version in history.versions:
            yield version


def iter_histories(
    store: ObjectStore,
    bucket: str,
    *,
    prefix: str = "",
    start_after: str = "",
    page_size: int = MAX_PAGE,
    workers: int = 4,
    paging: Paging | None = None,
) -> AsyncIterator[KeyHistory]:
    """Every key's history (its versions and delete markers, newest first) after
    ``start_after``, in key order: the listing of :func:`iter_versions`, not flattened."""
    options = ListingOptions(page_size=page_size, paging=paging, audit=False)
    return ParallelListing(
        store, bucket, _whole, prefix=prefix, after=start_after, workers=workers,
        options=options, audit=False,
    ).results()  # fmt: skip


def _whole(history: KeyHistory) -> KeyHistory:
    return history


async def iter_objects(
    store: ObjectStore,
    bucket: str,
    *,
    prefix: str = "",
    start_after: str = "",
    end_before: str | None = None,
    page_size: int = MAX_PAGE,
) -> AsyncIterator[ObjectSummary]:
    """Current objects with keys in (start_after, end_before), ascending."""
    token: str | None = None
    last_key = start_after
    while True:
        page = await retrying(
            lambda: store.list_objects_page(
                bucket,
                prefix=prefix,
                start_after=start_after,
                continuation_token=token,  # noqa: B023  # awaited before the loop moves on
                max_keys=page_size,
            )
        )
        for obj in page.objects:
            if end_before is not None and obj.key >= end_before:
                return
            if obj.key <= last_key:
                raise StorageError(
                    f"s3://{bucket} listed key {obj.key!r} after {last_key!r}: "
                    "the server's object listing is not in strictly ascending key order"
                )
            last_key = obj.key
            yield obj
        if not page.is_truncated:
            return
        if not page.next_token:
            raise StorageError(f"s3://{bucket}: a truncated object page has no continuation token")
        token = page.next_token
