"""What :class:`~.memory.MemoryStore` keeps: buckets, their versions and open uploads, and
the ETags and key checks S3 applies to them."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ..errors import UsageError
from ..model import LifecycleRule, ObjectAttrs, Versioning

MAX_KEY_BYTES = 1024
SEAWEED_CHUNK = 4 * 1024 * 1024


@dataclass(slots=True)
class Version:
    version_id: str
    last_modified: datetime
    data: bytes = b""
    etag: str | None = None
    attrs: ObjectAttrs = field(default_factory=ObjectAttrs)
    tags: dict[str, str] = field(default_factory=dict)
    parts_count: int | None = None
    part_sizes: tuple[int, ...] = ()  # the upload's part lengths, for multipart objects
    lock_mode: str | None = None  # Object Lock retention (GOVERNANCE or COMPLIANCE) ...
    lock_until: datetime | None = None  # ... until then
    legal_hold: bool = False
    listed_chunks: str | None = None  # its chunk ETag, computed once (``chunk_etags``)

    @property
    def is_delete_marker(self) -> bool:
        return self.etag is None


@dataclass(slots=True)
class Upload:
    key: str
    attrs: ObjectAttrs
    tags: dict[str, str]
    initiated: datetime
    parts: dict[int, bytes] = field(default_factory=dict)


@dataclass(slots=True)
class Bucket:
    versioning: Versioning = Versioning.UNVERSIONED
    keys: list[str] = field(default_factory=list)  # sorted
    versions: dict[str, list[Version]] = field(default_factory=dict)  # newest first
    lifecycle: list[LifecycleRule] = field(default_factory=list)
    uploads: dict[str, Upload] = field(default_factory=dict)
    generation: int = 0  # bumped by every write: the SeaweedFS model's cache key


def md5_hex(data: bytes | bytearray) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def chunk_etag(data: bytes, part_sizes: Sequence[int] = ()) -> str:
    """The ETag SeaweedFS lists for a ``null`` version: its 4 MiB chunks (within each part)."""
    digests: list[bytes] = []
    offset = 0
    for size in part_sizes or (len(data),):
        for start in range(offset, offset + size, SEAWEED_CHUNK):
            end = min(start + SEAWEED_CHUNK, offset + size)
            digests.append(hashlib.md5(data[start:end], usedforsecurity=False).digest())
        offset += size
    if len(digests) <= 1:
        return md5_hex(data)
    return f"{hashlib.md5(b''.join(digests), usedforsecurity=False).hexdigest()}-{len(digests)}"


def check_key(key: str) -> None:
    if not key:
        raise UsageError("an object key cannot be empty")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise UsageError(f"key is longer than {MAX_KEY_BYTES} bytes: {key[:40]!r}...")
