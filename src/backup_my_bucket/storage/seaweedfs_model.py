"""How SeaweedFS 4.48 pages its listings, as a pure model the in-memory store can follow.

SeaweedFS keeps objects in a *filer* tree: ``a/b/c`` is the file ``c`` in directory ``a/b``,
and a versioned key ``k`` is the directory ``k.versions``. Its listings walk that tree
depth-first, each directory's entries in byte order of their *names*, which is not S3's key
order: the directory ``x`` (keys ``x/…``) comes before ``x-1`` and ``x.y`` although
``'-'`` and ``'.'`` sort below ``'/'``, and ``x.versions`` comes after ``x-1.versions``
although the key ``x`` sorts first (weed/s3api/s3api_object_versioning.go, read at 4.44;
4.48 measured).

ListObjectVersions (:func:`list_versions`):
- starts each directory level on the KeyMarker's path at the marker's component
  (inclusive) and drops keys below the marker (the marker key's versions up to the
  VersionIdMarker);
- collects the first MaxKeys+1 items (versions, and CommonPrefixes with a delimiter) in
  walk order, sorts *those* by key, returns MaxKeys of them and sets NextKeyMarker to the last
  one returned. Keys the walk had not reached but that sort below that marker are never
  listed by the next page: the paging loss;
- matches the Prefix against entry paths, so ``Prefix=k.versions`` (or ``k.v``) lists the
  key ``k``;
- pushes the Prefix down into each directory scan, which stops at the first name that does
  not match: a KeyMarker below the Prefix with another name between them answers an empty,
  untruncated page.

ListObjectsV2 (:func:`list_objects`) is complete (it resumes from a tree position) but in walk
order, each page sorted in a versioned bucket; StartAfter is read as a tree position.

The walk order of an entry is the tuple of its path's names (:func:`walk_key`); the whole model
is a sorted list of those tuples. Simplification: a key with any non-null version is one
``.versions`` entry holding all its versions.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from ..model import ObjectPage, ObjectSummary, ObjectVersion, VersionPage

MAX_KEYS = 1000
SERVER = "SeaweedFS 4.48 (the in-memory model)"
VERSIONS_SUFFIX = ".versions"

WalkKey = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Entry:
    """One leaf of the filer tree: a file (null version only) or a ``.versions`` directory."""

    walk: WalkKey
    key: str
    versioned: bool
    versions: tuple[ObjectVersion, ...]  # newest first
    current: ObjectSummary | None  # as ListObjectsV2 shows it (None: deleted)

    @property
    def path(self) -> str:
        """The entry's path as the prefix filter sees it (``k.versions`` for a versioned key)."""
        return self.key + VERSIONS_SUFFIX if self.versioned else self.key


def walk_key(key: str, versioned: bool) -> WalkKey:
    parts = key.split("/")
    if versioned:
        parts[-1] += VERSIONS_SUFFIX
    return tuple(parts)


def build(
    histories: Sequence[tuple[str, tuple[ObjectVersion, ...], ObjectSummary | None]],
) -> list[Entry]:
    """The filer's leaves in walk order, from each key's history (newest first) and current
    object."""
    entries = []
    for key, versions, current in histories:
        if not versions:
            continue
        versioned = any(v.version_id != "null" for v in versions)
        entries.append(Entry(walk_key(key, versioned), key, versioned, versions, current))
    entries.sort(key=lambda e: e.walk)
    return entries


def _start(marker: str) -> WalkKey:
    """Where a walk resumes for a marker: each level at the marker's component, inclusive."""
    return tuple(marker.split("/")) if marker else ()


def _in_scope(walk: WalkKey, prefix: str) -> int:
    """1 if the walk may go on past this entry, 0 if the pushed-down prefix ends the walk here.

    Each directory scan on the prefix's path lists only names starting with the prefix's
    component at that level and stops at the first name that does not.
    """
    parts = prefix.split("/")
    for level, wanted in enumerate(parts):
        if level >= len(walk):
            return 0
        last = level == len(parts) - 1
        if last:
            return 1 if walk[level].startswith(wanted) else 0
        if walk[level] != wanted:
            return 0
    return 1


