"""Whole listings built from the pages any :class:`ObjectStore` returns."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ..errors import StorageError
from ..model import ObjectSummary, ObjectVersion
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
) -> AsyncIterator[ObjectVersion]:
    """Every version and delete marker of keys in (start_after, end_before), in listing order.

    Raises StorageError if the server lists keys out of order: every merge downstream relies
    on ascending keys, and a silent misorder would make a snapshot or a restore wrong.
    """
    key_marker, version_marker = start_after, ""
    last_key = start_after
    while True:
        page = await retrying(
            lambda: store.list_versions_page(
                bucket,
                prefix=prefix,
                key_marker=key_marker,  # noqa: B023  # awaited before the loop moves on
                version_id_marker=version_marker,  # noqa: B023
                max_keys=page_size,
            )
        )
        for entry in page.entries:
            if end_before is not None and entry.key >= end_before:
                return
            if entry.key < last_key:
                raise StorageError(
                    f"s3://{bucket} listed key {entry.key!r} after {last_key!r}: "
                    "the server's version listing is not in key order"
                )
            last_key = entry.key
            yield entry
        if not page.is_truncated:
            return
        if not page.next_key_marker:
            raise StorageError(f"s3://{bucket}: a truncated version page has no NextKeyMarker")
        key_marker = page.next_key_marker
        version_marker = page.next_version_id_marker or ""


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
