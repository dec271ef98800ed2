"""Plain data shared by every layer: versions, object attributes, S3 URLs.

All times are timezone-aware UTC. Keys are Python ``str`` compared by code point, which is the
same order as S3's UTF-8 byte order; a key is never normalised, stripped or re-encoded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from .errors import UsageError

NULL_VERSION = "null"
"""The version id S3 gives objects written while versioning was never enabled (or suspended)."""
UNLISTED_VERSION = ""
"""The version id of a current object known from ListObjectsV2, which does not show it."""


@dataclass(frozen=True, slots=True)
class ObjectVersion:
    """One entry of a version listing: an object version or a delete marker."""

    key: str
    version_id: str
    last_modified: datetime
    size: int = 0
    etag: str | None = None  # None for a delete marker; otherwise without quotes
    is_latest: bool = False
    is_delete_marker: bool = False
    storage_class: str | None = None

    def __reduce__(self) -> tuple[type[ObjectVersion], tuple[object, ...]]:
        # listings spill rows to disk with pickle: the field tuple is 2x faster than the default
        return (ObjectVersion, (
            self.key, self.version_id, self.last_modified, self.size, self.etag,
            self.is_latest, self.is_delete_marker, self.storage_class,
        ))  # fmt: skip


@dataclass(frozen=True, slots=True)
class KeyHistory:
    """Every version and delete marker of one key, newest first in the listing's order.

    Within one key the listing's order wins over timestamps: S3 keeps whole seconds, so a
    write and a delete in the same second tie, and only the order tells which came last.
    """

    key: str
    versions: tuple[ObjectVersion, ...]  # newest first

    @property
    def current(self) -> ObjectVersion | None:
        """The live version now, or None when the key is deleted (a delete marker on top)."""
        head = self.versions[0] if self.versions else None
        return None if head is None or head.is_delete_marker else head

    def live_at(self, at: datetime) -> ObjectVersion | None:
        """The version live at ``at``: the newest written at or before it, unless a delete."""
        for version in self.versions:
            if version.last_modified <= at:
                return None if version.is_delete_marker else version
        return None


@dataclass(frozen=True, slots=True)
class ObjectSummary:
    """One entry of a current-objects listing (ListObjectsV2)."""

    key: str
    last_modified: datetime
    size: int
    etag: str
    storage_class: str | None = None

    def __reduce__(self) -> tuple[type[ObjectSummary], tuple[object, ...]]:
        # sorted runs spill to disk with pickle (storage/current.py)
        return (ObjectSummary, (
            self.key, self.last_modified, self.size, self.etag, self.storage_class,
        ))  # fmt: skip

    def as_current(self, version_id: str = UNLISTED_VERSION) -> ObjectVersion:
        """The entry as a version listing's current version: its id unknown
        (:data:`UNLISTED_VERSION`) unless the caller knows it (``null`` in an unversioned
        bucket)."""
        return ObjectVersion(
            self.key, version_id, self.last_modified, self.size, self.etag,
            is_latest=True, storage_class=self.storage_class,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class VersionRef:
    bucket: str
    key: str
    version_id: str | None = None  # None: the current version


@dataclass(frozen=True, slots=True)
class ObjectAttrs:
    """What must survive every copy besides the bytes and the tags."""

    content_type: str | None = None
    content_encoding: str | None = None
    cache_control: str | None = None
    content_disposition: str | None = None
    content_language: str | None = None
    expires: str | None = None  # the raw HTTP-date header value, kept verbatim
    metadata: Mapping[str, str] = field(default_factory=dict)
    storage_class: str | None = None  # None means STANDARD


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What HEAD tells about one object version."""

    key: str
    version_id: str
    size: int
    etag: str
    last_modified: datetime
    attrs: ObjectAttrs
    tag_count: int = 0
    parts_count: int | None = None
    lock_mode: str | None = None  # Object Lock retention: GOVERNANCE or COMPLIANCE
    lock_until: datetime | None = None  # ... in force until then
    legal_hold: bool = False

    def locked(self, now: datetime) -> bool:
        """Whether Object Lock keeps this version from being deleted at ``now``."""
        if self.legal_hold:
            return True
        return self.lock_mode is not None and self.lock_until is not None and self.lock_until > now


@dataclass(frozen=True, slots=True)
class VersionPage:
    """One page of ListObjectVersions, versions and delete markers in listing order."""

    entries: list[ObjectVersion]
    common_prefixes: list[str]
    is_truncated: bool
    next_key_marker: str | None = None
    next_version_id_marker: str | None = None


