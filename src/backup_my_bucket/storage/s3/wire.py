"""The fast path's requests as botocore builds them: each operation's path under the bucket's
endpoint, its query in SigV4's canonical form and its headers, encoded as botocore encodes
them (tests/unit/test_sigv4.py compares them, signed, with botocore's own requests)."""

from __future__ import annotations

from collections.abc import Mapping

from ...model import VersionRef
from .sigv4 import canonical_query, quote


def copy_request(source: VersionRef, key: str) -> tuple[str, dict[str, str]]:
    """CopyObject's path under the bucket's endpoint and its headers, encoded as botocore
    encodes them: the key and the source's bucket and key URI-encoded, its version id as is."""
    copy_source = quote(f"{source.bucket}/{source.key}", "/~")
    if source.version_id:
        copy_source += f"?versionId={source.version_id}"
    return object_path(key), {"x-amz-copy-source": copy_source}


def head_request(key: str, version_id: str | None) -> tuple[str, str]:
    """HEAD's path under the bucket's endpoint and its (canonical) query."""
    return object_path(key), canonical_query({"versionId": version_id} if version_id else {})


def present(fields: Mapping[str, str]) -> dict[str, str]:
    """The parameters that have a value (an empty one would still be sent)."""
    return {name: value for name, value in fields.items() if value}


def list_versions_request(params: Mapping[str, str]) -> tuple[str, str]:
    """A listing's path under the bucket's endpoint and its (canonical) query
    (ListObjectVersions, ListObjectsV2, ListMultipartUploads)."""
    return "", canonical_query(params)


def uploads_query(prefix: str, markers: Mapping[str, str], max_uploads: int) -> dict[str, str]:
    """ListMultipartUploads' query (for :func:`list_versions_request`), as botocore sends
    ``list_multipart_uploads(EncodingType="url", MaxUploads=..., Prefix=..., **markers)``;
    ``markers``: ``KeyMarker``, ``UploadIdMarker``."""
    query = {"uploads": "", "max-uploads": str(max_uploads), "encoding-type": "url"}
    return query | present(
        {"prefix": prefix, "key-marker": markers.get("KeyMarker", ""),
         "upload-id-marker": markers.get("UploadIdMarker", "")}
    )  # fmt: skip


def object_path(key: str) -> str:
    """An object's path under its bucket's endpoint, encoded as botocore encodes it."""
    return f"/{quote(key)}"


def versioning_request() -> tuple[str, str]:
    """GetBucketVersioning's path under the bucket's endpoint and its (canonical) query."""
    return "", canonical_query({"versioning": ""})


def get_request(
    key: str, version_id: str | None, byte_range: tuple[int, int] | None
) -> tuple[str, str, dict[str, str]]:
    """GetObject's path, query and headers (``byte_range``: inclusive, as Range says)."""
    path, query = head_request(key, version_id)
    return path, query, {"range": f"bytes={byte_range[0]}-{byte_range[1]}"} if byte_range else {}
