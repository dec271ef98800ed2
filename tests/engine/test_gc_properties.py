"""Property: gc never changes what a kept restoration point restores, and deletes the rest.

Random histories (puts and deletes of a few keys, often several in one second), random
snapshot instants and random policies run on the in-memory store with a manual clock. The
expectations come from a trivially correct model — the log of operations, replayed — and
never from the code under test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backup_my_bucket.clock import ManualClock
from backup_my_bucket.engine.gc import GcResult, run_gc
from backup_my_bucket.engine.retention import RetentionPolicy, SnapshotRef, apply_policy
from backup_my_bucket.engine.versions import histories
from backup_my_bucket.errors import UsageError
from backup_my_bucket.storage.iterate import iter_versions
from backup_my_bucket.storage.memory import MemoryStore

from .. import figures

START = datetime(2026, 2, 27, 22, 0, 0, 400_000, tzinfo=UTC)  # across days, weeks, a month
GAPS = [timedelta(0), timedelta(milliseconds=300), timedelta(seconds=1), timedelta(hours=1),
        timedelta(days=1)]  # fmt: skip
OFFSETS = [timedelta(seconds=s) for s in (-1, -0.5, 0, 0.5, 1, 1800)]
DURATIONS = [None, timedelta(seconds=1), timedelta(seconds=2), timedelta(hours=1),
             timedelta(days=1), timedelta(days=3)]  # fmt: skip
BUCKET = "backup"


@dataclass(frozen=True)
class Op:
    stamp: datetime  # as S3 records it: whole seconds
    key: str
    version_id: str
    data: bytes | None  # None: a delete marker


def live_op(log: Sequence[Op], key: str, at: datetime) -> Op | None:
    """The model: the last operation on ``key`` recorded at or before ``at``."""
    found = None
    for op in log:
        if op.key == key and op.stamp <= at:
            found = op
    return found


policies = st.builds(
    RetentionPolicy,
    keep_last=st.integers(0, 3),
    keep_within=st.sampled_from(DURATIONS),
    keep_hourly=st.integers(0, 2),
    keep_daily=st.integers(0, 2),
    keep_weekly=st.integers(0, 1),
    keep_monthly=st.integers(0, 1),
    min_keep=st.integers(0, 3),
    pit_window=st.sampled_from(DURATIONS),
)
operations = st.lists(
    st.tuples(st.sampled_from(GAPS), st.sampled_from("abc"), st.booleans()), min_size=1, max_size=25
)


async def write_history(
    store: MemoryStore, clock: ManualClock, ops: list[tuple[timedelta, str, bool]]
) -> list[Op]:
    log = []
    for index, (gap, key, is_put) in enumerate(ops):
        clock.advance(gap)
        stamp = clock.now().replace(microsecond=0)
        if is_put:
            data = f"{key}-{index}".encode()
            log.append(Op(stamp, key, await store.put(BUCKET, key, data), data))
        else:
            version_id = await store.delete(BUCKET, key)
            assert version_id is not None
            log.append(Op(stamp, key, version_id, None))
    return log


async def entries_by_key(store: MemoryStore) -> dict[str, list[str]]:
    return {
        h.key: [v.version_id for v in h.versions]
        async for h in histories(iter_versions(store, BUCKET))
    }


async def restored(store: MemoryStore, at: datetime) -> dict[str, bytes]:
    """What a restore to ``at`` would read, from a fresh listing after gc."""
    state = {}
    async for history in histories(iter_versions(store, BUCKET)):
        live = history.live_at(at)
        if live is not None:
            chunks = [c async for c in store.get(BUCKET, live.key, live.version_id)]
            state[live.key] = b"".join(chunks)
    return state


def expected(log: Sequence[Op], at: datetime) -> dict[str, bytes]:
    ops = (live_op(log, key, at) for key in sorted({op.key for op in log}))
    return {op.key: op.data for op in ops if op is not None and op.data is not None}


def check_points(log: Sequence[Op], kept: Sequence[datetime], policy: RetentionPolicy,
                 now: datetime) -> list[datetime]:  # fmt: skip
    """Kept instants, and every moment where the state can change inside the window."""
    points = list(kept)
    if policy.pit_window is not None:
        low = now - policy.pit_window
        points += [low, now, *(op.stamp for op in log if low < op.stamp <= now)]
    return points


async def scenario(
    ops: list[tuple[timedelta, str, bool]],
    picks: list[tuple[int, int]],
    policy: RetentionPolicy,
    tail: timedelta,
) -> None:
    figures.history("gc")
    clock = ManualClock(START)
    store = MemoryStore(clock)
    await store.create_bucket(BUCKET)
    await store.set_versioning(BUCKET, True)
    log = await write_history(store, clock, ops)
    snapshots = [
        SnapshotRef(f"s{i}", log[op % len(log)].stamp + OFFSETS[off])
        for i, (op, off) in enumerate(picks)
    ]
    now = log[-1].stamp + tail
    before = await entries_by_key(store)
    removed: list[str] = []

    async def remove(ids: Sequence[str]) -> None:
        removed.extend(ids)

    try:
        result = await run_gc(
            store, BUCKET, "", snapshots, policy, now, remove_snapshots=remove, workers=2
        )
    except UsageError:
        decisions = [] if policy.is_empty else apply_policy(snapshots, policy, now)
        assert policy.is_empty or (not any(d.keep for d in decisions) and not policy.pit_window)
        assert await entries_by_key(store) == before and removed == []
        return
    await check_result(store, log, snapshots, policy, now, result, before, removed)


async def check_result(
    store: MemoryStore,
    log: Sequence[Op],
    snapshots: Sequence[SnapshotRef],
    policy: RetentionPolicy,
    now: datetime,
    result: GcResult,
    before: dict[str, list[str]],
    removed: list[str],
) -> None:
    by_id = {s.id: s for s in snapshots}
    assert sorted(removed) == sorted(result.snapshots_removed)
    assert set(result.snapshots_kept) | set(removed) == set(by_id)
    assert len(result.snapshots_kept) >= min(policy.min_keep, len(snapshots))
    kept_at = [by_id[i].at for i in result.snapshots_kept]
    points = check_points(log, kept_at, policy, now) if snapshots or policy.pit_window else []
    after = await entries_by_key(store)
    # no current version or delete marker is ever deleted
    assert {k: v[0] for k, v in after.items()} == {k: v[0] for k, v in before.items()}
    # exactly the entries some restoration point needs survive (plus the current ones)
    needed = {op.version_id for p in points for k in before if (op := live_op(log, k, p))}
    if not snapshots and not policy.pit_window:
        needed = {v for versions in before.values() for v in versions}  # nothing touched
    survivors = {v for versions in after.values() for v in versions}
    assert survivors == needed | {v[0] for v in before.values()}
    assert result.versions_deleted == sum(map(len, before.values())) - len(survivors)
    for point in points:  # and each of them restores exactly
        state, want = await restored(store, point), expected(log, point)
        figures.objects(want, state, what="restore of a kept point after gc")
        assert state == want
    kept = [by_id[i] for i in result.snapshots_kept]
    again = await run_gc(store, BUCKET, "", kept, policy, now, remove_snapshots=_refuse)
    assert again.versions_deleted == 0 and again.snapshots_removed == ()


async def _refuse(ids: Sequence[str]) -> None:
    raise AssertionError(f"a second gc removed snapshots {ids}")


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=operations,
    picks=st.lists(st.tuples(st.integers(0, 30), st.integers(0, len(OFFSETS) - 1)), max_size=8),
    policy=policies,
    tail=st.sampled_from(
        [timedelta(0), timedelta(seconds=1), timedelta(hours=2), timedelta(days=2)]
    ),
)
def test_gc_keeps_every_kept_restoration_point_exact(
    ops: list[tuple[timedelta, str, bool]],
    picks: list[tuple[int, int]],
    policy: RetentionPolicy,
    tail: timedelta,
) -> None:
    asyncio.run(scenario(ops, picks, policy, tail))