@dataclass(frozen=True, slots=True)
class ObjectPage:
    """One page of ListObjectsV2."""

    objects: list[ObjectSummary]
    common_prefixes: list[str]
    is_truncated: bool
    next_token: str | None = None


@dataclass(frozen=True, slots=True)
class KeyPage:
    """One page of ListObjectsV2 read for its keys alone (the completeness audit's walk)."""

    keys: list[str]
    is_truncated: bool
    next_token: str | None = None


class Versioning(StrEnum):
    ENABLED = "Enabled"
    SUSPENDED = "Suspended"
    UNVERSIONED = "Unversioned"


@dataclass(frozen=True, slots=True)
class LifecycleRule:
    """The parts of a lifecycle rule that can destroy history the tool relies on."""

    id: str
    enabled: bool
    prefix: str
    expiration_days: int | None = None
    noncurrent_expiration_days: int | None = None


@dataclass(frozen=True, slots=True)
class CompletedPart:
    number: int
    etag: str


@dataclass(frozen=True, slots=True)
class OpenUpload:
    """A multipart upload begun and neither completed nor aborted (ListMultipartUploads).
    AWS stamps the object it completes with ``initiated``, not with its completion."""

    key: str
    upload_id: str
    initiated: datetime  # aware UTC; UNKNOWN_START when the server gave none


UNKNOWN_START = datetime(1970, 1, 1, tzinfo=UTC)
"""An upload whose listing gives no ``Initiated``: as old as can be (holds err on keeping)."""


_BUCKET_CHARS = re.compile(r"[A-Za-z0-9.\-_]{1,255}")


def folder(prefix: str) -> str:
    """The folder a prefix names: ``""`` (the whole bucket) or the prefix ending in ``/``.

    The one rule for every prefix a user gives (``s3://bucket/app1``, ``--prefix docs``):
    ``app1`` means the folder ``app1/``, so ``app1-old/``, ``app10`` and ``app1.txt`` are never
    part of it. Only a trailing ``/`` is added: the prefix itself is never otherwise changed
    (``a//b`` stays ``a//b/``), like keys (docs/design.md, ordering rule 1).
    """
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def in_folder(key: str, prefix: str) -> bool:
    """Whether ``key`` is content of the folder ``prefix`` (already a :func:`folder`).

    The key equal to the folder itself (``p/``, a "folder marker") is not content: its name
    relative to the folder would be empty. A key ``p`` beside the folder ``p/`` is outside.
    """
    return key.startswith(prefix) and len(key) > len(prefix)


@dataclass(frozen=True, slots=True)
class S3Url:
    """``s3://bucket`` or ``s3://bucket/prefix``; the prefix is always a :func:`folder`.

    Keys under it are joined and cut only here (:meth:`key`, :meth:`relative`), always at the
    folder's ``/``: a relative key is never glued to a prefix that lacks one.
    """

    bucket: str
    prefix: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefix", folder(self.prefix))

    @classmethod
    def parse(cls, text: str) -> S3Url:
        if not text.startswith("s3://"):
            raise UsageError(
                f"not an S3 URL: {text!r}", hint="write it as s3://bucket or s3://bucket/prefix"
            )
        bucket, _, prefix = text[len("s3://") :].partition("/")
        if not bucket:
            raise UsageError(f"no bucket name in {text!r}", hint="write s3://bucket/prefix")
        if not _BUCKET_CHARS.fullmatch(bucket):  # what any S3 client rejects before a request
            raise UsageError(
                f"not a bucket name: {bucket!r} in {text!r}",
                hint="bucket names use letters, digits, '.', '-' and '_' (at most 255)",
            )
        return cls(bucket, prefix)

    def key(self, relative: str) -> str:
        """The absolute key of a key relative to this folder."""
        return self.prefix + relative

    def relative(self, key: str) -> str | None:
        """The key relative to this folder, or None when ``key`` is not its content."""
        return key[len(self.prefix) :] if in_folder(key, self.prefix) else None

    def child(self, relative_folder: str) -> S3Url:
        """The sub-folder ``relative_folder`` (itself read as a folder) of this one."""
        return S3Url(self.bucket, self.prefix + folder(relative_folder))

    def overlaps(self, other: S3Url) -> bool:
        """Same bucket, and one folder is inside the other (or they are the same)."""
        return self.bucket == other.bucket and (
            self.prefix.startswith(other.prefix) or other.prefix.startswith(self.prefix)
        )

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
