"""Object attributes and tags between the model and S3's request and response fields."""

from __future__ import annotations

import email.utils
import urllib.parse
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ...model import ObjectAttrs, ObjectInfo
from ..protocol import Tags
from .parse import parse_timestamp

_FIELDS = (  # ObjectAttrs field, botocore's name, the HTTP header
    ("content_type", "ContentType", "content-type"),
    ("content_encoding", "ContentEncoding", "content-encoding"),
    ("cache_control", "CacheControl", "cache-control"),
    ("content_disposition", "ContentDisposition", "content-disposition"),
    ("content_language", "ContentLanguage", "content-language"),
    ("expires", "Expires", "expires"),  # kept as the raw HTTP-date text
    ("storage_class", "StorageClass", "x-amz-storage-class"),
)
_META = "x-amz-meta-"


def _attrs_params(attrs: ObjectAttrs) -> dict[str, Any]:
    params: dict[str, Any] = {"Metadata": dict(attrs.metadata)}
    for field, name, _ in _FIELDS:
        if (value := getattr(attrs, field)) is not None:
            params[name] = value
    return params


def _tagging(tags: Tags) -> str:
    return urllib.parse.urlencode(dict(tags))


def _attrs_from_headers(headers: Mapping[str, str]) -> ObjectAttrs:
    """The attributes in a HEAD's raw HTTP headers (the fast path), as botocore reads them."""
    metadata = {
        name.lower()[len(_META) :]: value
        for name, value in headers.items()
        if name.lower().startswith(_META)
    }
    fields = {field: headers.get(header) for field, _, header in _FIELDS}
    return ObjectAttrs(**fields, metadata=metadata)


def _attrs_from_head(head: Mapping[str, Any]) -> ObjectAttrs:
    """The attributes in botocore's HeadObject answer."""
    fields = {field: head.get(name) for field, name, _ in _FIELDS}
    fields["expires"] = head.get("ExpiresString")  # botocore parses Expires; the raw text
    if fields["expires"] is None and isinstance(head.get("Expires"), datetime):
        fields["expires"] = email.utils.format_datetime(head["Expires"], usegmt=True)
    return ObjectAttrs(**fields, metadata=dict(head.get("Metadata") or {}))


def _info_from_headers(key: str, headers: Mapping[str, str]) -> ObjectInfo:
    """What a HEAD's raw headers (the fast path) say, read the way botocore reads them."""
    until = headers.get("x-amz-object-lock-retain-until-date")
    return ObjectInfo(
        key=key,
        version_id=headers.get("x-amz-version-id") or "null",
        size=int(headers.get("content-length", 0)),
        etag=headers.get("etag", "").strip('"'),
        last_modified=email.utils.parsedate_to_datetime(headers["last-modified"]),
        attrs=_attrs_from_headers(headers),
        tag_count=int(headers.get("x-amz-tagging-count", 0) or 0),
        lock_mode=headers.get("x-amz-object-lock-mode"),
        lock_until=parse_timestamp(until) if until else None,
        legal_hold=headers.get("x-amz-object-lock-legal-hold") == "ON",
    )
