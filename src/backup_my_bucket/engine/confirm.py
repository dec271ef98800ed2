"""What a listing cannot tell, settled with HEAD (and tag reads) on the keys that need it.

Sync and restore both compare a *live* object (sync: the source's current object; restore:
the target's) with a *backup version* (sync: the backup's current version; restore: the
version of the restoration point). Most keys are decided from the two listings alone; three
things a listing does not show truthfully are settled here, each with requests for the keys
that need them only (docs/design.md, "What listings cannot tell"):

1. **Untrusted ETags.** SeaweedFS's ListObjectVersions lists a ``null`` version (unversioned
   bucket, written before versioning was enabled, or while Suspended) larger than one 4 MiB
   chunk with the ETag of its internal chunks, ``md5(chunk MD5s)-N``, where HEAD and
   ListObjectsV2 show the MD5 or the real multipart ETag. A listed entry whose version id is
   ``null`` and whose ETag has a ``-`` is therefore *untrusted*: when the listings' ETags
   differ (sizes equal), HEAD gives that side's real ETag before anything is called changed.
   Two equal listed ETags need nothing: a chunk ETag is a digest of the bytes as well.
2. **Headers, user metadata and storage class** are not in a listing, and changing them alone
   (CopyObject onto itself with REPLACE) keeps size and ETag but moves LastModified. When the
   live object is not older than the backup version (LastModified ≥), a HEAD of both compares
   them (and the tag counts). A backup copy is newer than its source and a target object
   untouched since its backup copy is older than it, so an ordinary rerun HEADs none of them.
3. **Tags** change without moving LastModified, so nothing cheap tells. With
   ``compare_tags``, both tag sets are read for every key whose content is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum

from ..model import NULL_VERSION, ObjectAttrs, ObjectInfo, ObjectVersion, S3Url
from ..storage.iterate import iter_versions
from ..storage.protocol import ObjectStore


def untrusted_etag(entry: ObjectVersion) -> bool:
    """Whether a listing's ETag for this entry may be a server's internal one (see above)."""
    return entry.version_id == NULL_VERSION and "-" in (entry.etag or "")


async def listed_etag(store: ObjectStore, bucket: str, key: str, version_id: str) -> str | None:
    """The ETag a version listing shows now for one version (None: not listed): what an
    untrusted ETag recorded from a listing must be compared with. One request, unless the key
    has more than 1,000 versions."""
    async for entry in iter_versions(store, bucket, prefix=key, end_before=key + "\x00"):
        if entry.version_id == version_id:
            return None if entry.is_delete_marker else entry.etag
    return None


def _normal(attrs: ObjectAttrs) -> ObjectAttrs:
    return replace(
        attrs,
        metadata={k.lower(): v for k, v in attrs.metadata.items()},
        storage_class=attrs.storage_class or "STANDARD",
    )


def same_attributes(a: ObjectInfo, b: ObjectInfo) -> bool:
    """Same content headers, user metadata (names in any case), storage class, tag count."""
    return _normal(a.attrs) == _normal(b.attrs) and a.tag_count == b.tag_count


@dataclass(frozen=True, slots=True)
class Side:
    """A store and a bucket/prefix: relative keys are read there."""

    store: ObjectStore
    url: S3Url

    async def head(self, key: str, version_id: str | None) -> ObjectInfo:
        return await self.store.head(self.url.bucket, self.url.key(key), version_id)

    async def tags(self, key: str, version_id: str | None) -> dict[str, str]:
        return await self.store.get_tags(self.url.bucket, self.url.key(key), version_id)


class Verdict(StrEnum):
    SAME = "same"
    CONTENT = "content differs"
    ATTRIBUTES = "headers, metadata or storage class differ"
    TAGS = "tags differ"


@dataclass(frozen=True, slots=True)
class Settled:
    """The verdict on one pair, with the entries as settled (real ETags where HEAD gave one)."""

    verdict: Verdict
    live: ObjectVersion
    backup: ObjectVersion


SameContent = Callable[[ObjectVersion, ObjectVersion], bool]
"""A plan's content rule on (live, backup), from what the entries say."""


class Checker:
    """Settles pairs of (live object, backup version); counts the requests it made.

    ``attributes``: compare headers and metadata when the live object is not older (rollback
    restores and sync; not the modes that never overwrite). ``compare_tags``: read tags too.
    The live side is read at its current version; the backup side at the listed version.
    """

    def __init__(
        self, live: Side, backup: Side, *, attributes: bool = True, compare_tags: bool = False
    ) -> None:
        self.live = live
        self.backup = backup
        self.attributes = attributes
        self.compare_tags = compare_tags
        self.requests = 0

    def _attribute_candidate(self, live: ObjectVersion, backup: ObjectVersion) -> bool:
        return self.attributes and live.last_modified >= backup.last_modified

    def needed(self, live: ObjectVersion, backup: ObjectVersion, same: bool) -> bool:
        """Whether :meth:`settle` would make a request for this pair (no I/O)."""
        if not same:
            return live.size == backup.size and (untrusted_etag(live) or untrusted_etag(backup))
        return self.compare_tags or self._attribute_candidate(live, backup)

    async def settle(
        self, live: ObjectVersion, backup: ObjectVersion, same_content: SameContent
    ) -> Settled:
        heads: dict[str, ObjectInfo] = {}

        async def head(side: str) -> ObjectInfo:
            if side not in heads:
                self.requests += 1
                if side == "live":
                    heads[side] = await self.live.head(live.key, None)
                else:
                    heads[side] = await self.backup.head(backup.key, backup.version_id)
            return heads[side]

        if not same_content(live, backup):
            if live.size != backup.size or not (untrusted_etag(live) or untrusted_etag(backup)):
                return Settled(Verdict.CONTENT, live, backup)
            if untrusted_etag(live):
                live = replace(live, etag=(await head("live")).etag)
            if untrusted_etag(backup):
                backup = replace(backup, etag=(await head("backup")).etag)
            if not same_content(live, backup):
                return Settled(Verdict.CONTENT, live, backup)
        if self._attribute_candidate(live, backup) and not same_attributes(
            await head("live"), await head("backup")
        ):
            return Settled(Verdict.ATTRIBUTES, live, backup)
        if self.compare_tags:
            self.requests += 2
            live_tags = await self.live.tags(live.key, None)
            if live_tags != await self.backup.tags(backup.key, backup.version_id):
                return Settled(Verdict.TAGS, live, backup)
        return Settled(Verdict.SAME, live, backup)
