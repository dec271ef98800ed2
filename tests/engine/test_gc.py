"""The gc planner (the needed-version rule) and its execute step, on hand-made histories."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from backup_my_bucket.clock import ManualClock
from backup_my_bucket.engine.gc import GcPartialFailure, run_gc
from backup_my_bucket.engine.gc_plan import RestorePoints, lifecycle_warnings, plan_key
from backup_my_bucket.engine.progress import CountingProgress
from backup_my_bucket.engine.retention import RetentionPolicy, SnapshotRef
from backup_my_bucket.engine.versions import KeyHistory
from backup_my_bucket.errors import ItemFailure, UsageError
from backup_my_bucket.model import LifecycleRule, ObjectVersion, VersionRef
from backup_my_bucket.storage.iterate import iter_versions
from backup_my_bucket.storage.memory import MemoryStore

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def entry(vid: str, seconds: float, *, marker: bool = False, size: int = 10) -> ObjectVersion:
    return ObjectVersion(
        "k", vid, at(seconds), 0 if marker else size, None if marker else "e", False, marker
    )


def deleted(history: Sequence[ObjectVersion], *instants: float, window: float = 0) -> list[str]:
    now = at(1000)
    points = RestorePoints.build(
        [at(s) for s in instants], timedelta(seconds=window) if window else None, now
    )
    return [e.version_id for e in plan_key(KeyHistory("k", tuple(history)), points)]


def test_a_version_is_needed_by_the_instants_in_its_live_interval() -> None:
    history = [entry("v3", 30), entry("v2", 20), entry("v1", 10)]  # newest first
    assert deleted(history) == ["v2", "v1"]  # the current version always stays
    assert deleted(history, 10) == ["v2"]  # T = t1 is inside [t1, t2)
    assert deleted(history, 19.9) == ["v2"]
    assert deleted(history, 20) == ["v1"]  # T = t2 belongs to the next version
    assert deleted(history, 5) == ["v2", "v1"]  # before the key existed
    assert deleted(history, 100) == ["v2", "v1"]  # the current version serves it


def test_a_noncurrent_delete_marker_is_needed_while_it_hides_an_older_version() -> None:
    # v1@10, DM@20, v2@30: at T in [20, 30) the key is absent; without the marker,
    # live_at(T) would wrongly return v1.
    history = [entry("v2", 30), entry("dm", 20, marker=True), entry("v1", 10)]
    assert deleted(history, 25) == ["v1"]
    assert deleted(history, 15) == ["dm"]
    assert deleted(history, 15, 25) == []


def test_the_current_delete_marker_is_never_deleted() -> None:
    history = [entry("dm", 30, marker=True), entry("v1", 10)]
    assert deleted(history) == ["v1"]
    assert deleted(history, 40) == ["v1"]


def test_equal_timestamps_trust_the_listing_order() -> None:
    # Two writes in the same second: only the newer-listed one was ever live.
    history = [entry("v3", 30), entry("v2", 20), entry("v1", 20)]
    assert deleted(history, 20) == ["v1"]
    assert deleted(history, 25) == ["v1"]


def test_a_timestamp_out_of_order_uses_the_earliest_newer_entry() -> None:
    # live_at returns the first listed entry at or before T, so v1 is live only before 15.
    history = [entry("v3", 15), entry("v2", 25), entry("v1", 10)]
    assert deleted(history, 20) == ["v2", "v1"]
    assert deleted(history, 12) == ["v2"]


def test_the_window_keeps_every_entry_live_within_it() -> None:
    history = [entry("v4", 990), entry("v3", 950), entry("v2", 900), entry("v1", 10)]
    # window [1000 - 60, 1000] = [940, 1000]: v3 [950, 990) and v2 [900, 950) meet it
    assert deleted(history, window=60) == ["v1"]
    assert deleted(history, window=40) == ["v2", "v1"]  # [960, 1000]: v2 ends at 950


def test_restore_points_boundaries() -> None:
    points = RestorePoints.build([at(10), at(20)], None, at(100))
    assert points.needs(at(10), at(11))
    assert not points.needs(at(11), at(20))
    assert points.needs(at(11), None)
    assert not points.needs(at(10), at(10))
    assert RestorePoints.build([], None, at(0)).empty


def test_lifecycle_rules_that_expire_needed_versions_are_warned_about() -> None:
    now = at(0) + timedelta(days=40)
    points = RestorePoints.build([at(0)], None, now)
    rules = [
        LifecycleRule("short", True, "", noncurrent_expiration_days=30),
        LifecycleRule("long", True, "", noncurrent_expiration_days=90),
        LifecycleRule("off", False, "", noncurrent_expiration_days=1),
        LifecycleRule("elsewhere", True, "other/", noncurrent_expiration_days=1),
    ]
    warnings = lifecycle_warnings(rules, "data/", points, now)
    assert len(warnings) == 1 and "'short'" in warnings[0]


# --- run_gc on the in-memory store --------------------------------------------------------


class Recorder:
    """A remove_snapshots callback that records the order of events."""

    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.removed: list[str] = []

    async def __call__(self, ids: Sequence[str]) -> None:
        self.events.append("catalog")
        self.removed += ids


class SpyStore(MemoryStore):
    """Records delete batches; can answer per-version failures like a locked bucket."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__(clock)
        self.events: list[str] = []
        self.batches: list[int] = []
        self.fail: dict[str, str] = {}  # version id → reason

    async def delete_versions(self, bucket: str, refs: Sequence[VersionRef]) -> list[ItemFailure]:
        self.events.append("delete")
        self.batches.append(len(refs))
        failing = [r for r in refs if r.version_id in self.fail]
        refused = await super().delete_versions(bucket, [r for r in refs if r not in failing])
        return refused + [
            ItemFailure(r.key, r.version_id, self.fail[r.version_id or ""]) for r in failing
        ]


