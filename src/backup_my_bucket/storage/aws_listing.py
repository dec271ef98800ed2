"""How AWS S3 pages its listings, as pure functions the in-memory store follows.

Keys in code-point order (S3's UTF-8 byte order), versions newest first, KeyMarker and
VersionIdMarker exclusive, CommonPrefixes counted in MaxKeys, ListObjectsV2 resuming after the
last key or prefix it returned. ``history(key)`` gives a key's versions as ListObjectVersions
shows them, ``current(key)`` its current object as ListObjectsV2 does (None when deleted).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence

from ..errors import UsageError
from ..model import ObjectPage, ObjectSummary, ObjectVersion, VersionPage
from .protocol import MAX_PAGE

History = Callable[[str], Sequence[ObjectVersion]]
Current = Callable[[str], ObjectSummary | None]


def _rollup(key: str, prefix: str, delimiter: str) -> str | None:
    if not delimiter:
        return None
    cut = key.find(delimiter, len(prefix))
    return key[: cut + len(delimiter)] if cut >= 0 else None


def _marker(last: tuple[str, str | None] | None) -> tuple[str | None, str | None]:
    return (last[0], last[1]) if last else (None, None)


def list_versions(
    keys: Sequence[str],
    history: History,
    *,
    prefix: str = "",
    delimiter: str = "",
    key_marker: str = "",
    version_id_marker: str = "",
    max_keys: int = MAX_PAGE,
) -> VersionPage:
    """One ListObjectVersions page over ``keys`` (sorted)."""
    max_keys = min(max_keys, MAX_PAGE)
    entries: list[ObjectVersion] = []
    prefixes: list[str] = []
    last: tuple[str, str | None] | None = None  # (key or common prefix, version id)

    def full() -> bool:
        return len(entries) + len(prefixes) >= max_keys

    start = bisect.bisect_left(keys, max(key_marker, prefix))
    for i in range(start, len(keys)):
        key = keys[i]
        if not key.startswith(prefix):
            if key > prefix:
                break
            continue
        listed = history(key)
        if key == key_marker:
            if not version_id_marker:
                continue  # KeyMarker alone: start after the key
            ids = [v.version_id for v in listed]
            if version_id_marker not in ids:
                raise UsageError(f"invalid version id marker {version_id_marker!r}")
            listed = listed[ids.index(version_id_marker) + 1 :]
        cp = _rollup(key, prefix, delimiter)
        if cp is not None:
            if cp <= key_marker or (prefixes and prefixes[-1] == cp):
                continue
            if full():
                return VersionPage(entries, prefixes, True, *_marker(last))
            prefixes.append(cp)
            last = (cp, None)
            continue
        for v in listed:
            if full():
                return VersionPage(entries, prefixes, True, *_marker(last))
            entries.append(v)
            last = (key, v.version_id)
    return VersionPage(entries, prefixes, False)


def list_objects(
    keys: Sequence[str],
    current: Current,
    *,
    prefix: str = "",
    delimiter: str = "",
    start_after: str = "",
    continuation_token: str | None = None,
    max_keys: int = MAX_PAGE,
) -> ObjectPage:
    """One ListObjectsV2 page over ``keys`` (sorted): current objects only."""
    max_keys = min(max_keys, MAX_PAGE)
    after = continuation_token if continuation_token is not None else start_after
    objects: list[ObjectSummary] = []
    prefixes: list[str] = []
    last = after  # the continuation token is the last key or common prefix returned
    start = bisect.bisect_right(keys, after)
    for i in range(max(start, bisect.bisect_left(keys, prefix)), len(keys)):
        key = keys[i]
        if not key.startswith(prefix):
            if key > prefix:
                break
            continue
        summary = current(key)
        if summary is None:
            continue
        cp = _rollup(key, prefix, delimiter)
        if cp is not None and (cp <= after or (prefixes and prefixes[-1] == cp)):
            continue
        if len(objects) + len(prefixes) >= max_keys:
            return ObjectPage(objects, prefixes, True, last)
        if cp is not None:
            prefixes.append(cp)
            last = cp
            continue
        last = key
        objects.append(summary)
    return ObjectPage(objects, prefixes, False)
