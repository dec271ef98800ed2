"""The storage seam: what the engines may ask of an S3-compatible object store.

Two implementations stand behind it: :class:`~backup_my_bucket.storage.s3.S3Store` (real S3
through aiobotocore) and :class:`~backup_my_bucket.storage.memory.MemoryStore` (a versioned
fake that follows AWS semantics). Both pass the same contract suite (tests/contract).

Rules every implementation keeps:
- listings are in ascending key order (code-point order of ``str``), and within one key newest
  first, delete markers interleaved where they belong;
- errors leave as :mod:`backup_my_bucket.errors` exceptions, never as library exceptions;
- a ``version_id`` of None means the current version.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from ..errors import ItemFailure
from ..model import (
    CompletedPart,
    KeyPage,
    LifecycleRule,
    ObjectAttrs,
    ObjectInfo,
    ObjectPage,
    OpenUpload,
    Versioning,
    VersionPage,
    VersionRef,
)

MAX_PAGE = 1000
MAX_DELETE_BATCH = 1000
MAX_COPY_SIZE = 5 * 1024**3  # CopyObject refuses bigger sources: use multipart copy
MIN_PART_SIZE = 5 * 1024**2
MAX_PART_SIZE = 5 * 1024**3
MAX_PARTS = 10_000

Tags = Mapping[str, str]


class ObjectStore(Protocol):
    """Asynchronous access to buckets, objects and their versions."""

    # --- buckets -----------------------------------------------------------------------------

    async def create_bucket(self, bucket: str) -> None: ...

    async def check_bucket(self, bucket: str) -> None:
        """Raise BucketNotFound / AccessDenied unless the bucket is there and reachable."""
        ...

    async def get_versioning(self, bucket: str) -> Versioning: ...

    async def set_versioning(self, bucket: str, enabled: bool) -> None: ...

    async def get_lifecycle(self, bucket: str) -> list[LifecycleRule]: ...

    # --- listings ----------------------------------------------------------------------------

    async def list_versions_page(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        version_id_marker: str = "",
        max_keys: int = MAX_PAGE,
    ) -> VersionPage:
        """One page of ListObjectVersions: entries after (key_marker, version_id_marker)."""
        ...

    async def list_objects_page(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        start_after: str = "",
        continuation_token: str | None = None,
        max_keys: int = MAX_PAGE,
    ) -> ObjectPage:
        """One page of ListObjectsV2: current objects after ``start_after``."""
        ...

    async def list_keys_page(
        self,
        bucket: str,
        *,
        prefix: str = "",
        start_after: str = "",
        continuation_token: str | None = None,
        max_keys: int = MAX_PAGE,
    ) -> KeyPage:
        """The same page as :meth:`list_objects_page` (no delimiter), its keys alone: what a
        walk that needs no other field reads (a store may skip parsing the rest)."""
        ...

    async def server(self, bucket: str) -> str:
        """How the server answering for ``bucket`` names itself (its ``Server`` header), or
        "" when it does not: listings choose how to page from it."""
        ...

    async def server_time(self, bucket: str) -> datetime | None:
        """The server's clock now: the ``Date`` of a fresh answer for ``bucket`` (whole
        seconds, UTC), or None when it sends none. Snapshots are cut by it (the server stamps
        ``LastModified``), not by this machine's clock (docs/design.md, "Snapshots")."""
        ...

    # --- reads -------------------------------------------------------------------------------

    async def head(
        self,
        bucket: str,
        key: str,
        version_id: str | None = None,
        *,
        part_number: int | None = None,
    ) -> ObjectInfo:
        """Raise ObjectNotFound for a missing key or version, or a delete marker.

        With ``part_number``, ``size`` is that part's length and ``parts_count`` the number of
        parts (1 for an object not uploaded in parts): how a copy learns a source's layout.
        """
        ...

    def get(
        self,
        bucket: str,
        key: str,
        version_id: str | None = None,
        *,
        byte_range: tuple[int, int] | None = None,
        chunk_size: int = 1024 * 1024,
    ) -> AsyncIterator[bytes]:
        """The bytes (inclusive ``byte_range``), streamed in chunks of at most chunk_size."""
        ...

    async def get_tags(
        self, bucket: str, key: str, version_id: str | None = None
    ) -> dict[str, str]: ...

    # --- writes ------------------------------------------------------------------------------

    async def put(
        self,
        bucket: str,
        key: str,
        data: bytes | bytearray,
        *,
        attrs: ObjectAttrs | None = None,
        tags: Tags | None = None,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        """Write an object; return its new version id (``null`` when unversioned).

        Conditional writes (catalog locks): ``if_none_match`` writes only if the key has no
        current object (absent or a delete marker on top); ``if_match`` only if the current
        object's ETag is this one. Otherwise nothing is written and PreconditionFailed is
        raised (HTTP 412). A server that ignores the conditions is found by a probe
        (``catalog.lock.conditional_writes``), never assumed.
        """
        ...

    async def copy(
        self,
        source: VersionRef,
        bucket: str,
        key: str,
        *,
        attrs: ObjectAttrs | None = None,
        tags: Tags | None = None,
    ) -> str:
        """Server-side copy of one version (≤ 5 GiB); return the new version id.

        ``attrs``/``tags`` None: keep the source's metadata, content headers and tags (the
        COPY directive); the storage class then becomes the default, as on S3. Pass ``attrs``
        to set all of them, storage class included.
        """
        ...

    async def delete(self, bucket: str, key: str) -> str | None:
        """Delete the current object: in a versioned bucket, add a delete marker (its id)."""
        ...

    async def delete_versions(self, bucket: str, refs: Sequence[VersionRef]) -> list[ItemFailure]:
        """Permanently delete up to 1,000 versions or delete markers; return the failures."""
        ...

    # --- multipart ---------------------------------------------------------------------------

    async def create_multipart(
        self, bucket: str, key: str, *, attrs: ObjectAttrs | None = None, tags: Tags | None = None
    ) -> str:
        """Start a multipart upload; return its upload id."""
        ...

    async def upload_part(
        self, bucket: str, key: str, upload_id: str, number: int, data: bytes | bytearray
    ) -> CompletedPart: ...

    async def upload_part_copy(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        number: int,
        source: VersionRef,
        byte_range: tuple[int, int],
    ) -> CompletedPart:
        """Copy the inclusive ``byte_range`` of a source version as one part."""
        ...

    async def complete_multipart(
        self, bucket: str, key: str, upload_id: str, parts: Sequence[CompletedPart]
    ) -> str:
        """Finish the upload; return the new version id."""
        ...

    async def abort_multipart(self, bucket: str, key: str, upload_id: str) -> None: ...

    async def open_uploads(
        self, bucket: str, prefix: str = "", *, page_size: int = MAX_PAGE
    ) -> list[OpenUpload]:
        """Every multipart upload open under ``prefix`` (all pages of ListMultipartUploads),
        in key order."""
        ...

    # --- lifetime ----------------------------------------------------------------------------

    async def close(self) -> None: ...
