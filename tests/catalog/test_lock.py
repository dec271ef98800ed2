"""Locks that mean it: compare-and-swap where the server honours conditional writes, a lease
that is checked before every destructive step, and a read-back where nothing better exists."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from backup_my_bucket.catalog import Catalog, LocalCatalog, LockInfo, S3Catalog
from backup_my_bucket.catalog.conditional import _probed, conditional_writes
from backup_my_bucket.catalog.lock import ABSENT
from backup_my_bucket.clock import ManualClock
from backup_my_bucket.errors import ExitCode, Locked
from backup_my_bucket.model import S3Url
from backup_my_bucket.storage.memory import MemoryStore
from backup_my_bucket.storage.protocol import ObjectStore

from ..conftest import unique_bucket
from .test_catalog import T0, foreign_lock

SHARED = unique_bucket("locks")


class IgnoresConditions(MemoryStore):
    """A server that accepts If-None-Match / If-Match and ignores them (older S3 clones)."""

    async def put(self, bucket: str, key: str, data: bytes | bytearray, **kw: Any) -> str:
        kw.pop("if_match", None)
        kw.pop("if_none_match", None)
        return await super().put(bucket, key, data, **kw)


@pytest.fixture(params=["memory", pytest.param("seaweedfs", marks=pytest.mark.s3)])
def make_s3_catalog(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Callable[[], Awaitable[S3Catalog]]:
    store: ObjectStore = (
        request.getfixturevalue("s3_store") if request.param == "seaweedfs" else MemoryStore()
    )

    async def make() -> S3Catalog:
        """A catalog of its own, in one bucket the module's tests share (each bucket costs
        the test server 7 volumes)."""
        await store.create_bucket(SHARED)
        await store.set_versioning(SHARED, True)
        folder = f"{uuid.uuid4().hex[:8]}/cat/"
        return S3Catalog(store, S3Url(SHARED, folder), tmp_path / "cache", ManualClock(T0))

    return make


async def steal(catalog: Catalog, purpose: str = "gc") -> None:
    """Another process writes its own lock over ours (e.g. it judged ours expired)."""
    raw = foreign_lock(purpose, pid=1, host="other-host.example", hours=2)
    if isinstance(catalog, LocalCatalog):
        (catalog.root / "lock.json").write_bytes(raw)
    else:
        assert isinstance(catalog, S3Catalog)
        await catalog.store.put(catalog.url.bucket, catalog._key("lock.json"), raw)


async def test_the_probe_finds_conditional_writes_and_writes_once(
    make_s3_catalog: Callable[[], Awaitable[S3Catalog]],
) -> None:
    """The probe object stays; later probes (other processes) are refused every write."""
    catalog = await make_s3_catalog()
    store, bucket, probe = catalog.store, catalog.url.bucket, catalog.prefix + "x/probe"
    for _ in range(2):
        _probed.pop(store, None)  # as in a new process
        assert await conditional_writes(store, bucket, probe) is True
        page = await store.list_versions_page(bucket, prefix=catalog.prefix)
        assert [v.key for v in page.entries] == [probe]  # one version, whatever the runs


async def test_only_one_of_two_racing_takers_wins(
    make_s3_catalog: Callable[[], Awaitable[S3Catalog]],
) -> None:
    """Both read "no lock", both write with If-None-Match: * — the server lets one through."""
    catalog = await make_s3_catalog()
    now = catalog.clock.now()
    first = LockInfo.new("snapshot", now, timedelta(minutes=10))
    second = LockInfo.new("gc", now, timedelta(minutes=10))
    results = await asyncio.gather(
        catalog._swap_lock(first, ABSENT), catalog._swap_lock(second, ABSENT)
    )
    assert sum(r is not None for r in results) == 1
    held = (await catalog._read_lock()).info
    winner = first if results[0] is not None else second
    assert held is not None and held.token == winner.token


async def test_a_stolen_lock_is_noticed_before_the_next_step(
    make_s3_catalog: Callable[[], Awaitable[S3Catalog]],
) -> None:
    catalog = await make_s3_catalog()
    async with catalog.lock("gc") as lease:
        await lease.check("a batch")  # still ours
        await steal(catalog, "snapshot")
        with pytest.raises(Locked) as info:
            await lease.check("its next batch of deletions")
        assert info.value.exit_code == ExitCode.LOCKED
        assert "lost the catalog lock" in info.value.message and "snapshot" in info.value.message
        assert "its next batch of deletions" in info.value.message
    # the holder that lost it does not delete the other holder's lock on its way out
    assert (await catalog._read_lock()).info.purpose == "snapshot"  # type: ignore[union-attr]


async def test_a_renewal_against_a_changed_lock_loses_it(
    make_s3_catalog: Callable[[], Awaitable[S3Catalog]],
) -> None:
    """The renewal is If-Match our last write: after someone else wrote, it gets 412."""
    catalog = await make_s3_catalog()
    async with catalog.lock("gc") as lease:
        await lease.renew()  # an ordinary renewal keeps it
        assert lease.lost is None
        await steal(catalog)
        await lease.renew()
        assert lease.lost is not None and "holds it now" in lease.lost
        with pytest.raises(Locked):
            await lease.check()


async def test_a_lease_that_was_not_renewed_runs_out(
    make_s3_catalog: Callable[[], Awaitable[S3Catalog]],
) -> None:
    catalog = await make_s3_catalog()
    clock = catalog.clock
    assert isinstance(clock, ManualClock)
    async with catalog.lock("gc") as lease:
        clock.advance(timedelta(minutes=11))  # no renewal happened (the store was unreachable)
        with pytest.raises(Locked, match="ran out"):
            await lease.check()


async def test_without_conditional_writes_the_lock_falls_back_to_a_read_back(
    tmp_path: Path,
) -> None:
    store = IgnoresConditions()
    await store.create_bucket("b")
    catalog = S3Catalog(store, S3Url("b", "cat"), tmp_path / "cache", ManualClock(T0))
    assert await conditional_writes(store, "b", "cat/probe") is False
    async with catalog.lock("gc") as lease:
        with pytest.raises(Locked):
            async with catalog.lock("snapshot"):
                pass
        await lease.renew()
        await steal(catalog)
        with pytest.raises(Locked):
            await lease.check()
    assert isinstance(catalog.clock, ManualClock)
    catalog.clock.advance(timedelta(hours=3))  # the other holder's lock expired
    async with catalog.lock("gc"):
        pass
    assert [v.key for v in (await store.list_versions_page("b")).entries] == ["cat/probe"]


async def test_a_local_lock_taken_away_is_noticed(tmp_path: Path) -> None:
    catalog = LocalCatalog(tmp_path / "c", ManualClock(T0))
    async with catalog.lock("gc") as lease:
        await lease.renew()
        await lease.check()
        await steal(catalog)
        with pytest.raises(Locked):
            await lease.check()
    assert (catalog.root / "lock.json").exists()  # not ours any more: left alone
