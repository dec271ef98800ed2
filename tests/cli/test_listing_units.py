"""A snapshot's version listing with its ranges run as units on a Dask cluster (2 worker
processes, storage/rangejob.py) against SeaweedFS: the same index rows, JSON summary and
audit verdict as in-process, with forced small pages on the layouts that break naive paging
(TREE paging), a job run twice, and a worker killed in the middle of the listing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from backup_my_bucket.catalog import LocalCatalog
from backup_my_bucket.catalog.location import RESERVED
from backup_my_bucket.clock import SYSTEM_CLOCK
from backup_my_bucket.engine.cluster import DaskExecutor, Ranges
from backup_my_bucket.engine.progress import NullProgress
from backup_my_bucket.engine.snapshot import take_snapshot
from backup_my_bucket.errors import IncompleteListing
from backup_my_bucket.model import S3Url
from backup_my_bucket.storage.iterate import iter_versions
from backup_my_bucket.storage.listing import ListingOptions
from backup_my_bucket.storage.paging import Paging
from backup_my_bucket.storage.rangejob import RangeJob, RangeResult, RangeRunner
from backup_my_bucket.storage.s3 import S3Store
from backup_my_bucket.units import format_time

from ..conftest import unique_bucket
from .conftest import bmb, dry_run_lines
from .test_executor_cli import _normal

pytestmark = pytest.mark.s3

MiB = 1024 * 1024
ODD = [
    "caf\u00e9/\u65e5\u672c/\U0001f600.txt",
    "sp ace/and  two",
    "a//double",
    "new\nline",
    "k" * 1024,
]


async def _hard_layout(store: S3Store, bucket: str) -> int:
    """Folders beside files sharing their prefix (``img0/…``, ``img0-…``, ``img0.idx``, a
    key ``img1`` beside ``img1/``), keys with several versions and delete markers, a 6 MiB
    object and odd keys, in a versioned bucket; the number of keys live now."""
    await store.create_bucket(bucket)
    await store.set_versioning(bucket, True)
    keys = [f"img{d}/{i:02d}.jpg" for d in range(3) for i in range(6)]
    keys += [f"img{d}-{i:02d}.jpg" for d in range(3) for i in range(4)]
    keys += [f"img{d}.idx" for d in range(3)] + ["img1", "img2/sub/x", *ODD]
    await asyncio.gather(*(store.put(bucket, k, k.encode()) for k in keys))
    await store.put(bucket, "big.bin", bytes(6 * MiB))
    for key in ("img0/01.jpg", "img0-01.jpg", "img1", "img1.idx"):
        await store.put(bucket, key, b"again")  # a second version
    for key in ("img0/02.jpg", "img1-00.jpg", "img2.idx", "new\nline"):
        await store.delete(bucket, key)  # a delete marker on top
    await store.delete(bucket, "img1.idx")
    await store.put(bucket, "img1.idx", b"back")  # a version above a delete marker
    return len(keys) + 1 - 4


def _ranges_run() -> int:
    from backup_my_bucket.engine import cluster_worker

    return cluster_worker.ranges_run


async def _jobs_per_worker(executor: DaskExecutor) -> list[int]:
    assert executor._client is not None
    return sorted((await executor._client.run(_ranges_run)).values())


async def _cli_snapshot(
    capsys: pytest.CaptureFixture[str], bucket: str, *executor: str
) -> tuple[Any, Any, str]:
    """``bmb snapshot`` at pages of 2: its JSON summary, its index rows (``bmb ls``), its id."""
    backup = f"s3://{bucket}"
    code, out, err = await bmb(
        capsys, *executor, "--json", "--list-page-size", "2", "snapshot", "--backup", backup
    )
    assert code == 0, err
    summary = _normal(out, {bucket: "<bak>"})
    snapshot = json.loads(out)["id"]
    code, out, err = await bmb(capsys, "--json", "ls", snapshot, "--backup", backup)
    assert code == 0, err
    return summary, [json.loads(line) for line in out.splitlines()], snapshot


async def _cli_diff_live(
    capsys: pytest.CaptureFixture[str], bucket: str, snapshot: str, *executor: str
) -> Any:
    """``bmb diff SNAPSHOT live`` at pages of 2: the changes."""
    code, out, err = await bmb(
        capsys, *executor, "--json", "--list-page-size", "2", "diff", snapshot, "live",
        "--backup", f"s3://{bucket}",
    )  # fmt: skip
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines()]


async def test_a_snapshot_lists_its_ranges_on_the_cluster(
    cli_env: None, cluster: str, s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same summary and index rows, pages of 2 forcing TREE paging to split, descend and
    resume many times; the same for restore's point of --at and ``diff … live``. The workers
    listed (no range ran here)."""
    bucket = unique_bucket("lubak")
    live = await _hard_layout(s3_store, bucket)
    await asyncio.sleep(1.05)
    executor = DaskExecutor("tcp://" + cluster.removeprefix("dask://"))
    await executor.open()
    try:
        before = sum(await _jobs_per_worker(executor))
        local = await _cli_snapshot(capsys, bucket)
        remote = await _cli_snapshot(capsys, bucket, "--executor", cluster)
        jobs = sum(await _jobs_per_worker(executor)) - before
        at = format_time(SYSTEM_CLOCK.now().replace(microsecond=0) - timedelta(seconds=1))
        planned = [
            await _cli_restore_at(capsys, s3_store, bucket, at, *how)
            for how in ((), ("--executor", cluster))
        ]
        restore_jobs = sum(await _jobs_per_worker(executor)) - before - jobs
        await s3_store.put(bucket, "img0-01.jpg", b"changed")
        await s3_store.delete(bucket, "img1")
        await s3_store.put(bucket, "img1/new", b"new")
        changes = [
            await _cli_diff_live(capsys, bucket, local[2], *how)
            for how in ((), ("--executor", cluster))
        ]
        diff_jobs = sum(await _jobs_per_worker(executor)) - before - jobs - restore_jobs
    finally:
        await executor.aclose()
    assert remote[:2] == local[:2]
    assert planned[1] == planned[0]
    assert changes[1] == changes[0]
    assert [(c["change"], c["key"]) for c in changes[0]] == [
        ("changed", "img0-01.jpg"), ("removed", "img1"), ("added", "img1/new"),
    ]  # fmt: skip
    assert diff_jobs > 10
    copies = [line for line in planned[0] if line.get("action") == "copy"]
    assert len(copies) == live  # every live key is a copy into the empty target
    assert restore_jobs > 20
    assert local[0][0]["keys"] == live == len(local[1])
    # (SeaweedFS stores ``a//double`` as ``a/double``)
    assert {row["key"] for row in local[1]} >= {*ODD[:2], ODD[4], "img1", "big.bin"}
    assert jobs > 20  # pages of 2 over ~60 keys: many jobs, on the workers


