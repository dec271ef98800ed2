"""Restore on the in-memory store: modes, subsets, --to, dry run, archives, journal, resume."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backup_my_bucket.clock import ManualClock
from backup_my_bucket.engine.actions import ActionKind
from backup_my_bucket.engine.filters import KeyFilter
from backup_my_bucket.engine.journal import Journal, JournalEntry
from backup_my_bucket.engine.restore import (
    ArchivedVersions,
    Mode,
    Reason,
    plan_restore,
)
from backup_my_bucket.errors import AccessDenied, BackupError, UsageError
from backup_my_bucket.model import ObjectAttrs, ObjectVersion, S3Url, VersionRef
from backup_my_bucket.storage.memory import MemoryStore
from backup_my_bucket.storage.protocol import Tags

from .restore_helpers import aiter_list, bucket_state, desired_at, live, read, restore

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BK, SRC = S3Url("bk", "p/"), S3Url("src")


class Scenario:
    """Backup history: a,b,c,d live at ``at``; then a deleted, b overwritten, e added."""

    def __init__(self) -> None:
        self.clock = ManualClock(T0)
        self.store = MemoryStore(clock=self.clock)

    async def build(self) -> datetime:
        s, tick = self.store, timedelta(seconds=1)
        for bucket in ("bk", "src", "other"):
            await s.create_bucket(bucket)
        await s.set_versioning("bk", True)
        for key in "abcd":
            await self.both(key, f"{key}1".encode())
        self.clock.advance(tick)
        at = self.clock.now()
        self.clock.advance(tick)
        for url in (BK, SRC):
            await s.delete(url.bucket, url.prefix + "a")
        await self.both("b", b"b2")
        await self.both("e", b"e2")
        await s.delete("src", "c")  # gone from the source, not yet synced to the backup
        self.clock.advance(tick)
        return at

    async def both(self, key: str, data: bytes) -> None:
        await self.store.put("bk", "p/" + key, data, attrs=ObjectAttrs(content_type="t/x"))
        await self.store.put("src", key, data, attrs=ObjectAttrs(content_type="t/x"))

    async def data(self, url: S3Url = SRC) -> dict[str, bytes]:
        return {
            k: v[0] for k, v in (await bucket_state(self.store, url.bucket, url.prefix)).items()
        }


@pytest.fixture
async def scene() -> tuple[Scenario, datetime]:
    scenario = Scenario()
    return scenario, await scenario.build()


POINT = {"a": b"a1", "b": b"b1", "c": b"c1", "d": b"d1"}


async def test_rollback_in_place(scene: tuple[Scenario, datetime]) -> None:
    sc, at = scene
    result = await restore(sc.store, BK, SRC, desired_at(sc.store, BK, at))
    assert await sc.data() == POINT
    assert (result.copied, result.deleted, result.skipped, result.failed) == (3, 1, 1, 0)
    assert result.bytes_copied == 6 and result.verified
    assert result.plan.by_reason == {
        Reason.MISSING.value: 2, Reason.CHANGED.value: 1, Reason.EXTRA.value: 1,
        Reason.UNCHANGED.value: 1,
    }  # fmt: skip
    state = await bucket_state(sc.store, "src")
    assert state["a"][1].content_type == "t/x"  # headers kept by the server-side copy


async def test_safe_only_adds_missing(scene: tuple[Scenario, datetime]) -> None:
    sc, at = scene
    result = await restore(sc.store, BK, SRC, desired_at(sc.store, BK, at), mode=Mode.SAFE)
    assert await sc.data() == {"a": b"a1", "b": b"b2", "c": b"c1", "d": b"d1", "e": b"e2"}
    assert (result.copied, result.deleted) == (2, 0)


async def test_undelete_only_brings_back_keys_deleted_since(
    scene: tuple[Scenario, datetime],
) -> None:
    sc, at = scene
    result = await restore(sc.store, BK, SRC, desired_at(sc.store, BK, at), mode=Mode.UNDELETE)
    # "a" was deleted (the backup shows it); "c" is missing in the source but the backup has
    # no deletion for it (not synced yet): undelete leaves it, safe would bring it back
    assert await sc.data() == {"a": b"a1", "b": b"b2", "d": b"d1", "e": b"e2"}
    assert (result.copied, result.deleted) == (1, 0)
    assert result.plan.by_reason[Reason.NOT_DELETED.value] == 1


async def test_to_another_bucket_and_prefix(scene: tuple[Scenario, datetime]) -> None:
    sc, at = scene
    await sc.store.put("other", "keep-me", b"x")
    await sc.store.put("other", "dst/zzz", b"extra")
    target = S3Url("other", "dst/")
    result = await restore(sc.store, BK, target, desired_at(sc.store, BK, at))
    assert await sc.data(target) == POINT
    assert result.deleted == 1
    assert await read(sc.store, "other", "keep-me") == b"x"  # outside the target prefix
    assert await sc.data() == {"b": b"b2", "d": b"d1", "e": b"e2"}  # the source untouched


async def test_subsets_by_prefix_and_globs(scene: tuple[Scenario, datetime]) -> None:
    sc, at = scene
    only_a = KeyFilter(include=("a", "e"))
    await restore(sc.store, BK, SRC, desired_at(sc.store, BK, at), filters=only_a)
    assert await sc.data() == {"a": b"a1", "b": b"b2", "d": b"d1"}
    no_c = KeyFilter(exclude=("c",))
    await restore(sc.store, BK, SRC, desired_at(sc.store, BK, at), filters=no_c)
    assert await sc.data() == {"a": b"a1", "b": b"b1", "d": b"d1"}
    assert KeyFilter("d/").matches("d/x") and not KeyFilter("d/").matches("dx")


async def test_dry_run_changes_nothing(scene: tuple[Scenario, datetime], tmp_path: Path) -> None:
    sc, at = scene
    before = await live(sc.store, "src")
    calls = dict(sc.store.calls)
    result = await restore(
        sc.store, BK, SRC, desired_at(sc.store, BK, at), dry_run=True, journal_dir=tmp_path
    )
    assert result.dry_run and (result.copied, result.deleted, result.skipped) == (3, 1, 1)
    assert result.bytes_copied == 6
    assert await live(sc.store, "src") == before
    writes = {op for op in sc.store.calls if sc.store.calls[op] != calls.get(op)}
    assert writes <= {"list_versions", "list_objects", "server", "head", "get", "get_tags"}
    assert not os.listdir(tmp_path)  # no journal either


async def test_archived_versions_are_refused_up_front(scene: tuple[Scenario, datetime]) -> None:
    sc, at = scene
    cold = ObjectAttrs(storage_class="DEEP_ARCHIVE")
    sc.clock.set(at - timedelta(milliseconds=1))
    await sc.store.put("bk", "p/cold", b"zzz", attrs=cold)
    await sc.store.put("bk", "p/ir", b"ir", attrs=ObjectAttrs(storage_class="GLACIER_IR"))
    before = await live(sc.store, "src")
    with pytest.raises(ArchivedVersions) as caught:
        await restore(sc.store, BK, SRC, desired_at(sc.store, BK, at))
    assert caught.value.count == 1 and "'cold' (DEEP_ARCHIVE)" in caught.value.message
    assert await live(sc.store, "src") == before  # nothing changed
    result = await restore(sc.store, BK, SRC, desired_at(sc.store, BK, at), skip_archived=True)
    assert result.failed == 1 and result.archived == 1 and result.failures[0].key == "cold"
    assert await sc.data() == {**POINT, "ir": b"ir"}


async def test_misordered_desired_state_fails_loudly() -> None:
    v = [ObjectVersion(k, "v1", T0, 1, "e") for k in ("b", "a")]
    with pytest.raises(BackupError, match="ascending"):
        [a async for a in plan_restore(aiter_list(v), aiter_list([]), Mode.ROLLBACK)]


async def test_never_writes_into_the_backup(scene: tuple[Scenario, datetime]) -> None:
    sc, at = scene
    with pytest.raises(UsageError, match="overlaps the backup"):
        await restore(sc.store, BK, S3Url("bk"), desired_at(sc.store, BK, at))
    await restore(sc.store, BK, S3Url("bk", "elsewhere/"), desired_at(sc.store, BK, at))


class Crash(Exception):
    """Stands for the process dying (kill -9 is tested through the CLI on SeaweedFS)."""


class CrashingStore(MemoryStore):
    """Copies fail: after ``crash_after`` copies the process 'dies' (a bug-type error that
    cancels the pool), or one key always answers AccessDenied."""

    crash_after: int | None = None
    deny_key: str | None = None

    async def copy(
        self, source: VersionRef, bucket: str, key: str, *, attrs: ObjectAttrs | None = None,
        tags: Tags | None = None,
    ) -> str:  # fmt: skip
        if self.crash_after is not None:
            if self.crash_after == 0:
                raise Crash
            self.crash_after -= 1
        if key == self.deny_key:
            raise AccessDenied(f"denied: {key}")
        return await super().copy(source, bucket, key, attrs=attrs, tags=tags)

    async def put(
        self, bucket: str, key: str, data: bytes | bytearray, *, attrs: ObjectAttrs | None = None,
        tags: Tags | None = None,
    ) -> str:  # fmt: skip
        if key == self.deny_key:
            raise AccessDenied(f"denied: {key}")
        return await super().put(bucket, key, data, attrs=attrs, tags=tags)


async def many(store: MemoryStore, n: int) -> None:
    for bucket in ("bk", "t"):
        await store.create_bucket(bucket)
    await store.set_versioning("bk", True)
    for i in range(n):
        await store.put("bk", f"k{i:04d}", f"data {i}".encode())


async def test_resume_after_a_crash_mid_restore(tmp_path: Path) -> None:
    store = CrashingStore(clock=ManualClock(T0))
    await many(store, 200)
    at, bk, target = T0 + timedelta(hours=1), S3Url("bk"), S3Url("t")
    store.crash_after = 50
    with pytest.raises(Crash):
        await restore(store, bk, target, desired_at(store, bk, at), journal_dir=tmp_path)
    journals = [tmp_path / name for name in os.listdir(tmp_path)]
    # finished copies the crash overtook before they were journaled are simply redone or,
    # as here, recognised by the listing: the journal may lag, never lead
    journaled = len(journals[0].read_text().splitlines()) - 1  # minus the header
    assert len(journals) == 1 and 1 <= journaled <= 50
    store.crash_after = None
    result = await restore(store, bk, target, desired_at(store, bk, at), journal_dir=tmp_path)
    assert result.failed == 0 and result.verified
    # the listing proves the 50 copies done (same size and MD5 ETag): skipped as unchanged,
    # not "resumed", which counts only what the journal alone could prove
    assert result.copied == 150 and result.skipped == 50 and result.resumed == 0
    assert len(await live(store, "t")) == 200
    assert not os.listdir(tmp_path)  # completed and verified: journal removed


async def test_journal_skips_copies_the_listing_cannot_prove(tmp_path: Path) -> None:
    backup_store = MemoryStore(clock=ManualClock(T0))
    target_store = CrashingStore(clock=ManualClock(T0))
    await many(backup_store, 3)
    await target_store.create_bucket("t")
    await backup_store.put("bk", "big", b"x" * (17 * 1024 * 1024))  # one part, MD5 ETag
    at, bk, target = T0 + timedelta(hours=1), S3Url("bk"), S3Url("t")
    kw = {"target_store": target_store, "same_endpoint": False, "journal_dir": tmp_path}
    target_store.deny_key = "k0001"
    first = await restore(backup_store, bk, target, desired_at(backup_store, bk, at), **kw)
    assert first.failed == 1 and first.copied == 3 and first.journal is not None
    # across endpoints "big" was streamed in parts: the target's ETag is a multipart one,
    # so size and ETag cannot tell that it is done; only the journal can
    target_store.deny_key = None
    second = await restore(backup_store, bk, target, desired_at(backup_store, bk, at), **kw)
    assert second.copied == 1 and second.failed == 0 and second.verified
    assert second.plan.by_reason[Reason.DONE_EARLIER.value] == 1 == second.resumed
    # the completed run kept that one proof: rerunning the same restore copies nothing
    [kept] = [json.loads(line) for line in (tmp_path / os.listdir(tmp_path)[0]).open()][1:]
    assert (kept["op"], kept["key"], kept["size"]) == ("proof", "big", 17 * 1024 * 1024)
    third = await restore(backup_store, bk, target, desired_at(backup_store, bk, at), **kw)
    assert (third.copied, third.failed) == (0, 0) and third.verified
    # skipped only because of the journal's proof: that is what "resumed" counts
    assert third.plan.by_reason[Reason.DONE_EARLIER.value] == 1 == third.resumed
    # every target object is as new as its version (one clock): headers compared, 2 HEADs each
    assert third.checks == 2 * 4


def test_journal_survives_a_torn_last_line(tmp_path: Path) -> None:
    journal = Journal(tmp_path, "x", {"mode": "rollback"})
    journal.open()
    journal.copied("a", "v1", "e-2", "f", 5)
    journal.copied("b", "v2", "e", "e", 5)
    journal.close()
    with open(journal.path, "a") as f:
        f.write('{"op": "copy", "key": "c", "vers')  # the crash hit mid-line
    again = Journal(tmp_path, "x", {})
    again.load()
    assert again.earlier == 2 and again.copies == {"a": JournalEntry("v1", "f", 5, "e-2")}


async def test_plan_is_one_action_per_key_in_order() -> None:
    d = [ObjectVersion(k, "v", T0, 1, "e1") for k in ("a", "c", "d")]
    t = [ObjectVersion(k, "w", T0, 1, "e1" if k == "a" else "e2") for k in ("a", "b", "d")]
    plan = [a async for a in plan_restore(aiter_list(d), aiter_list(t), Mode.ROLLBACK)]
    assert [(a.key, a.kind) for a in plan] == [
        ("a", ActionKind.SKIP), ("b", ActionKind.DELETE), ("c", ActionKind.COPY),
        ("d", ActionKind.COPY),
    ]  # fmt: skip
