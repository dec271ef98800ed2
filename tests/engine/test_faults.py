"""With 5 % of storage calls failing (before or after they took effect), sync, snapshot,
restore and gc end, after reruns where a user would rerun, in the same state as a fault-free
run."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from backup_my_bucket.catalog import LocalCatalog
from backup_my_bucket.clock import ManualClock
from backup_my_bucket.engine.diff import aiter_sync
from backup_my_bucket.engine.gc import run_gc
from backup_my_bucket.engine.restore import Mode, run_restore
from backup_my_bucket.engine.retention import SnapshotRef, policy_from_options
from backup_my_bucket.engine.snapshot import take_snapshot
from backup_my_bucket.engine.sync import SyncOptions, sync
from backup_my_bucket.errors import BackupError
from backup_my_bucket.model import S3Url
from backup_my_bucket.storage.faulty import FaultyStore
from backup_my_bucket.storage.iterate import iter_versions
from backup_my_bucket.storage.memory import MemoryStore

from .. import figures
from ..conftest import is_data

T = TypeVar("T")
KEYS = 2000


async def converge(
    run: Callable[[], Awaitable[T]], failed: Callable[[T], bool], tries: int = 8
) -> tuple[T, int]:
    """Run until a run ends without failures, as a user (or a cron retry) would rerun."""
    for attempt in range(1, tries + 1):
        try:
            result = await run()
        except BackupError:
            continue
        if not failed(result):
            return result, attempt
    raise AssertionError(f"no clean run in {tries} tries")


def live(store: MemoryStore, bucket: str) -> dict[str, bytes]:
    """The bucket's data: without the reserved folder a backup keeps its records in."""
    return {k: v for k, v in store.snapshot_state(bucket).items() if is_data(k)}


async def test_sync_snapshot_restore_gc_converge_under_faults(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC), tick=timedelta(milliseconds=1))
    memory = MemoryStore(clock)
    for bucket in ("src", "bak", "dst"):
        await memory.create_bucket(bucket)
    await memory.set_versioning("bak", True)
    for i in range(KEYS):
        await memory.put("src", f"d{i % 40:02d}/k{i:05d}", f"v{i}".encode())
    faulty = FaultyStore(memory, rate=0.05, seed=5)
    options = SyncOptions(workers=16)

    _, sync_runs = await converge(
        lambda: sync(faulty, S3Url("src"), faulty, S3Url("bak"), options),
        lambda r: bool(r.failures),
    )
    figures.objects(live(memory, "src"), live(memory, "bak"), what="sync under storage faults")
    assert live(memory, "bak") == live(memory, "src")
    clock.advance(timedelta(seconds=5))
    catalog = LocalCatalog(tmp_path / "cat", clock)
    meta, snapshot_runs = await converge(
        lambda: take_snapshot(faulty, S3Url("bak"), catalog, clock, workers=16), lambda m: False
    )
    reader = await catalog.open_index(meta)
    lost = figures.objects(
        {
            v.key: v.version_id
            async for v in iter_versions(memory, "bak")
            if v.is_latest and not v.is_delete_marker and is_data(v.key)
        },
        {v.key: v.version_id for v in reader.rows()},
        what="snapshot under storage faults",
    )
    assert lost == 0 and meta.keys == KEYS

    async def restore():  # type: ignore[no-untyped-def]
        reader = await catalog.open_index(meta)
        return await run_restore(
            backup_store=faulty,
            backup=S3Url("bak"),
            desired=aiter_sync(reader.rows()),  # backup prefix is empty: keys are absolute
            target_store=faulty,
            target=S3Url("dst"),
            point=f"snapshot:{meta.id}",
            mode=Mode.ROLLBACK,
            workers=16,
            journal_dir=tmp_path / "journal",
        )

    _, restore_runs = await converge(restore, lambda r: bool(r.failed) or not r.verified)
    figures.objects(live(memory, "src"), live(memory, "dst"), what="restore under storage faults")
    assert live(memory, "dst") == live(memory, "src")

    # change the source, back it up, a second snapshot, then gc down to it: the first
    # snapshot leaves the catalog, then the versions only it needed go
    for i in range(0, KEYS, 10):
        await memory.put("src", f"d{i % 40:02d}/k{i:05d}", b"changed")
    for i in range(5, KEYS, 10):
        await memory.delete("src", f"d{i % 40:02d}/k{i:05d}")
    _, runs = await converge(
        lambda: sync(faulty, S3Url("src"), faulty, S3Url("bak"), options),
        lambda r: bool(r.failures),
    )
    sync_runs += runs
    figures.objects(live(memory, "src"), live(memory, "bak"), what="sync under storage faults")
    assert live(memory, "bak") == live(memory, "src")
    clock.advance(timedelta(seconds=5))
    second, runs = await converge(
        lambda: take_snapshot(faulty, S3Url("bak"), catalog, clock, workers=16), lambda m: False
    )
    snapshot_runs += runs
    before = [v async for v in iter_versions(memory, "bak")]
    # gc makes few calls (a listing page per 1,000 entries, a DeleteObjects per 1,000
    # versions): at 5 % it would seldom meet a fault, so its store fails 30 % of them
    gc_faulty = FaultyStore(memory, rate=0.3, seed=6)

    async def gc():  # type: ignore[no-untyped-def]
        snapshots = [SnapshotRef(m.id, m.at) for m in await catalog.list()]
        return await run_gc(
            gc_faulty, "bak", "", snapshots, policy_from_options(keep_last=1, min_keep=1),
            clock.now(), remove_snapshots=catalog.remove, workers=16,
        )  # fmt: skip

    _, gc_runs = await converge(gc, lambda r: bool(r.failures))
    assert gc_faulty.injected > 0
    after = {(v.key, v.version_id) async for v in iter_versions(memory, "bak")}
    kept = {(v.key, v.version_id) for v in before if v.is_latest}
    figures.objects(dict.fromkeys(kept), dict.fromkeys(after), what="gc under storage faults")
    assert after == kept  # the old contents of changed and deleted keys are gone
    assert [m.id for m in await catalog.list()] == [second.id]
    assert faulty.injected > 100  # the runs really met faults
    figures.record(
        "faults",
        layer="storage",
        requests=faulty.calls + gc_faulty.calls,
        kinds={"failed before taking effect": faulty.injected_before + gc_faulty.injected_before,
               "took effect, answer lost": faulty.injected_after + gc_faulty.injected_after},
        reruns=sync_runs + snapshot_runs + restore_runs + gc_runs - 6,
    )  # fmt: skip
