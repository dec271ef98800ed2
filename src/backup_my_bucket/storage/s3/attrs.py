"""Object attributes and tags between the model and S3's request and response fields."""

from __future__ import annotations

import email.utils
import urllib.parse
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ...model import ObjectAttrs
from ..protocol import Tags


def _attrs_params(attrs: ObjectAttrs) -> dict[str, Any]:
    params: dict[str, Any] = {"Metadata": dict(attrs.metadata)}
    for name, value in (
        ("ContentType", attrs.content_type),
        ("ContentEncoding", attrs.content_encoding),
        ("CacheControl", attrs.cache_control),
        ("ContentDisposition", attrs.content_disposition),
        ("ContentLanguage", attrs.content_language),
        ("Expires", attrs.expires),
        ("StorageClass", attrs.storage_class),
    ):
        if value is not None:
            params[name] = value
    return params


def _tagging(tags: Tags) -> str:
    return urllib.parse.urlencode(dict(tags))


def _attrs_from_headers(headers: Mapping[str, str]) -> ObjectAttrs:
    """The attributes in a HEAD's raw HTTP headers (the fast path), as botocore reads them."""
    meta = "x-amz-meta-"
    return ObjectAttrs(
        content_type=headers.get("content-type"),
        content_encoding=headers.get("content-encoding"),
        cache_control=headers.get("cache-control"),
        content_disposition=headers.get("content-disposition"),
        content_language=headers.get("content-language"),
        expires=headers.get("expires"),
        metadata={
            name.lower()[len(meta) :]: value
            for name, value in headers.items()
            if name.lower().startswith(meta)
        },
        storage_class=headers.get("x-amz-storage-class"),
    )


def _attrs_from_head(head: Mapping[str, Any]) -> ObjectAttrs:
    expires = head.get("ExpiresString")
    if expires is None and isinstance(head.get("Expires"), datetime):
        expires = email.utils.format_datetime(head["Expires"], usegmt=True)
    return ObjectAttrs(
        content_type=head.get("ContentType"),
        content_encoding=head.get("ContentEncoding"),
        cache_control=head.get("CacheControl"),
        content_disposition=head.get("ContentDisposition"),
        content_language=head.get("ContentLanguage"),
        expires=expires,
        metadata=dict(head.get("Metadata") or {}),
        storage_class=head.get("StorageClass"),
    )
