"""Property: restoring any point in rollback mode makes the target equal that point.

Random histories are written to a source bucket and, as a perfect sync would, to a versioned
backup bucket. Snapshots (the recorded live state) and arbitrary moments between events are
then restored, one after the other, into the mutated source: after each, the source must hold
exactly the point's keys with their bytes, metadata and tags, and restoring it again must be
a no-op (unchanged keys are skipped).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backup_my_bucket.clock import ManualClock
from backup_my_bucket.engine.filters import KeyFilter
from backup_my_bucket.engine.restore import Mode
from backup_my_bucket.model import ObjectAttrs, S3Url
from backup_my_bucket.storage.memory import MemoryStore
from backup_my_bucket.storage.protocol import ObjectStore

from .. import figures
from .restore_helpers import State, aiter_list, bucket_state, desired_at, live, restore

KEYS = ["a", "b", "d/x", "d/y", "e/f/g", "z", "ñ"]
START = datetime(2026, 1, 1, tzinfo=UTC)

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.sampled_from(KEYS), st.integers(0, 3)),
        st.tuples(st.just("delete"), st.sampled_from(KEYS), st.just(0)),
        st.tuples(st.just("snap"), st.just(""), st.just(0)),
    ),
    max_size=24,
)


def data(key: str, n: int) -> bytes:
    return f"{key}:{n}".encode() * (n + 1)


def attrs(n: int) -> ObjectAttrs:
    # metadata follows the bytes: "unchanged" is judged by size and ETag (docs/design.md)
    return ObjectAttrs(
        content_type=f"text/x-{n}",
        metadata={"n": str(n)},
        cache_control="no",
        storage_class="STANDARD_IA" if n == 3 else None,
    )


def tags(n: int) -> dict[str, str]:
    return {"n": str(n)} if n % 2 else {}


def expected(model: dict[str, int]) -> State:
    return {k: (data(k, n), attrs(n), tags(n)) for k, n in model.items()}


async def check_state(store: ObjectStore, bucket: str, want: State) -> None:
    state = await bucket_state(store, bucket)
    figures.objects(want, state, what="rollback of a random history")
    assert state == want


async def write_history(
    store: ObjectStore,
    ops: list[tuple[str, str, int]],
    source: S3Url,
    backup: S3Url,
    clock: ManualClock | None,
) -> tuple[list[tuple[datetime, dict[str, int]]], list[tuple[list[object], dict[str, int]]]]:
    """Apply ``ops`` to source and backup; return the timeline and the snapshots taken."""
    model: dict[str, int] = {}
    timeline: list[tuple[datetime, dict[str, int]]] = []
    snaps: list[tuple[list[object], dict[str, int]]] = []
    for op, key, n in ops:
        if op == "put":
            for url in (source, backup):
                await store.put(url.bucket, url.prefix + key, data(key, n), attrs=attrs(n),
                                tags=tags(n))  # fmt: skip
            model[key] = n
        elif op == "delete":
            for url in (source, backup):
                await store.delete(url.bucket, url.prefix + key)
            model.pop(key, None)
        else:
            snaps.append((list(await live(store, backup.bucket, backup.prefix)), dict(model)))
        if clock is not None:
            timeline.append((clock.now(), dict(model)))
            clock.advance(timedelta(seconds=1))
    return timeline, snaps


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=OPS,
    picks=st.lists(st.tuples(st.integers(0, 30), st.booleans()), max_size=4),
    source_versioned=st.booleans(),
    backup_prefix=st.sampled_from(["", "bk/"]),
)
async def test_rollback_to_any_snapshot_or_moment_restores_it_exactly(
    ops: list[tuple[str, str, int]],
    picks: list[tuple[int, bool]],
    source_versioned: bool,
    backup_prefix: str,
) -> None:
    figures.history("restore")
    clock = ManualClock(START)
    store = MemoryStore(clock=clock)
    for bucket in ("src", "bk"):
        await store.create_bucket(bucket)
    await store.set_versioning("bk", True)
    await store.set_versioning("src", source_versioned)
    source, backup = S3Url("src"), S3Url("bk", backup_prefix)
    timeline, snaps = await write_history(store, ops, source, backup, clock)

    for versions, model in snaps:  # restore each snapshot (recorded live state)
        result = await restore(store, backup, source, aiter_list(versions))  # type: ignore[arg-type]
        assert result.failed == 0 and result.verified
        await check_state(store, "src", expected(model))

    points = [(START - timedelta(seconds=5), {}), *timeline]
    for index, half in picks:  # restore moments, exactly at an event or between two
        at, model = points[index % len(points)]
        at += timedelta(milliseconds=500) if half else timedelta(0)
        result = await restore(store, backup, source, desired_at(store, backup, at))
        assert result.failed == 0 and result.verified
        await check_state(store, "src", expected(model))
        again = await restore(store, backup, source, desired_at(store, backup, at))
        assert (again.copied, again.deleted) == (0, 0)


@settings(max_examples=60, deadline=None)
@given(
    ops=OPS,
    mode=st.sampled_from(list(Mode)),
    subset=st.sampled_from([KeyFilter(), KeyFilter("d/"), KeyFilter(include=("*x", "a"))]),
    target_prefix=st.sampled_from(["", "t/"]),
)
async def test_modes_and_subsets_keep_their_promises(
    ops: list[tuple[str, str, int]], mode: Mode, subset: KeyFilter, target_prefix: str
) -> None:
    """Against a random target: outside the subset nothing changes; safe/undelete never
    overwrite or delete; rollback makes the subset equal to the point."""
    figures.history("restore")
    clock = ManualClock(START)
    store = MemoryStore(clock=clock)
    for bucket in ("src", "bk", "other"):
        await store.create_bucket(bucket)
    await store.set_versioning("bk", True)
    backup, target = S3Url("bk"), S3Url("other", target_prefix)
    half = len(ops) // 2
    timeline, _ = await write_history(store, ops[:half], S3Url("src"), backup, clock)
    at = clock.now() - timedelta(seconds=1)
    point = timeline[-1][1] if timeline else {}
    await write_history(store, ops[half:], target, backup, clock)  # the target drifts
    before = await bucket_state(store, "other", target_prefix)

    result = await restore(store, backup, target, desired_at(store, backup, at), mode=mode,
                           filters=subset)  # fmt: skip
    assert result.failed == 0 and result.verified
    after = await bucket_state(store, "other", target_prefix)
    want = expected(point)
    kept = {k: v for k, v in before.items() if not subset.matches(k) or mode is not Mode.ROLLBACK}
    if mode is not Mode.UNDELETE:  # rollback and safe bring back what the point had
        kept.update((k, v) for k, v in want.items() if subset.matches(k) and k not in kept)
    figures.objects(kept, after, what="restore (mode, subset) of a random history")
    for key in set(before) | set(after) | set(want):
        if not subset.matches(key):
            assert after.get(key) == before.get(key)
        elif mode is Mode.ROLLBACK:
            assert after.get(key) == want.get(key)
        elif key in before:
            assert after[key] == before[key]  # never overwritten, never deleted
        elif mode is Mode.SAFE:
            assert after.get(key) == want.get(key)
        else:
            assert key not in after or after[key] == want[key]
