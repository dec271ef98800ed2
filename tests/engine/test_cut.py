"""A snapshot is cut by the server's clock, whatever this machine's says (engine/cut.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backup_my_bucket.catalog import LocalCatalog
from backup_my_bucket.catalog.location import RESERVED
from backup_my_bucket.clock import ManualClock
from backup_my_bucket.engine.backup import snapshot_after
from backup_my_bucket.engine.cut import server_now, wait_past
from backup_my_bucket.engine.gc import gc_catalog
from backup_my_bucket.engine.retention import RetentionPolicy
from backup_my_bucket.engine.snapshot import ListedState, take_snapshot
from backup_my_bucket.engine.sync import SyncOptions, sync
from backup_my_bucket.errors import StorageError
from backup_my_bucket.model import S3Url
from backup_my_bucket.storage.iterate import iter_versions
from backup_my_bucket.storage.memory import MemoryStore
from backup_my_bucket.storage.protocol import ObjectStore

from ..conftest import BucketFactory

SERVER = datetime(2026, 3, 1, 12, 0, 0, 400_000, tzinfo=UTC)


class Skewed:
    """This machine's clock: the server's ``base`` clock read ``skew`` apart."""

    def __init__(self, base: ManualClock, skew: timedelta) -> None:
        self.base, self.skew = base, skew

    def now(self) -> datetime:
        return self.base.now() + self.skew

    def monotonic(self) -> float:
        return self.base.monotonic()

    async def sleep(self, seconds: float) -> None:
        await self.base.sleep(seconds)

    async def sleep_until(self, when: datetime) -> None:
        await self.base.sleep_until(when - self.skew)


async def state_at(store: ObjectStore, bucket: str, at: datetime) -> dict[str, str]:
    """Trivially correct: each key's newest version stamped at or before ``at`` (the tool's
    own folder aside, as in an index)."""
    state: dict[str, tuple[datetime, str, bool]] = {}
    async for v in iter_versions(store, bucket):
        if v.key.startswith(RESERVED):
            continue
        if v.last_modified <= at and (v.key not in state or state[v.key][0] < v.last_modified):
            state[v.key] = (v.last_modified, v.version_id, v.is_delete_marker)
    return {k: vid for k, (_, vid, dm) in state.items() if not dm}


async def test_a_client_ahead_of_the_server_cuts_where_the_server_has_ended(
    tmp_path: Path,
) -> None:
    """Five seconds ahead, this machine's last second is still to come on the server: a
    write after the listing would land at or before it, and the index would no longer be
    the state at T (what gc relies on)."""
    server = ManualClock(SERVER)
    store, mine = MemoryStore(server), Skewed(server, timedelta(seconds=5))
    await store.create_bucket("bak")
    await store.set_versioning("bak", True)
    await store.put("bak", "k", b"one")
    catalog = LocalCatalog(tmp_path / "cat", mine)
    meta = await take_snapshot(store, S3Url("bak"), catalog, mine)
    await store.put("bak", "k", b"two")  # the same second on the server, after the listing
    index = {v.key: v.version_id for v in (await catalog.open_index(meta)).rows()}
    assert index == await state_at(store, "bak", meta.at)
    assert meta.at == SERVER.replace(microsecond=0) - timedelta(seconds=1)


@pytest.mark.parametrize("recorded", [False, True], ids=["listed", "sync-listing"])
async def test_a_backup_with_a_client_behind_the_server_holds_what_it_copied(
    tmp_path: Path, recorded: bool
) -> None:
    """Five seconds behind, this machine's last second is long over on the server: the
    snapshot after a sync would leave out the copies just made."""
    server = ManualClock(SERVER)
    store, mine = MemoryStore(server), Skewed(server, -timedelta(seconds=5))
    for bucket in ("src", "bak"):
        await store.create_bucket(bucket)
    await store.set_versioning("bak", True)
    await store.put("src", "k", b"k")
    catalog = LocalCatalog(tmp_path / "cat", mine)
    with ListedState(mine) as listed:
        if recorded:  # a first sync, then one that copies nothing: its listing is the snapshot
            await sync(store, S3Url("src"), store, S3Url("bak"), SyncOptions(), clock=mine)
            server.advance(timedelta(seconds=3))
        synced = await sync(
            store, S3Url("src"), store, S3Url("bak"), SyncOptions(), clock=mine, listed=listed
        )
        ended = await server_now(store, "bak", mine)
        meta = await snapshot_after(synced, listed, store, S3Url("bak"), catalog, mine, ended=ended)
    assert (synced.copied, meta.keys) == (0 if recorded else 1, 1)
    assert meta.at >= ended - timedelta(seconds=1)


async def test_a_server_whose_clock_stands_still_is_an_error() -> None:
    class Frozen(MemoryStore):
        async def server_time(self, bucket: str) -> datetime | None:
            return SERVER.replace(microsecond=0)

    store = Frozen(ManualClock(SERVER))
    await store.create_bucket("b")
    with pytest.raises(StorageError, match="stood still"):
        await wait_past(store, "b", store.clock, SERVER.replace(microsecond=0))


async def test_the_server_time_is_its_clock_in_whole_seconds(
    store: ObjectStore, make_bucket: BucketFactory
) -> None:
    """SeaweedFS on this machine shares its clock: its Date is this second (or the one
    before, a request ago)."""
    bucket = await make_bucket()
    before = datetime.now(UTC).replace(microsecond=0)
    seen = await store.server_time(bucket)
    after = datetime.now(UTC)
    assert seen is not None and seen.tzinfo is not None and seen.microsecond == 0
    assert before - timedelta(seconds=1) <= seen <= after


async def test_a_denied_head_bucket_cuts_by_this_machine_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """HeadBucket needs s3:ListBucket: without it the snapshot goes on, cut by this machine's
    clock, and the log says so once."""
    server = ManualClock(SERVER)
    store, mine = MemoryStore(server), Skewed(server, timedelta(seconds=30))
    await store.create_bucket("denied")
    await store.set_versioning("denied", True)
    store.denied.add(("denied", "server_time"))
    catalog = LocalCatalog(tmp_path / "cat", mine)
    first = await take_snapshot(store, S3Url("denied"), catalog, mine)
    server.advance(timedelta(seconds=2))
    await take_snapshot(store, S3Url("denied"), catalog, mine)
    assert first.at == (SERVER + timedelta(seconds=29)).replace(microsecond=0)
    warned = [r for r in caplog.records if "HeadBucket is denied" in r.getMessage()]
    assert len(warned) == 1 and "s3://denied" in warned[0].getMessage()


async def test_gc_ages_snapshots_on_the_servers_clock(tmp_path: Path) -> None:
    """This machine two hours ahead: a snapshot taken a minute ago is a minute old, and
    --keep-within 1h keeps it (its T is on the server's clock, and so is gc's "now")."""
    server = ManualClock(SERVER)
    store, mine = MemoryStore(server), Skewed(server, timedelta(hours=2))
    await store.create_bucket("aged")
    await store.set_versioning("aged", True)
    catalog = LocalCatalog(tmp_path / "cat", mine)
    await store.put("aged", "k", b"one")
    server.advance(timedelta(seconds=2))
    first = await take_snapshot(store, S3Url("aged"), catalog, mine)
    await store.put("aged", "k", b"two")
    server.advance(timedelta(minutes=1))
    await take_snapshot(store, S3Url("aged"), catalog, mine)
    policy = RetentionPolicy(keep_within=timedelta(hours=1))
    result = await gc_catalog(store, catalog, S3Url("aged"), policy, mine)
    assert [d.snapshot.id for d in result.decisions if not d.keep] == []
    assert first.id in {m.id for m in await catalog.list()}


async def test_an_at_still_open_on_the_server_is_capped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = ManualClock(SERVER)
    store, mine = MemoryStore(server), Skewed(server, timedelta(seconds=10))
    await store.create_bucket("capped")
    await store.set_versioning("capped", True)
    catalog = LocalCatalog(tmp_path / "cat", mine)
    asked = mine.now() - timedelta(seconds=3)  # the past here, the future on the server
    meta = await take_snapshot(store, S3Url("capped"), catalog, mine, at=asked)
    assert meta.at == SERVER.replace(microsecond=0) - timedelta(seconds=1)
    assert any("has not ended on the server" in r.getMessage() for r in caplog.records)
