"""The restorable span: where a backup's history begins, and what gc made unrestorable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from backup_my_bucket.catalog.history import (
    Span,
    note_gc,
    note_start,
    note_sync,
    read_span,
    require_restorable,
)
from backup_my_bucket.clock import ManualClock
from backup_my_bucket.errors import ExitCode, UsageError
from backup_my_bucket.model import S3Url
from backup_my_bucket.storage.memory import MemoryStore

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=10)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def test_moments_before_the_start_after_now_or_pruned_are_refused() -> None:
    span = Span(start=at(0))
    assert span.problem(at(0), NOW) is None and span.problem(NOW, NOW) is None
    assert span.problem(at(-1), NOW) == "is before the history the backup holds"
    assert span.problem(NOW + timedelta(seconds=1), NOW) == "is in the future"
    pruned = span.after_gc([at(10), at(20)], at(30))
    assert pruned.earliest == at(10)
    assert pruned.gaps == ((at(10), at(20)), (at(20), at(30)))
    assert pruned.problem(at(5), NOW) == "is before the history the backup holds"
    assert pruned.problem(at(15), NOW) is not None and "pruned" in pruned.problem(at(15), NOW)
    for kept in (at(10), at(20), at(30), at(31)):  # kept instants and the window stay exact
        assert pruned.problem(kept, NOW) is None


def test_gc_runs_compose_and_touching_gaps_stay_apart() -> None:
    first = Span(start=at(0)).after_gc([at(10), at(20)], at(100))
    second = first.after_gc([at(20), at(150)], at(200))
    assert second.earliest == at(20)
    assert second.gaps == ((at(20), at(150)), (at(150), at(200)))  # touching: 150 is exact
    assert second.problem(at(150), NOW) is None
    assert second.problem(at(100), NOW) is not None  # the first run kept it; this one did not
    merged = Span(start=at(0), gaps=((at(1), at(5)),)).after_gc([at(0), at(3)], at(9))
    assert merged.gaps == ((at(0), at(9)),)  # 3 was pruned before: the gaps merge
    # a gc with a window and no snapshot older than it: everything before the window goes
    windowed = Span(start=at(0)).after_gc([], at(48))
    assert windowed.earliest == at(48) and windowed.gaps == ()


def test_the_record_round_trips_and_a_damaged_one_is_never_optimistic() -> None:
    span = Span(at(0), "first sync").after_gc([at(10)], at(20))
    assert Span.from_json(span.to_json()) == span
    broken = span.to_json() | {"gaps": [["not a time", 3]]}
    assert Span.from_json(broken) == Span(pruned_before=at(10), damaged=True)
    assert Span.from_json(None) == Span()


async def test_records_in_the_backup_bucket() -> None:
    clock = ManualClock(T0)
    store = MemoryStore(clock)
    await store.create_bucket("bak")
    await store.set_versioning("bak", True)
    backup = S3Url("bak", "site/")
    assert await read_span(store, backup) == Span()
    # an empty backup: history starts at the end of its first sync, in whole seconds
    await note_sync(store, backup, None, at(1) + timedelta(microseconds=700_000))
    await note_sync(store, backup, at(-5), at(2))  # recorded once: a later sync changes nothing
    await note_start(store, backup, at(-9), "earliest version")
    span = await read_span(store, backup)
    assert (span.start, span.start_from) == (at(1), "first sync")
    await note_gc(store, backup, [at(3)], at(5))
    assert (await read_span(store, backup)).gaps == ((at(3), at(5)),)
    keys = [v.key for v in (await store.list_versions_page("bak")).entries]
    assert set(keys) == {"site/.backup-my-bucket/history.json", "site/.backup-my-bucket/probe"}


async def test_require_restorable_names_the_span() -> None:
    clock = ManualClock(T0)
    store = MemoryStore(clock)
    await store.create_bucket("bak")
    await store.set_versioning("bak", True)
    backup = S3Url("bak")
    with pytest.raises(UsageError, match="holds no history yet"):
        await require_restorable(store, backup, at(1), NOW)
    await store.put("bak", "a", b"1")  # no record: the oldest version is where history begins
    with pytest.raises(UsageError) as info:
        await require_restorable(store, backup, at(-2), NOW)
    assert info.value.exit_code == ExitCode.USAGE
    assert "before the history" in info.value.message
    assert "earliest 2026-03-01T10:00:00Z" in info.value.message
    assert "latest 2026-03-11T10:00:00Z" in info.value.message
    await require_restorable(store, backup, at(1), NOW)
