"""The audit's margin for races never reaches into the second a listing is read at: a key
stamped at or before the cut that the version listing lost is a loss, not a race."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from backup_my_bucket.clock import ManualClock
from backup_my_bucket.errors import IncompleteListing
from backup_my_bucket.model import KeyHistory
from backup_my_bucket.storage.audit import MARGIN, Audit
from backup_my_bucket.storage.iterate import iter_versions
from backup_my_bucket.storage.memory import MemoryStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def audit_missing_one(cut: datetime | None) -> None:
    """Keys written at T0 and T0 + 1 s; the audit starts 1.5 s after the last write (within
    its margin of it) and the version listing "lost" the last key."""
    clock = ManualClock(T0)
    store = MemoryStore(clock=clock)
    await store.create_bucket("b")
    await store.set_versioning("b", True)
    await store.put("b", "kept", b"x")
    clock.advance(timedelta(seconds=1))
    await store.put("b", "lost", b"x")
    clock.advance(timedelta(seconds=1.5))
    assert clock.now() - (T0 + timedelta(seconds=1)) < MARGIN
    audit = Audit(store, "b", clock=clock, cut=cut)
    async for version in iter_versions(store, "b"):
        if version.key == "kept":
            audit.note(KeyHistory(version.key, (version,)))
    await audit.run()
    await audit.check()


async def test_a_key_lost_just_before_the_listing_is_excused_without_a_cut() -> None:
    await audit_missing_one(None)  # a race as far as it can tell
    await audit_missing_one(T0)  # written after the cut: not the snapshot's business


async def test_a_key_stamped_at_the_cut_is_never_excused() -> None:
    with pytest.raises(IncompleteListing, match="lost"):
        await audit_missing_one(T0 + timedelta(seconds=1))


@pytest.mark.parametrize("tree", [False, True])
async def test_the_audit_walks_a_tree_walking_server_in_one_sequence(tree: bool) -> None:
    """Where the server walks a tree, a cut range ends only at the first key past its cut:
    every split would list up to a page twice, so the audit does not split there."""
    store = MemoryStore(ManualClock(T0), seaweedfs_paging=tree)
    await store.create_bucket("b")
    await store.set_versioning("b", True)
    keys = [f"obj{i:05d}" for i in range(300)]
    for key in keys:
        await store.put("b", key, b"x")
    audit = Audit(store, "b", tree=tree, ordered=not tree, page_size=10, clock=store.clock)
    async for version in iter_versions(store, "b"):
        audit.note(KeyHistory(version.key, (version,)))
    await audit.run()
    await audit.check()
    assert audit.stats.keys == len(keys)
    if tree:
        assert (audit.stats.ranges, audit.stats.requests) == (1, 30)
    else:
        assert audit.stats.ranges > 1
