"""Verify a snapshot: every version it needs still exists in the backup, unchanged.

Each version is checked with HEAD (exists, same size, same ETag). With ``read_share`` > 0 a
random sample is also read in full and its MD5 compared with the recorded ETag, where the ETag
is a plain MD5 (single-part uploads and copies); multipart ETags are checked part by part only
by size, so they count as ``unverifiable`` for the read. The sample rotates across runs: a
version is picked when a hash of (its key, its id, the run's salt) falls under the share.

A recorded ETag can be untrusted (:func:`.confirm.untrusted_etag`: SeaweedFS records a
``null`` version over 4 MiB with its chunk ETag, HEAD shows the MD5). When HEAD disagrees with
one, the version listing decides: it still shows the recorded ETag for unchanged bytes (the
chunk ETag is a digest of them too) and another for other bytes. HEAD's ETag is then the one
a read is checked against.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..catalog.catalog import Catalog
from ..catalog.index import SnapshotMeta
from ..catalog.location import reserved_prefix
from ..errors import NotFoundError, ObjectNotFound
from ..model import ObjectVersion, S3Url
from ..storage.protocol import ObjectStore
from .confirm import listed_etag, untrusted_etag
from .diff import aiter_sync
from .executor import IN_PROCESS, Executor, Job
from .progress import NullProgress, Progress


@dataclass(frozen=True, slots=True)
class Problem:
    key: str
    version_id: str
    problem: str  # "missing" | "size" | "etag" | "content" | "error"
    detail: str = ""

    def to_json(self) -> dict[str, str]:
        return {
            "key": self.key,
            "version_id": self.version_id,
            "problem": self.problem,
            "detail": self.detail,
        }


@dataclass
class VerifyResult:
    checked: int = 0
    read: int = 0
    unverifiable: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def missing(self) -> int:
        return sum(1 for p in self.problems if p.problem == "missing")

    @property
    def mismatched(self) -> int:
        return len(self.problems) - self.missing

    def to_json(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "missing": self.missing,
            "mismatched": self.mismatched,
            "read": self.read,
            "unverifiable": self.unverifiable,
            "problems": [p.to_json() for p in self.problems[:1000]],
        }


def sampled(version: ObjectVersion, share: float, salt: str) -> bool:
    if share <= 0:
        return False
    digest = hashlib.blake2b(f"{salt}\0{version.key}\0{version.version_id}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big") / 2**64 < share


async def _check(
    store: ObjectStore, backup: S3Url, v: ObjectVersion, share: float, salt: str
) -> tuple[Problem | None, bool, bool]:
    """One version: (problem, was read, read could not be checked)."""
    key = backup.key(v.key)
    try:
        info = await store.head(backup.bucket, key, v.version_id)
    except (ObjectNotFound, NotFoundError):
        return Problem(v.key, v.version_id, "missing"), False, False
    if info.size != v.size:
        return Problem(v.key, v.version_id, "size", f"{info.size} != {v.size}"), False, False
    etag = v.etag
    if etag is not None and info.etag != etag:
        confirmed = untrusted_etag(v) and etag == await listed_etag(
            store, backup.bucket, key, v.version_id
        )
        if not confirmed:
            return Problem(v.key, v.version_id, "etag", f"{info.etag} != {etag}"), False, False
        etag = info.etag
    if not sampled(v, share, salt):
        return None, False, False
    if etag is None or "-" in etag:
        return None, True, True
    md5 = hashlib.md5(usedforsecurity=False)
    async for chunk in store.get(backup.bucket, key, v.version_id):
        md5.update(chunk)
    if md5.hexdigest() != etag:
        return Problem(v.key, v.version_id, "content", "bytes do not match the ETag"), True, False
    return None, True, False


@dataclass(frozen=True, slots=True)
class CheckVersion:
    """The HEAD unit (:mod:`.executor`): one version checked in ``backup`` (``stores[0]``)."""

    backup: S3Url
    read_share: float
    salt: str

    @property
    def destination(self) -> S3Url:
        return self.backup

    async def __call__(
        self, stores: Sequence[ObjectStore], v: ObjectVersion
    ) -> tuple[Problem | None, bool, bool]:
        return await _check(stores[0], self.backup, v, self.read_share, self.salt)


async def verify_versions(
    store: ObjectStore,
    backup: S3Url,
    rows: AsyncIterable[ObjectVersion],
    *,
    read_share: float = 0.0,
    salt: str = "",
    workers: int = 16,
    progress: Progress | None = None,
    total: int | None = None,
    executor: Executor = IN_PROCESS,
) -> VerifyResult:
    """Check every row (``total`` of them, when known) against the backup bucket; collect
    what is wrong. Rows in the location's reserved folder (never part of a snapshot) are not
    backed-up data: skipped."""
    progress = progress or NullProgress()
    progress.start("verify: checking versions", total, unit="versions")
    result = VerifyResult()
    reserved = reserved_prefix(backup)

    async def data_rows() -> AsyncIterator[ObjectVersion]:
        async for v in rows:
            if not (backup.prefix + v.key).startswith(reserved):
                yield v

    work = CheckVersion(backup, read_share, salt)
    async for outcome in executor.map(data_rows(), Job(work, (store,), workers)):
        result.checked += 1
        progress.advance(1, outcome.item.size)
        if outcome.error is not None:
            v = outcome.item
            result.problems.append(Problem(v.key, v.version_id, "error", outcome.error.message))
            continue
        assert outcome.result is not None
        problem, was_read, unverifiable = outcome.result
        result.read += was_read
        result.unverifiable += unverifiable
        if problem is not None:
            result.problems.append(problem)
    progress.finish()
    result.problems.sort(key=lambda p: p.key)
    return result


async def verify_snapshot(
    store: ObjectStore,
    catalog: Catalog,
    ref: str,
    *,
    read_share: float = 0.0,
    salt: str = "",
    workers: int = 16,
    progress: Progress | None = None,
    executor: Executor = IN_PROCESS,
) -> tuple[SnapshotMeta, VerifyResult]:
    """The whole `verify` command: snapshot ``ref`` (an id, a prefix, ``latest``) checked
    against the backup bucket it records."""
    meta = await catalog.resolve(ref)
    reader = await catalog.open_index(meta)
    where = S3Url.parse(meta.backup)
    await store.check_bucket(where.bucket)  # a bucket that is gone: exit 10, not N "missing"
    result = await verify_versions(
        store,
        where,
        aiter_sync(reader.rows()),
        read_share=read_share,
        salt=salt,
        workers=workers,
        progress=progress,
        total=meta.keys,
        executor=executor,
    )
    return meta, result