async def history_store(rounds: int, keys: int) -> tuple[SpyStore, str, list[SnapshotRef]]:
    """``rounds`` overwrites of ``keys`` keys, one snapshot after each round, a minute apart."""
    clock = ManualClock(T0)
    store = SpyStore(clock)
    await store.create_bucket("b")
    await store.set_versioning("b", True)
    snapshots = []
    for r in range(rounds):
        for k in range(keys):
            await store.put("b", f"key{k:05d}", f"round {r} key {k}".encode())
        snapshots.append(SnapshotRef(f"s{r}", clock.now()))
        clock.advance(timedelta(minutes=1))
    return store, "b", snapshots


async def versions_of(store: MemoryStore, bucket: str) -> list[ObjectVersion]:
    return [v async for v in iter_versions(store, bucket)]


async def test_catalog_first_then_batches_of_at_most_1000() -> None:
    store, bucket, snapshots = await history_store(rounds=3, keys=1200)
    recorder = Recorder(store.events)
    progress = CountingProgress()
    result = await run_gc(
        store, bucket, "", snapshots, RetentionPolicy(keep_last=1), at(3600),
        remove_snapshots=recorder, workers=2, progress=progress,
    )  # fmt: skip
    assert recorder.removed == ["s1", "s0"]
    assert store.events[0] == "catalog" and set(store.events[1:]) == {"delete"}
    assert max(store.batches) <= 1000 and sum(store.batches) == 2400
    assert result.versions_deleted == 2400 and result.snapshots_kept == ("s2",)
    expected_bytes = sum(len(f"round {r} key {k}") for r in range(2) for k in range(1200))
    assert result.bytes_freed == expected_bytes == progress.nbytes
    assert len(await versions_of(store, bucket)) == 1200


async def test_dry_run_deletes_nothing_and_reports_the_same_plan() -> None:
    store, bucket, snapshots = await history_store(rounds=3, keys=5)
    recorder = Recorder(store.events)
    planned: list[ObjectVersion] = []
    policy = RetentionPolicy(keep_last=2)
    dry = await run_gc(
        store, bucket, "", snapshots, policy, at(3600),
        remove_snapshots=recorder, dry_run=True, on_planned=planned.append,
    )  # fmt: skip
    assert store.events == [] and recorder.removed == []
    assert len(await versions_of(store, bucket)) == 15
    assert dry.snapshots_removed == ("s0",) and dry.versions_deleted == 5 == len(planned)
    assert [d.reasons for d in dry.decisions] == [("last",), ("last",), ("no keep rule matched",)]
    real = await run_gc(store, bucket, "", snapshots, policy, at(3600), remove_snapshots=recorder)
    assert (real.versions_deleted, real.bytes_freed) == (dry.versions_deleted, dry.bytes_freed)
    assert dry.to_json()["dry_run"] is True and real.to_json()["dry_run"] is False
    assert dry.to_json()["decisions"] == [
        {"id": "s2", "keep": True, "reasons": ["last"]},
        {"id": "s1", "keep": True, "reasons": ["last"]},
        {"id": "s0", "keep": False, "reasons": ["no keep rule matched"]},
    ]


