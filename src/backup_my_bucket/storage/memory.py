"""A faithful in-memory, versioned object store for fast logic tests.

It follows AWS S3 semantics (not any other server's): versions newest first, delete markers,
the ``null`` version of unversioned and suspended buckets, paging with key and version
markers, delimiters, whole-second LastModified, MD5 ETags (``-N`` for multipart), 1,000-key
delete batches, 1,024-byte keys, Object Lock (retention and legal holds refuse a version's
deletion). Time comes from an injectable clock.

Injectable faults, for tests: ``denied`` (AccessDenied for a bucket's operation; the
operation ``"delete_version"`` refuses each version of a DeleteObjects batch one by one, as an
IAM deny does) and ``chunk_etags`` (SeaweedFS's ListObjectVersions: a ``null`` version larger
than one 4 MiB chunk is listed with the ETag of its internal chunks, ``md5(chunk md5s)-N``;
HEAD and ListObjectsV2 still show the real one).

Listings page like AWS (:mod:`.aws_listing`), or, with ``seaweedfs_paging=True``, the way
SeaweedFS 4.48 does (:mod:`.seaweedfs_model`: a tree walk that loses keys beside directories
and versioned stems, ListObjectsV2 in walk order); the store then names itself as SeaweedFS.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from ..clock import SYSTEM_CLOCK, Clock
from ..errors import (
    AccessDenied,
    BucketNotFound,
    ItemFailure,
    ObjectNotFound,
    PreconditionFailed,
    StorageError,
    UsageError,
)
from ..model import (
    NULL_VERSION,
    CompletedPart,
    KeyPage,
    LifecycleRule,
    ObjectAttrs,
    ObjectInfo,
    ObjectPage,
    ObjectSummary,
    ObjectVersion,
    OpenUpload,
    Versioning,
    VersionPage,
    VersionRef,
)
from . import aws_listing, seaweedfs_model
from .memory_model import (
    Bucket,
    Upload,
    Version,
    check_key,
    chunk_etag,
    md5_hex,
)
from .protocol import MAX_COPY_SIZE, MAX_DELETE_BATCH, MAX_PAGE, MIN_PART_SIZE, Tags


class MemoryStore:
    """An :class:`~backup_my_bucket.storage.protocol.ObjectStore` kept in a dict."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK, *, seaweedfs_paging: bool = False) -> None:
        self.clock = clock
        self.seaweedfs_paging = seaweedfs_paging
        self._model: dict[str, tuple[int, list[seaweedfs_model.Entry]]] = {}
        self._buckets: dict[str, Bucket] = {}
        self._ids = itertools.count(1)
        self.denied: set[tuple[str, str]] = set()
        """(bucket, operation) pairs that answer AccessDenied, for permission tests."""
        self.stamp_at_initiation = False
        """Stamp a completed multipart upload with its initiation (AWS), not its end (SeaweedFS)."""
        self.chunk_etags = False
        """List null versions with SeaweedFS's chunk ETags (see the module docstring)."""
        self.calls: dict[str, int] = {}

    # --- helpers -----------------------------------------------------------------------------

    def _bucket(self, name: str, op: str) -> Bucket:
        self.calls[op] = self.calls.get(op, 0) + 1
        if (name, op) in self.denied or (name, "*") in self.denied:
            raise AccessDenied(f"access denied: {op} on bucket {name!r}")
        try:
            return self._buckets[name]
        except KeyError:
            raise BucketNotFound(name) from None

    def _now(self) -> datetime:
        return self.clock.now().replace(microsecond=0)  # S3 keeps whole seconds

    def _new_version_id(self, bucket: Bucket) -> str:
        if bucket.versioning is Versioning.ENABLED:
            return f"v{next(self._ids):012d}"
        return NULL_VERSION

    def _add(self, bucket: Bucket, key: str, version: Version) -> None:
        bucket.generation += 1
        history = bucket.versions.get(key)
        if history is None:
            bisect.insort(bucket.keys, key)
            history = bucket.versions[key] = []
        if version.version_id == NULL_VERSION:  # a null version replaces the previous one
            history[:] = [v for v in history if v.version_id != NULL_VERSION]
        history.insert(0, version)

    def _find(self, bucket: Bucket, name: str, key: str, version_id: str | None) -> Version:
        history = bucket.versions.get(key, [])
        if version_id is None:
            if history and not history[0].is_delete_marker:
                return history[0]
            raise ObjectNotFound(name, key)
        for version in history:
            if version.version_id == version_id:
                if version.is_delete_marker:  # AWS answers 405 MethodNotAllowed
                    raise ObjectNotFound(name, key, version_id)
                return version
        raise ObjectNotFound(name, key, version_id)

    def _info(self, key: str, v: Version) -> ObjectInfo:
        assert v.etag is not None
        return ObjectInfo(
            key=key,
            version_id=v.version_id,
            size=len(v.data),
            etag=v.etag,
            last_modified=v.last_modified,
            attrs=v.attrs,
            tag_count=len(v.tags),
            parts_count=v.parts_count,
            lock_mode=v.lock_mode,
            lock_until=v.lock_until,
            legal_hold=v.legal_hold,
        )

    def _listed_etag(self, v: Version) -> str | None:
        if self.chunk_etags and v.version_id == NULL_VERSION and v.etag is not None:
            v.listed_chunks = v.listed_chunks or chunk_etag(v.data, v.part_sizes)
            return v.listed_chunks
        return v.etag

    # --- buckets -----------------------------------------------------------------------------

    async def create_bucket(self, bucket: str) -> None:
        self._buckets.setdefault(bucket, Bucket())

    async def check_bucket(self, bucket: str) -> None:
        self._bucket(bucket, "check_bucket")

    async def get_versioning(self, bucket: str) -> Versioning:
        return self._bucket(bucket, "get_versioning").versioning

    async def set_versioning(self, bucket: str, enabled: bool) -> None:
        b = self._bucket(bucket, "set_versioning")
        if enabled:
            b.versioning = Versioning.ENABLED
        elif b.versioning is not Versioning.UNVERSIONED:
            b.versioning = Versioning.SUSPENDED

    async def get_lifecycle(self, bucket: str) -> list[LifecycleRule]:
        return list(self._bucket(bucket, "get_lifecycle").lifecycle)

    def set_lifecycle(self, bucket: str, rules: Sequence[LifecycleRule]) -> None:
        """Test helper (not part of the protocol)."""
        self._buckets[bucket].lifecycle = list(rules)

    # --- listings ----------------------------------------------------------------------------

    def _listed(self, key: str, v: Version, latest: bool) -> ObjectVersion:
        """A version as ListObjectVersions shows it."""
        return ObjectVersion(
            key=key,
            version_id=v.version_id,
            last_modified=v.last_modified,
            size=len(v.data),
            etag=self._listed_etag(v),
            is_latest=latest,
            is_delete_marker=v.is_delete_marker,
            storage_class=None if v.is_delete_marker else (v.attrs.storage_class or "STANDARD"),
        )

    def _histories(self, b: Bucket) -> Callable[[str], list[ObjectVersion]]:
        def history(key: str) -> list[ObjectVersion]:
            return [self._listed(key, v, i == 0) for i, v in enumerate(b.versions[key])]

        return history

    def _currents(self, b: Bucket) -> Callable[[str], ObjectSummary | None]:
        def current(key: str) -> ObjectSummary | None:
            """The key's current object as ListObjectsV2 shows it (its real ETag)."""
            head = b.versions[key][0]
            if head.etag is None:
                return None
            return ObjectSummary(
                key, head.last_modified, len(head.data), head.etag,
                head.attrs.storage_class or "STANDARD",
            )  # fmt: skip

        return current

    def _tree(self, name: str, b: Bucket) -> list[seaweedfs_model.Entry]:
        cached = self._model.get(name)
        if cached is None or cached[0] != b.generation:
            history, current = self._histories(b), self._currents(b)
            entries = seaweedfs_model.build([(k, tuple(history(k)), current(k)) for k in b.keys])
            cached = self._model[name] = (b.generation, entries)
        return cached[1]

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
        b = self._bucket(bucket, "list_versions")
        if self.seaweedfs_paging:
            return seaweedfs_model.list_versions(
                self._tree(bucket, b), prefix=prefix, delimiter=delimiter, key_marker=key_marker,
                version_id_marker=version_id_marker, max_keys=max_keys,
            )  # fmt: skip
        return aws_listing.list_versions(
            b.keys, self._histories(b), prefix=prefix, delimiter=delimiter,
            key_marker=key_marker, version_id_marker=version_id_marker, max_keys=max_keys,
        )  # fmt: skip

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
        b = self._bucket(bucket, "list_objects")
        if self.seaweedfs_paging:
            if delimiter:
                raise UsageError("the SeaweedFS model lists objects without a delimiter only")
            return seaweedfs_model.list_objects(
                self._tree(bucket, b), prefix=prefix, start_after=start_after,
                continuation_token=continuation_token, max_keys=max_keys,
            )  # fmt: skip
        return aws_listing.list_objects(
            b.keys, self._currents(b), prefix=prefix, delimiter=delimiter,
            start_after=start_after, continuation_token=continuation_token, max_keys=max_keys,
        )  # fmt: skip

    async def list_keys_page(
        self,
        bucket: str,
        *,
        prefix: str = "",
        start_after: str = "",
        continuation_token: str | None = None,
        max_keys: int = MAX_PAGE,
    ) -> KeyPage:
        page = await self.list_objects_page(
            bucket, prefix=prefix, start_after=start_after,
            continuation_token=continuation_token, max_keys=max_keys,
        )  # fmt: skip
        return KeyPage([obj.key for obj in page.objects], page.is_truncated, page.next_token)

    async def server(self, bucket: str) -> str:
        self._bucket(bucket, "server")
        return seaweedfs_model.SERVER if self.seaweedfs_paging else "MemoryStore"

    async def server_time(self, bucket: str) -> datetime | None:
        self._bucket(bucket, "server_time")
        return self._now()

    # --- reads -------------------------------------------------------------------------------

    async def head(
        self,
        bucket: str,
        key: str,
        version_id: str | None = None,
        *,
        part_number: int | None = None,
    ) -> ObjectInfo:
        b = self._bucket(bucket, "head")
        version = self._find(b, bucket, key, version_id)
        info = self._info(key, version)
        if part_number is None:
            return info
        sizes = version.part_sizes or (len(version.data),)
        if not 1 <= part_number <= len(sizes):
            raise StorageError(f"InvalidPartNumber: {part_number} for s3://{bucket}/{key}")
        return replace(info, size=sizes[part_number - 1], parts_count=len(sizes))

    async def get(
        self,
        bucket: str,
        key: str,
        version_id: str | None = None,
        *,
        byte_range: tuple[int, int] | None = None,
        chunk_size: int = 1024 * 1024,
    ) -> AsyncIterator[bytes]:
        b = self._bucket(bucket, "get")
        data = self._find(b, bucket, key, version_id).data
        if byte_range is not None:
            data = data[byte_range[0] : byte_range[1] + 1]
        for offset in range(0, len(data), chunk_size):
            yield data[offset : offset + chunk_size]

    async def get_tags(
        self, bucket: str, key: str, version_id: str | None = None
    ) -> dict[str, str]:
        b = self._bucket(bucket, "get_tags")
        return dict(self._find(b, bucket, key, version_id).tags)

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
        b = self._bucket(bucket, "put")
        check_key(key)
        if if_match is not None or if_none_match:
            history = b.versions.get(key, [])
            current = history[0] if history and not history[0].is_delete_marker else None
            if if_none_match and current is not None:
                raise PreconditionFailed(f"PutObject on s3://{bucket}/{key}: the key exists")
            if if_match is not None and (current is None or current.etag != if_match.strip('"')):
                raise PreconditionFailed(f"PutObject on s3://{bucket}/{key}: the ETag changed")
        version = Version(
            version_id=self._new_version_id(b),
            last_modified=self._now(),
            data=bytes(data),
            etag=md5_hex(data),
            attrs=attrs or ObjectAttrs(),
            tags=dict(tags or {}),
        )
        self._add(b, key, version)
        return version.version_id

    async def copy(
        self,
        source: VersionRef,
        bucket: str,
        key: str,
        *,
        attrs: ObjectAttrs | None = None,
        tags: Tags | None = None,
    ) -> str:
        src_bucket = self._bucket(source.bucket, "get")
        src = self._find(src_bucket, source.bucket, source.key, source.version_id)
        if len(src.data) > MAX_COPY_SIZE:
            raise StorageError(f"CopyObject source is larger than 5 GiB: {source.key!r}")
        b = self._bucket(bucket, "put")
        check_key(key)
        version = Version(
            version_id=self._new_version_id(b),
            last_modified=self._now(),
            data=src.data,
            etag=md5_hex(src.data),  # a copy is one part: a multipart source gets a plain ETag
            # the COPY directive keeps metadata and headers but not the class, as on S3
            attrs=replace(src.attrs, storage_class=None) if attrs is None else attrs,
            tags=dict(src.tags if tags is None else tags),
        )
        self._add(b, key, version)
        return version.version_id

    async def delete(self, bucket: str, key: str) -> str | None:
        b = self._bucket(bucket, "delete")
        if b.versioning is Versioning.UNVERSIONED:
            if key in b.versions:
                b.generation += 1
                del b.versions[key]
                b.keys.remove(key)
            return None
        marker = Version(version_id=self._new_version_id(b), last_modified=self._now())
        self._add(b, key, marker)
        return marker.version_id

    async def delete_versions(self, bucket: str, refs: Sequence[VersionRef]) -> list[ItemFailure]:
        if len(refs) > MAX_DELETE_BATCH:
            raise ValueError(f"at most {MAX_DELETE_BATCH} versions per delete batch")
        b = self._bucket(bucket, "delete_versions")
        failures: list[ItemFailure] = []
        for ref in refs:
            history = b.versions.get(ref.key)
            if history is None:
                continue  # deleting what is not there succeeds, as on S3
            if ref.version_id is None:
                raise ValueError("delete_versions needs explicit version ids")
            found = [v for v in history if v.version_id == ref.version_id]
            if (bucket, "delete_version") in self.denied:  # AWS's messages
                failures.append(ItemFailure(ref.key, ref.version_id, "AccessDenied: Access Denied"))
            elif (
                found
                and not found[0].is_delete_marker
                and self._info(ref.key, found[0]).locked(self._now())
            ):
                reason = "AccessDenied: Access Denied because object protected by object lock."
                failures.append(ItemFailure(ref.key, ref.version_id, reason))
            else:
                history[:] = [v for v in history if v.version_id != ref.version_id]
                b.generation += 1
                if not history:
                    del b.versions[ref.key]
                    b.keys.remove(ref.key)
        return failures

    # --- multipart ---------------------------------------------------------------------------

    async def create_multipart(
        self, bucket: str, key: str, *, attrs: ObjectAttrs | None = None, tags: Tags | None = None
    ) -> str:
        b = self._bucket(bucket, "put")
        check_key(key)
        upload_id = f"u{next(self._ids):012d}"
        # Initiated keeps milliseconds (ListMultipartUploads shows them); stamps do not
        now = self.clock.now()
        started = now.replace(microsecond=now.microsecond // 1000 * 1000)
        b.uploads[upload_id] = Upload(key, attrs or ObjectAttrs(), dict(tags or {}), started)
        return upload_id

    def _upload(self, bucket: str, key: str, upload_id: str) -> Upload:
        upload = self._bucket(bucket, "put").uploads.get(upload_id)
        if upload is None or upload.key != key:
            raise ObjectNotFound(bucket, key, f"upload {upload_id}")
        return upload

    async def upload_part(
        self, bucket: str, key: str, upload_id: str, number: int, data: bytes | bytearray
    ) -> CompletedPart:
        self._upload(bucket, key, upload_id).parts[number] = bytes(data)
        return CompletedPart(number, md5_hex(data))

    async def upload_part_copy(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        number: int,
        source: VersionRef,
        byte_range: tuple[int, int],
    ) -> CompletedPart:
        src_bucket = self._bucket(source.bucket, "get")
        src = self._find(src_bucket, source.bucket, source.key, source.version_id)
        data = src.data[byte_range[0] : byte_range[1] + 1]
        return await self.upload_part(bucket, key, upload_id, number, data)

    async def complete_multipart(
        self, bucket: str, key: str, upload_id: str, parts: Sequence[CompletedPart]
    ) -> str:
        upload = self._upload(bucket, key, upload_id)
        numbers = [p.number for p in parts]
        if numbers != sorted(set(numbers)) or any(n not in upload.parts for n in numbers):
            raise StorageError(f"invalid part list for upload {upload_id}")
        chunks = [upload.parts[n] for n in numbers]
        if any(len(c) < MIN_PART_SIZE for c in chunks[:-1]):
            raise StorageError("EntityTooSmall: every part but the last must be at least 5 MiB")
        digest = hashlib.md5(
            b"".join(bytes.fromhex(md5_hex(c)) for c in chunks), usedforsecurity=False
        )
        b = self._bucket(bucket, "put")
        del b.uploads[upload_id]
        version = Version(
            version_id=self._new_version_id(b),
            last_modified=(
                upload.initiated.replace(microsecond=0) if self.stamp_at_initiation else self._now()
            ),
            data=b"".join(chunks),
            etag=f"{digest.hexdigest()}-{len(chunks)}",
            attrs=upload.attrs,
            tags=upload.tags,
            parts_count=len(chunks),
            part_sizes=tuple(len(c) for c in chunks),
        )
        self._add(b, key, version)
        return version.version_id

    async def abort_multipart(self, bucket: str, key: str, upload_id: str) -> None:
        self._bucket(bucket, "put").uploads.pop(upload_id, None)

    async def open_uploads(
        self, bucket: str, prefix: str = "", *, page_size: int = MAX_PAGE
    ) -> list[OpenUpload]:
        uploads = self._bucket(bucket, "list_uploads").uploads
        return sorted(
            (OpenUpload(u.key, upload_id, u.initiated) for upload_id, u in uploads.items()
             if u.key.startswith(prefix)),
            key=lambda u: (u.key, u.initiated, u.upload_id),
        )  # fmt: skip

    async def close(self) -> None:
        return None

    # --- test helpers (not part of the protocol) ----------------------------------------------

    def lock(
        self,
        bucket: str,
        key: str,
        version_id: str,
        *,
        mode: str | None = None,
        until: datetime | None = None,
        legal_hold: bool = False,
    ) -> None:
        """Put Object Lock retention (``mode`` until ``until``) or a legal hold on a version."""
        version = self._find(self._buckets[bucket], bucket, key, version_id)
        version.lock_mode, version.lock_until, version.legal_hold = mode, until, legal_hold

    def set_tags(self, bucket: str, key: str, tags: Mapping[str, str]) -> None:
        """PutObjectTagging on the current version: LastModified does not move."""
        self._find(self._buckets[bucket], bucket, key, None).tags = dict(tags)

    def snapshot_state(self, bucket: str) -> Mapping[str, bytes]:
        """The current bytes of every live key: a trivially correct view for tests."""
        b = self._buckets[bucket]
        return {k: b.versions[k][0].data for k in b.keys if not b.versions[k][0].is_delete_marker}