async def _current(store: S3Store, bucket: str) -> dict[str, tuple[int, str | None]]:
    """Each live key's size and ETag (the tool's own folder aside)."""
    found: dict[str, tuple[int, str | None]] = {}
    async for v in iter_versions(store, bucket):
        if v.is_latest and not v.is_delete_marker and not v.key.startswith(RESERVED):
            found[v.key] = (v.size, v.etag)
    return found


async def test_a_sync_lists_both_sides_on_the_cluster(
    cli_env: None, cluster: str, s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    """A versioned source (its versions) and the backup, pages of 2, ranges on the workers:
    the same summary and the same backup as in-process, first sync and no-change sync."""
    source = unique_bucket("lusrc")
    await _hard_layout(s3_store, source)
    backups = [unique_bucket("lusb"), unique_bucket("lusb")]
    for bucket in backups:
        await s3_store.create_bucket(bucket)
        await s3_store.set_versioning(bucket, True)
    await asyncio.sleep(1.05)
    executor = DaskExecutor("tcp://" + cluster.removeprefix("dask://"))
    await executor.open()
    summaries: list[list[Any]] = []
    try:
        before = sum(await _jobs_per_worker(executor))
        for backup, how in zip(backups, ((), ("--executor", cluster)), strict=True):
            for _ in range(2):  # the copies, then nothing to do
                code, out, err = await bmb(
                    capsys, *how, "--json", "--list-page-size", "2", "sync",
                    "--source", f"s3://{source}", "--backup", f"s3://{backup}",
                )  # fmt: skip
                assert code == 0, err
                summaries.append(_normal(out, {source: "<src>", backup: "<bak>"}))
            if not how:
                local_jobs = sum(await _jobs_per_worker(executor)) - before
        jobs = sum(await _jobs_per_worker(executor)) - before - local_jobs
    finally:
        await executor.aclose()
    assert summaries[2:] == summaries[:2]
    assert summaries[1][0]["copied"] == 0 < summaries[0][0]["copied"]
    assert await _current(s3_store, backups[1]) == await _current(s3_store, backups[0])
    assert (local_jobs, jobs > 40) == (0, True)  # two listings twice, pages of 2: on workers


async def _cli_restore_at(
    capsys: pytest.CaptureFixture[str], store: S3Store, bucket: str, at: str, *executor: str
) -> Any:
    """``bmb restore --at --dry-run`` into an empty bucket at pages of 2: its plan."""
    target = unique_bucket("lutgt")
    await store.create_bucket(target)
    code, out, err = await bmb(
        capsys, *executor, "--json", "--list-page-size", "2", "restore", "--at", at,
        "--backup", f"s3://{bucket}", "--to", f"s3://{target}", "--dry-run",
    )  # fmt: skip
    assert code == 0, err
    dry_run_lines(out)  # the shape of a dry run's output
    return _normal(out, {target: "<target>"})


class _Twice:
    """Runs every job twice on the cluster: the same result each time (a job only reads)."""

    def __init__(self, ranges: Ranges) -> None:
        self.inner, self.pages, self.jobs = ranges, ranges.pages, 0

    async def run(self, job: RangeJob[Any]) -> RangeResult[Any]:
        first, second = await asyncio.gather(self.inner.run(job), self.inner.run(job))
        assert _same(first, second), job
        self.jobs += 1
        return second


def _same(a: RangeResult[Any], b: RangeResult[Any]) -> bool:
    pages = (a.stats.pages, a.stats.versions), (b.stats.pages, b.stats.versions)
    rest = [(r.rows, r.state, r.carry, r.added, list(r.live), r.oldest, r.newest) for r in (a, b)]
    return pages[0] == pages[1] and rest[0] == rest[1]


class _KillAfter(NullProgress):
    """Progress that SIGKILLs one worker once ``after`` versions are listed."""

    def __init__(self, pid: int, after: int) -> None:
        self.pid, self.after, self.listed, self.killed = pid, after, 0, False

    def advance(self, items: int = 1, nbytes: int = 0) -> None:
        self.listed += items
        if self.listed >= self.after and not self.killed:
            os.kill(self.pid, signal.SIGKILL)
            self.killed = True


async def _snapshot(
    store: S3Store,
    bucket: str,
    root: Path,
    at: datetime,
    ranges: RangeRunner | None,
    progress: NullProgress | None = None,
) -> tuple[dict[str, Any], list[Any]]:
    catalog = LocalCatalog(root, SYSTEM_CLOCK)
    meta = await take_snapshot(
        store, S3Url(bucket, ""), catalog, SYSTEM_CLOCK, at=at, workers=4, progress=progress,
        listing=ListingOptions(page_size=2), ranges=ranges,
    )  # fmt: skip
    rows = list((await catalog.open_index(meta)).rows())
    summary = meta.summary() | {"id": 0, "created": 0, "index_sha256": 0}
    return summary, rows


async def test_a_job_run_twice_and_a_worker_killed_mid_listing(
    cluster: str, s3_store: S3Store, tmp_path: Path
) -> None:
    """Every job run twice gives the same result and the same snapshot; a worker killed in
    the middle of the listing costs its job a resubmission, not a row."""
    bucket = unique_bucket("lukil")
    await _hard_layout(s3_store, bucket)
    await asyncio.sleep(1.05)
    at = SYSTEM_CLOCK.now().replace(microsecond=0)
    await asyncio.sleep(1.05)
    local = await _snapshot(s3_store, bucket, tmp_path / "local", at, None)
    executor = DaskExecutor("tcp://" + cluster.removeprefix("dask://"), range_pages=1)
    await executor.open()
    try:
        assert executor._client is not None
        twice = _Twice(executor.ranges(s3_store))
        assert await _snapshot(s3_store, bucket, tmp_path / "twice", at, twice) == local
        assert twice.jobs > 20

        await executor._client.wait_for_workers(2)
        pid = sorted((await executor._client.run(os.getpid)).values())[0]
        killer = _KillAfter(pid, 20)
        ranges = executor.ranges(s3_store)
        assert await _snapshot(s3_store, bucket, tmp_path / "kill", at, ranges, killer) == local
        assert killer.killed
        await executor._client.wait_for_workers(2)  # restarted
    finally:
        await executor.aclose()


async def test_the_audit_hears_the_workers(cluster: str, s3_store: S3Store) -> None:
    """The audit takes the workers' key hashes (a stable hash: ``hash()`` differs between
    processes): a listing on the cluster passes it, and one whose jobs drop a key fails it."""
    bucket = unique_bucket("luaud")
    await _hard_layout(s3_store, bucket)
    executor = DaskExecutor("tcp://" + cluster.removeprefix("dask://"))
    await executor.open()
    try:
        from backup_my_bucket.storage.iterate import iter_versions
        from backup_my_bucket.storage.listing import ParallelListing

        ranges = executor.ranges(s3_store)
        listing: ParallelListing[str] = ParallelListing(
            s3_store, bucket, _key, workers=4, options=ListingOptions(page_size=3),
            remote=ranges, cut=SYSTEM_CLOCK.now(),  # no key excused as a race
        )  # fmt: skip
        keys = [key async for key in listing.results()]
        assert keys == sorted({v.key async for v in iter_versions(s3_store, bucket)})
        assert listing.audit is not None and listing.paging is Paging.TREE

        dropping = _Dropping(ranges)
        short: ParallelListing[str] = ParallelListing(
            s3_store, bucket, _key, workers=4, options=ListingOptions(page_size=3),
            remote=dropping, cut=SYSTEM_CLOCK.now(),  # the keys belong to the listing: no race
        )  # fmt: skip
        with pytest.raises(IncompleteListing):
            async for _ in short.results():
                pass
        assert dropping.dropped
    finally:
        await executor.aclose()


def _key(history: Any) -> str:
    return str(history.key)


class _Dropping:
    """Loses one live key's hash (what the audit hears) from the first job that has one."""

    def __init__(self, ranges: Ranges) -> None:
        self.inner, self.pages, self.dropped = ranges, ranges.pages, False

    async def run(self, job: RangeJob[Any]) -> RangeResult[Any]:
        result = await self.inner.run(job)
        if self.dropped or not result.live:
            return result
        self.dropped = True
        result.live.pop()
        return result