def list_versions(
    entries: Sequence[Entry],
    *,
    prefix: str = "",
    delimiter: str = "",
    key_marker: str = "",
    version_id_marker: str = "",
    max_keys: int = MAX_KEYS,
) -> VersionPage:
    """One ListObjectVersions page as SeaweedFS 4.48 computes it."""
    max_keys = min(max_keys, MAX_KEYS)
    walks = [e.walk for e in entries]
    start = _start(key_marker)
    i = bisect.bisect_left(walks, start) if start else 0
    if not key_marker and prefix:
        i = bisect.bisect_left(walks, _start(prefix))  # the scan seeks to the prefix
    collected: list[tuple[str, bool, ObjectVersion | None]] = []  # (key, is_prefix, version)
    prefixes: set[str] = set()
    depth = prefix.count("/")

    def full() -> bool:
        return len(collected) >= max_keys + 1

    while i < len(entries) and not full():
        entry = entries[i]
        i += 1
        if prefix and not _in_scope(entry.walk, prefix):
            break  # the filer scan stopped at a name outside the prefix
        if delimiter == "/" and len(entry.walk) > depth + 1:
            common = "/".join(entry.walk[: depth + 1]) + "/"
            if common in prefixes or (key_marker and common <= key_marker):
                continue
            prefixes.add(common)
            collected.append((common, True, None))
            continue
        if key_marker and entry.key < key_marker:
            continue
        versions = entry.versions
        if entry.key == key_marker:
            if not version_id_marker:
                continue
            ids = [v.version_id for v in versions]
            found = version_id_marker in ids
            versions = versions[ids.index(version_id_marker) + 1 :] if found else ()
        for version in versions:
            if full():
                break
            collected.append((entry.key, False, version))
    # sort the collected items by key (versions keep their order, before a same-named prefix)
    collected.sort(key=lambda item: (item[0], item[1]))
    truncated = len(collected) > max_keys
    page = collected[:max_keys]
    next_key = next_version = None
    if truncated and page:
        last_key, is_prefix, last = page[-1]
        next_key = last_key
        next_version = None if is_prefix or last is None else last.version_id
    return VersionPage(
        entries=[v for _, is_prefix, v in page if v is not None and not is_prefix],
        common_prefixes=[k for k, is_prefix, _ in page if is_prefix],
        is_truncated=truncated,
        next_key_marker=next_key,
        next_version_id_marker=next_version,
    )


def list_objects(
    entries: Sequence[Entry],
    *,
    prefix: str = "",
    start_after: str = "",
    continuation_token: str | None = None,
    max_keys: int = MAX_KEYS,
) -> ObjectPage:
    """One ListObjectsV2 page as SeaweedFS 4.48 computes it: complete, in walk order.

    The continuation token is the walk position of the last key returned; StartAfter is
    read as a walk position too (keys after it in walk order, whatever their key order).
    """
    max_keys = min(max_keys, MAX_KEYS)
    walks = [e.walk for e in entries]
    if continuation_token is not None:
        i = bisect.bisect_right(walks, tuple(continuation_token.split("\x00")))
    elif start_after:
        i = bisect.bisect_left(walks, _start(start_after))
    else:
        i = 0
    objects: list[tuple[WalkKey, ObjectSummary]] = []
    versioned_bucket = any(e.versioned for e in entries)
    truncated = False
    while i < len(entries):
        entry = entries[i]
        i += 1
        if not entry.key.startswith(prefix) or entry.key == start_after:
            continue
        summary = entry.current
        if summary is None:
            continue
        if len(objects) == max_keys:
            truncated = True
            break
        objects.append((entry.walk, summary))
    token = "\x00".join(objects[-1][0]) if truncated and objects else None
    listed = [o for _, o in objects]
    if versioned_bucket:
        listed.sort(key=lambda o: o.key)  # each page is sorted, pages follow the walk
    return ObjectPage(listed, [], truncated, token)