async def failing_gc(
    store: MemoryStore, bucket: str, snapshots: list[SnapshotRef]
) -> GcPartialFailure:
    """gc --keep-last 1 that must end with some deletions failed (exit 3)."""
    with pytest.raises(GcPartialFailure) as info:
        await run_gc(
            store, bucket, "", snapshots, RetentionPolicy(keep_last=1), at(3600),
            remove_snapshots=Recorder([]),
        )  # fmt: skip
    return info.value


async def test_only_object_lock_counts_as_locked() -> None:
    store, bucket, snapshots = await history_store(rounds=3, keys=3)
    store.clock.set(at(3600))  # type: ignore[attr-defined]
    old = [v for v in await versions_of(store, bucket) if not v.is_latest]
    store.lock(bucket, old[0].key, old[0].version_id, mode="GOVERNANCE", until=at(7200))
    store.lock(bucket, old[1].key, old[1].version_id, legal_hold=True)
    store.lock(bucket, old[2].key, old[2].version_id, mode="COMPLIANCE", until=at(1800))  # over
    store.fail[old[3].version_id] = "AccessDenied: Access Denied"  # no lock: a permission
    store.fail[old[4].version_id] = "InternalError: disk on fire"
    info = await failing_gc(store, bucket, snapshots)
    result = info.result
    assert info.exit_code == 3
    assert [(f.version_id, f.reason) for f in result.skipped_locked] == [
        (old[0].version_id, "kept by Object Lock: GOVERNANCE retention until 2026-05-01T14:00:00Z"),
        (old[1].version_id, "kept by Object Lock: a legal hold"),
    ]
    assert [(f.version_id, f.reason) for f in result.failures] == [
        (old[3].version_id, "AccessDenied: Access Denied"),
        (old[4].version_id, "InternalError: disk on fire"),
    ]
    assert result.versions_deleted == len(old) - 4  # the expired retention let old[2] go
    left = {v.version_id for v in await versions_of(store, bucket)}
    assert {v.version_id for v in old[:2] + old[3:5]} <= left and old[2].version_id not in left


async def test_every_delete_refused_without_object_lock_is_a_failure() -> None:
    # the case: AccessDenied for every version, nothing locked -> exit 3, keys listed
    store, bucket, snapshots = await history_store(rounds=2, keys=4)
    store.denied.add((bucket, "delete_version"))
    info = await failing_gc(store, bucket, snapshots)
    result = info.result
    assert info.exit_code == 3 and result.skipped_locked == ()
    assert sorted(f.key for f in result.failures) == [f"key{k:05d}" for k in range(4)]
    assert {f.reason for f in result.failures} == {"AccessDenied: Access Denied"}
    assert result.versions_deleted == 0


async def test_a_request_that_fails_whole_is_a_partial_failure() -> None:
    store, bucket, snapshots = await history_store(rounds=2, keys=3)
    store.denied.add((bucket, "delete_versions"))
    info = await failing_gc(store, bucket, snapshots)
    assert len(info.failures) == 3 and info.result.skipped_locked == ()


async def test_nothing_is_deleted_when_nothing_would_stay_restorable() -> None:
    store, bucket, snapshots = await history_store(rounds=2, keys=2)
    recorder = Recorder(store.events)
    policy = RetentionPolicy(keep_within=timedelta(minutes=1))  # all older, min_keep 0
    with pytest.raises(UsageError):
        await run_gc(store, bucket, "", snapshots, policy, at(86400), remove_snapshots=recorder)
    assert store.events == []
    empty = await run_gc(store, bucket, "", [], policy, at(86400), remove_snapshots=recorder)
    assert empty.versions_deleted == 0 and empty.warnings and store.events == []


async def test_the_window_alone_keeps_recent_history() -> None:
    store, bucket, _snapshots = await history_store(rounds=4, keys=1)
    # writes at +0, +60, +120, +180 s; the window [120 s, 210 s] meets the live intervals
    # of round 2 ([120, 180)) and round 3 (current): rounds 0 and 1 go.
    policy = RetentionPolicy(pit_window=timedelta(seconds=90))
    result = await run_gc(store, bucket, "", [], policy, at(210), remove_snapshots=Recorder([]))
    assert result.versions_deleted == 2
    left = await versions_of(store, bucket)
    assert [v.last_modified for v in left] == [at(180), at(120)]
    again = await run_gc(store, bucket, "", [], policy, at(210), remove_snapshots=Recorder([]))
    assert again.versions_deleted == 0
