"""S3Store and S3Config: the ObjectStore on real S3 (or any S3-compatible server)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, TypeVar

from ...errors import AccessDenied, ItemFailure, ObjectNotFound, StorageError
from ...model import (
    KeyPage,
    LifecycleRule,
    ObjectAttrs,
    ObjectInfo,
    ObjectPage,
    Versioning,
    VersionPage,
    VersionRef,
)
from ..protocol import MAX_DELETE_BATCH, MAX_PAGE, Tags
from .attrs import _attrs_from_head, _attrs_params, _info_from_headers, _tagging
from .hooks import _PAGE
from .multipart import Multipart, _about_source
from .parse import parse_timestamp
from .redact import redact
from .wire import present

log = logging.getLogger(__name__)
T = TypeVar("T")


_CONDITIONS = {"IfNoneMatch": "if-none-match", "IfMatch": "if-match"}  # botocore's headers


class S3Store(Multipart):
    """An ObjectStore over one fast path and one aiobotocore client (built when a request
    first needs it), shared by every task of the process.

    Use ``async with S3Store(config) as store:`` or call :meth:`open` and :meth:`close`.
    """

    # --- buckets -----------------------------------------------------------------------------

    async def create_bucket(self, bucket: str) -> None:
        params: dict[str, Any] = {"Bucket": bucket}
        region = self.config.region
        if region and region != "us-east-1" and not self.config.endpoint_url:
            params["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            await self._api("CreateBucket", bucket, lambda c: c.create_bucket(**params))
        except StorageError as exc:
            if "BucketAlreadyOwnedByYou" not in str(exc):
                raise

    async def check_bucket(self, bucket: str) -> None:
        if self._recall("bucket", bucket) is not None:
            return
        try:
            await self._head_bucket(bucket)
        except AccessDenied:
            # A HEAD answer has no body: its 403 may as well be a wrong secret key or an
            # unknown access key. A listing's error names it (SignatureDoesNotMatch ->
            # InvalidCredentials); a listing that works means the bucket is usable after all.
            await self._api(
                "ListBucket", bucket, lambda c: c.list_objects_v2(Bucket=bucket, MaxKeys=1)
            )
        self._remember("bucket", bucket, True)

    async def server_time(self, bucket: str) -> datetime | None:
        """The ``Date`` of a fresh HeadBucket answer; None when it has none (or an odd one)."""
        date = (await self._head_bucket(bucket)).get("date")
        try:
            return parse_timestamp(str(date)).replace(microsecond=0) if date else None
        except ValueError:
            return None

    async def get_versioning(self, bucket: str) -> Versioning:
        known = self._recall("versioning", bucket)
        if isinstance(known, Versioning):
            return known
        status: str | None = None
        if (fast_path := self._serving) is not None:
            fast = fast_path.get_versioning(bucket)
            status = await self._call("GetBucketVersioning", bucket, fast)
        if status is None:
            resp = await self._api(
                "GetBucketVersioning", bucket, lambda c: c.get_bucket_versioning(Bucket=bucket)
            )
            status = resp.get("Status")
        versioning = Versioning(status) if status else Versioning.UNVERSIONED
        self._remember("versioning", bucket, versioning)
        return versioning

    async def set_versioning(self, bucket: str, enabled: bool) -> None:
        status: Literal["Enabled", "Suspended"] = "Enabled" if enabled else "Suspended"
        await self._api(
            "PutBucketVersioning",
            bucket,
            lambda c: c.put_bucket_versioning(
                Bucket=bucket, VersioningConfiguration={"Status": status}
            ),
        )
        self._forget("versioning", bucket)  # asked again: some servers lag

    async def get_lifecycle(self, bucket: str) -> list[LifecycleRule]:
        try:
            resp = await self._api(
                "GetLifecycleConfiguration",
                bucket,
                lambda c: c.get_bucket_lifecycle_configuration(Bucket=bucket),
            )
        except StorageError as exc:
            if "NoSuchLifecycleConfiguration" in str(exc):
                return []
            raise
        rules = []
        for rule in resp.get("Rules", []):
            filt: Mapping[str, Any] = rule.get("Filter") or {}
            prefix = str(filt.get("Prefix", rule.get("Prefix", "")) or "")
            rules.append(
                LifecycleRule(
                    id=str(rule.get("ID", "")),
                    enabled=rule.get("Status") == "Enabled",
                    prefix=prefix,
                    expiration_days=(rule.get("Expiration") or {}).get("Days"),
                    noncurrent_expiration_days=(rule.get("NoncurrentVersionExpiration") or {}).get(
                        "NoncurrentDays"
                    ),
                )
            )
        return rules

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
        version = version_id_marker if key_marker else ""
        if (fast_path := self._serving) is not None:
            query = {"versions": "", "max-keys": str(max_keys), "encoding-type": "url"}
            query |= present(
                {"prefix": prefix, "delimiter": delimiter, "key-marker": key_marker,
                 "version-id-marker": version}
            )  # fmt: skip
            fast_page = await self._call(
                "ListBucketVersions", bucket, fast_path.list_versions(bucket, query)
            )
            if fast_page is not None:
                return fast_page
        params: dict[str, Any] = {"Bucket": bucket, "MaxKeys": max_keys, "EncodingType": "url"}
        params |= present(
            {"Prefix": prefix, "Delimiter": delimiter, "KeyMarker": key_marker,
             "VersionIdMarker": version}
        )  # fmt: skip
        resp: Mapping[str, Any] = await self._api(
            "ListBucketVersions", bucket, lambda c: c.list_object_versions(**params)
        )
        if self._fast is not None:
            self._fast.settled(bucket)
        page: VersionPage = resp[_PAGE]
        return page

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
        token = continuation_token or ""
        if (fast_path := self._serving) is not None:
            query = _objects_query(prefix, delimiter, start_after, token, max_keys)
            fast_page = await self._call(
                "ListBucket", bucket, fast_path.list_objects(bucket, query)
            )
            if fast_page is not None:
                return fast_page
        return await self._objects_page(bucket, prefix, delimiter, start_after, token, max_keys)

    async def _objects_page(
        self, bucket: str, prefix: str, delimiter: str, start_after: str, token: str, max_keys: int
    ) -> ObjectPage:
        """ListObjectsV2 through botocore."""
        params: dict[str, Any] = {"Bucket": bucket, "MaxKeys": max_keys, "EncodingType": "url"}
        params |= present(
            {"Prefix": prefix, "Delimiter": delimiter, "StartAfter": start_after,
             "ContinuationToken": token}
        )  # fmt: skip
        resp: Mapping[str, Any] = await self._api(
            "ListBucket", bucket, lambda c: c.list_objects_v2(**params)
        )
        page: ObjectPage = resp[_PAGE]
        return page

    async def list_keys_page(
        self,
        bucket: str,
        *,
        prefix: str = "",
        start_after: str = "",
        continuation_token: str | None = None,
        max_keys: int = MAX_PAGE,
    ) -> KeyPage:
        token = continuation_token or ""
        if (fast_path := self._serving) is not None:
            query = _objects_query(prefix, "", start_after, token, max_keys)
            fast_page = await self._call("ListBucket", bucket, fast_path.list_keys(bucket, query))
            if fast_page is not None:
                return fast_page
        page = await self._objects_page(bucket, prefix, "", start_after, token, max_keys)
        return KeyPage([obj.key for obj in page.objects], page.is_truncated, page.next_token)

    # --- reads -------------------------------------------------------------------------------

    def _version(self, version_id: str | None) -> dict[str, Any]:
        return {"VersionId": version_id} if version_id else {}

    async def head(
        self,
        bucket: str,
        key: str,
        version_id: str | None = None,
        *,
        part_number: int | None = None,
    ) -> ObjectInfo:
        if part_number is None and (fast_path := self._serving) is not None:
            fast = fast_path.head(bucket, key, version_id)
            headers = await self._call("GetObject", bucket, fast, key, version_id)
            if headers is not None:
                return _info_from_headers(key, headers)
        params: dict[str, Any] = {"Bucket": bucket, "Key": key, **self._version(version_id)}
        if part_number is not None:
            params["PartNumber"] = part_number
        head = await self._api(
            "GetObject", bucket, lambda c: c.head_object(**params), key, version_id
        )
        if self._fast is not None:
            self._fast.settled(bucket)
        if head.get("DeleteMarker"):
            raise ObjectNotFound(bucket, key, version_id)
        return ObjectInfo(
            key=key,
            version_id=head.get("VersionId") or "null",
            size=int(head.get("ContentLength", 0)),
            etag=str(head.get("ETag", "")).strip('"'),
            last_modified=head["LastModified"],
            attrs=_attrs_from_head(head),
            tag_count=int(head.get("TagCount", 0) or 0),
            parts_count=head.get("PartsCount") or (1 if part_number is not None else None),
            lock_mode=head.get("ObjectLockMode"),
            lock_until=head.get("ObjectLockRetainUntilDate"),
            legal_hold=head.get("ObjectLockLegalHoldStatus") == "ON",
        )

    async def get(
        self,
        bucket: str,
        key: str,
        version_id: str | None = None,
        *,
        byte_range: tuple[int, int] | None = None,
        chunk_size: int = 1024 * 1024,
    ) -> AsyncIterator[bytes]:
        if (fast_path := self._serving) is not None:
            fast = fast_path.get_object(bucket, key, version_id, byte_range)
            data = await self._call("GetObject", bucket, fast, key, version_id)
            if data is not None:
                for start in range(0, len(data), chunk_size):
                    yield data[start : start + chunk_size]
                return
        params: dict[str, Any] = {"Bucket": bucket, "Key": key, **self._version(version_id)}
        if byte_range is not None:
            params["Range"] = f"bytes={byte_range[0]}-{byte_range[1]}"
        resp = await self._api(
            "GetObject", bucket, lambda c: c.get_object(**params), key, version_id
        )
        body = resp["Body"]
        try:
            while True:
                chunk = await self._call(
                    "GetObject", bucket, body.read(chunk_size), key, version_id
                )
                if not chunk:
                    return
                yield chunk
        finally:
            body.close()

    async def get_tags(
        self, bucket: str, key: str, version_id: str | None = None
    ) -> dict[str, str]:
        resp = await self._api(
            "GetObjectTagging",
            bucket,
            lambda c: c.get_object_tagging(Bucket=bucket, Key=key, **self._version(version_id)),
            key,
            version_id,
        )
        return {t["Key"]: t["Value"] for t in resp.get("TagSet", [])}

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
        conditions: dict[str, str] = {}
        if if_none_match:
            conditions["IfNoneMatch"] = "*"  # 412 (PreconditionFailed) when the key exists
        if if_match is not None:
            conditions["IfMatch"] = if_match if if_match.startswith('"') else f'"{if_match}"'
        plain = (attrs is None or attrs == ObjectAttrs()) and not tags
        if plain and (fast_path := self._serving) is not None:
            headers = {_CONDITIONS[name]: value for name, value in conditions.items()}
            fast = fast_path.put_object(bucket, key, bytes(data), headers)
            version = await self._call("PutObject", bucket, fast, key)
            if version is not None:
                return version
        params = _attrs_params(attrs or ObjectAttrs()) | conditions
        if tags:
            params["Tagging"] = _tagging(tags)
        resp = await self._api(
            "PutObject",
            bucket,
            lambda c: c.put_object(Bucket=bucket, Key=key, Body=data, **params),  # type: ignore[arg-type]  # bytes-like
            key,
        )
        return resp.get("VersionId") or "null"

    async def copy(
        self,
        source: VersionRef,
        bucket: str,
        key: str,
        *,
        attrs: ObjectAttrs | None = None,
        tags: Tags | None = None,
    ) -> str:
        if attrs is None and tags is None and (fast_path := self._serving) is not None:
            fast = self._call("PutObject", bucket, fast_path.copy(source, bucket, key), key)
            version = await _about_source(source, fast)
            if version is not None:
                return version
        src: dict[str, str] = {"Bucket": source.bucket, "Key": source.key}
        if source.version_id:
            src["VersionId"] = source.version_id
        params: dict[str, Any] = {"MetadataDirective": "COPY", "TaggingDirective": "COPY"}
        if attrs is not None:
            params.update(_attrs_params(attrs), MetadataDirective="REPLACE")
        if tags is not None:
            params.update(Tagging=_tagging(tags), TaggingDirective="REPLACE")
        resp = await _about_source(
            source,
            self._api(
                "PutObject",
                bucket,
                lambda c: c.copy_object(Bucket=bucket, Key=key, CopySource=src, **params),  # type: ignore[arg-type]
                key,
            ),
        )
        if self._fast is not None:
            self._fast.settled(bucket)
        return resp.get("VersionId") or "null"

    async def delete(self, bucket: str, key: str) -> str | None:
        if (fast_path := self._serving) is not None:
            fast = await self._call("DeleteObject", bucket, fast_path.delete_object(bucket, key))
            if fast is not None:
                version, marker = fast
                return version if marker else None
        resp = await self._api(
            "DeleteObject", bucket, lambda c: c.delete_object(Bucket=bucket, Key=key), key
        )
        return resp.get("VersionId") if resp.get("DeleteMarker") else None

    async def delete_versions(self, bucket: str, refs: Sequence[VersionRef]) -> list[ItemFailure]:
        if len(refs) > MAX_DELETE_BATCH:
            raise ValueError(f"at most {MAX_DELETE_BATCH} versions per delete batch")
        if not refs:
            return []
        objects: list[Any] = []
        for ref in refs:
            if ref.version_id is None:
                raise ValueError("delete_versions needs explicit version ids")
            objects.append({"Key": ref.key, "VersionId": ref.version_id})
        resp = await self._api(
            "DeleteObjectVersion",
            bucket,
            lambda c: c.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True}),
        )
        return [
            ItemFailure(
                key=err.get("Key", ""),
                version_id=err.get("VersionId"),
                reason=f"{err.get('Code', '')}: {redact(err.get('Message', ''))}",
            )
            for err in resp.get("Errors", [])
        ]


def _objects_query(
    prefix: str, delimiter: str, start_after: str, token: str, max_keys: int
) -> dict[str, str]:
    """The query of a ListObjectsV2 request on the fast path."""
    query = {"list-type": "2", "max-keys": str(max_keys), "encoding-type": "url"}
    return query | present(
        {"prefix": prefix, "delimiter": delimiter, "start-after": start_after,
         "continuation-token": token}
    )  # fmt: skip
