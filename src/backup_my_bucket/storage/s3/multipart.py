"""S3Store's multipart uploads: begun, fed (parts uploaded or copied), completed, aborted, and
the ones still open listed (ListMultipartUploads, storage/s3/uploads.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, TypeVar

from ...errors import ObjectNotFound
from ...model import CompletedPart, ObjectAttrs, OpenUpload, VersionRef
from ..protocol import MAX_PAGE, Tags
from .attrs import _attrs_params, _tagging
from .connection import Connection
from .uploads import all_uploads
from .wire import present, uploads_query

T = TypeVar("T")
_UPLOADS = "ListBucketMultipartUploads"  # the permission (errors name it)


class Multipart(Connection):
    """The multipart half of :class:`~.store.S3Store`."""

    async def create_multipart(
        self, bucket: str, key: str, *, attrs: ObjectAttrs | None = None, tags: Tags | None = None
    ) -> str:
        params = _attrs_params(attrs or ObjectAttrs())
        if tags:
            params["Tagging"] = _tagging(tags)
        resp = await self._api(
            "PutObject",
            bucket,
            lambda c: c.create_multipart_upload(Bucket=bucket, Key=key, **params),
            key,
        )
        return resp["UploadId"]

    async def upload_part(
        self, bucket: str, key: str, upload_id: str, number: int, data: bytes | bytearray
    ) -> CompletedPart:
        part = _part(bucket, key, upload_id, number)
        resp = await self._api(
            "PutObject",
            bucket,
            lambda c: c.upload_part(**part, Body=data),  # type: ignore[arg-type]  # bytes-like
            key,
        )
        return CompletedPart(number, str(resp["ETag"]).strip('"'))

    async def upload_part_copy(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        number: int,
        source: VersionRef,
        byte_range: tuple[int, int],
    ) -> CompletedPart:
        src: dict[str, str] = {"Bucket": source.bucket, "Key": source.key}
        if source.version_id:
            src["VersionId"] = source.version_id
        part = _part(bucket, key, upload_id, number)
        span = f"bytes={byte_range[0]}-{byte_range[1]}"
        resp = await _about_source(
            source,
            self._api(
                "PutObject",
                bucket,
                lambda c: c.upload_part_copy(**part, CopySource=src, CopySourceRange=span),  # type: ignore[arg-type]
                key,
            ),
        )
        return CompletedPart(number, str(resp["CopyPartResult"].get("ETag", "")).strip('"'))

    async def complete_multipart(
        self, bucket: str, key: str, upload_id: str, parts: Sequence[CompletedPart]
    ) -> str:
        resp = await self._api(
            "PutObject",
            bucket,
            lambda c: c.complete_multipart_upload(
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={
                    "Parts": [{"PartNumber": p.number, "ETag": f'"{p.etag}"'} for p in parts]
                },
            ),
            key,
        )
        return resp.get("VersionId") or "null"

    async def abort_multipart(self, bucket: str, key: str, upload_id: str) -> None:
        await self._api(
            "AbortMultipartUpload",
            bucket,
            lambda c: c.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id),
            key,
        )

    async def open_uploads(
        self, bucket: str, prefix: str = "", *, page_size: int = MAX_PAGE
    ) -> list[OpenUpload]:
        async def fetch(markers: Mapping[str, str]) -> Mapping[str, Any]:
            if (fast_path := self._serving) is not None:
                query = uploads_query(prefix, markers, page_size)
                fast = await self._call(_UPLOADS, bucket, fast_path.list_uploads(bucket, query))
                if fast is not None:
                    return fast
            params: dict[str, Any] = present({"Prefix": prefix, **markers})
            return await self._api(
                _UPLOADS, bucket, lambda c: c.list_multipart_uploads(
                    Bucket=bucket, EncodingType="url", MaxUploads=page_size, **params
                ),
            )  # fmt: skip

        return await all_uploads(fetch, bucket, await self.server(bucket))


def _part(bucket: str, key: str, upload_id: str, number: int) -> dict[str, Any]:
    """The parameters naming one part of a multipart upload."""
    return {"Bucket": bucket, "Key": key, "UploadId": upload_id, "PartNumber": number}


async def _about_source(source: VersionRef, copy: Awaitable[T]) -> T:
    """A copy's request: its NoSuchKey/NoSuchVersion is about its source (the target key need
    not exist), so report the source's bucket, key and version, not the target's."""
    try:
        return await copy
    except ObjectNotFound as exc:
        raise ObjectNotFound(source.bucket, source.key, source.version_id) from exc
