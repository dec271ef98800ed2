"""Small JSON documents in a bucket, read with their ETag and replaced only if unchanged.

Catalog locks, the backup location's record and its restorable span are such documents.
Where the server honours conditional writes (``If-None-Match: *`` to create, ``If-Match:
<etag>`` to replace; AWS S3 and SeaweedFS do), a replace is a compare-and-swap: a concurrent
writer gets 412 and reads again. Whether it does is *probed* once per store and bucket, never
assumed: a server that ignores the headers would otherwise turn every swap into a blind
overwrite. Without them, writes fall back to plain PUTs (and the lock to a read-back).
"""

from __future__ import annotations

import contextlib
import json
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ObjectNotFound, PreconditionFailed, StorageError
from ..model import NULL_VERSION
from ..storage.protocol import ObjectStore

log = logging.getLogger(__name__)
_probed: weakref.WeakKeyDictionary[Any, dict[str, bool]] = weakref.WeakKeyDictionary()
SWAP_ATTEMPTS = 8
PROBE = b"backup-my-bucket probes conditional writes with this object\n"


async def conditional_writes(store: ObjectStore, bucket: str, probe_key: str) -> bool:
    """Whether ``store`` honours If-None-Match and If-Match on PUT in ``bucket``; probed once
    per store and bucket with a small object at ``probe_key`` that stays there: a server
    that honours the headers refuses every write of a later probe (nothing is written, no
    delete permission is needed); one that ignores them gets two harmless versions."""
    known = _probed.get(store, {}).get(bucket)
    if known is not None:
        return known
    supported = False
    try:
        with contextlib.suppress(PreconditionFailed):  # it exists already: fine
            await store.put(bucket, probe_key, PROBE, if_none_match=True)
        try:  # the key exists now: both of these must be refused
            await store.put(bucket, probe_key, PROBE, if_none_match=True)
        except PreconditionFailed:
            try:
                await store.put(bucket, probe_key, PROBE, if_match='"0"')
            except PreconditionFailed:
                supported = True
    except StorageError as exc:  # e.g. 501 NotImplemented for the header
        log.debug("conditional writes refused by s3://%s: %s", bucket, exc)
    with contextlib.suppress(TypeError):  # a store that cannot be weakly referenced
        _probed.setdefault(store, {})[bucket] = supported
    if not supported:
        log.info("s3://%s does not honour conditional writes: locks fall back to read-back", bucket)
    return supported


@dataclass(frozen=True, slots=True)
class Doc:
    """A document as read: its bytes (None when absent) and the ETag to swap against."""

    data: bytes | None
    etag: str | None = None


async def read_doc(store: ObjectStore, bucket: str, key: str) -> Doc:
    """The document's current version and its ETag, then its bytes (of that version).

    A one-entry version listing rather than HEAD: the document is often absent (a first
    run), and a listing says so with a 200 where HEAD answers 404. ``key`` sorts first among
    the keys it prefixes, so the first entry is its newest version when it exists."""
    page = await store.list_versions_page(bucket, prefix=key, max_keys=1)
    head = page.entries[0] if page.entries else None
    if head is None or head.key != key or head.is_delete_marker:
        return Doc(None)
    version = None if head.version_id == NULL_VERSION else head.version_id
    try:
        data = b"".join([chunk async for chunk in store.get(bucket, key, version)])
    except ObjectNotFound:  # replaced or removed since the listing: read it again later
        return Doc(None)
    return Doc(data, head.etag)


async def swap_doc(
    store: ObjectStore, bucket: str, key: str, data: bytes, expect: Doc, conditional: bool
) -> Doc | None:
    """Write ``data`` if the document is still ``expect``: the new Doc, or None when it was
    changed meanwhile. Without ``conditional`` the write is a plain PUT."""
    if not conditional:
        await store.put(bucket, key, data)
        return Doc(data)
    try:
        if expect.data is None:
            version = await store.put(bucket, key, data, if_none_match=True)
        else:
            version = await store.put(bucket, key, data, if_match=expect.etag or '""')
    except (PreconditionFailed, ObjectNotFound):  # AWS may answer 404 for If-Match on no key
        return None
    info = await store.head(bucket, key, None if version == NULL_VERSION else version)
    return Doc(data, info.etag)


Change = Callable[[dict[str, Any] | None], dict[str, Any] | None]


async def update_json(
    store: ObjectStore, bucket: str, key: str, change: Change, *, probe_key: str
) -> dict[str, Any] | None:
    """Read-modify-write of a JSON document, repeated while another writer gets in between.

    ``change`` gets the current content (None when absent) and returns the new one, or None
    to leave the document as it is. Returns what the document holds afterwards."""
    for _ in range(SWAP_ATTEMPTS):
        doc = await read_doc(store, bucket, key)
        current = parse_object(doc.data)
        wanted = change(current)
        if wanted is None:
            return current
        conditional = await conditional_writes(store, bucket, probe_key)  # probed once
        data = json.dumps(wanted, indent=2, ensure_ascii=False).encode()
        if await swap_doc(store, bucket, key, data, doc, conditional) is not None:
            return wanted
    raise StorageError(
        f"s3://{bucket}/{key} kept changing while it was updated ({SWAP_ATTEMPTS} attempts)",
        hint="another process is writing it; rerun",
    )


def parse_object(data: bytes | None) -> dict[str, Any] | None:
    """A document's JSON object; None when absent, unreadable or not an object."""
    if data is None:
        return None
    try:
        parsed = json.loads(data)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None
