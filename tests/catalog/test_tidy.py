"""The reserved folder's tidy (catalog/tidy.py): noncurrent entries go, a key's current entry
and a delete marker on top stay, a refused deletion (Object Lock) is left and counted, nothing
outside the folder is touched."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backup_my_bucket.catalog import S3Catalog
from backup_my_bucket.catalog.location import default_catalog_url, reserved_prefix
from backup_my_bucket.catalog.tidy import tidy_reserved
from backup_my_bucket.clock import ManualClock
from backup_my_bucket.engine.gc import GcPartialFailure, gc_catalog
from backup_my_bucket.engine.retention import RetentionPolicy
from backup_my_bucket.errors import ExitCode, ItemFailure
from backup_my_bucket.model import S3Url, VersionRef
from backup_my_bucket.storage.iterate import iter_versions
from backup_my_bucket.storage.memory import MemoryStore


async def _entries(store: MemoryStore, bucket: str) -> dict[str, list[tuple[str, bool]]]:
    found: dict[str, list[tuple[str, bool]]] = {}
    async for v in iter_versions(store, bucket):
        found.setdefault(v.key, []).append((v.version_id, v.is_delete_marker))
    return found


async def test_only_noncurrent_entries_of_the_folder_go() -> None:
    store = MemoryStore()
    await store.create_bucket("b")
    await store.set_versioning("b", True)
    backup = S3Url("b", "site/")
    folder = reserved_prefix(backup)
    for n in range(3):  # a record rewritten three times, a lock taken and released twice
        await store.put("b", folder + "history.json", b"%d" % n)
    for _ in range(2):
        await store.put("b", folder + "catalog/lock.json", b"lease")
        await store.delete("b", folder + "catalog/lock.json")
    await store.put("b", folder + "catalog/index/old.parquet", b"index")
    await store.delete("b", folder + "catalog/index/old.parquet")  # a removed snapshot's
    locked = await store.put("b", folder + "catalog/probe", b"first")
    store.lock("b", folder + "catalog/probe", locked, mode="COMPLIANCE",
               until=datetime.now(UTC) + timedelta(days=1))  # fmt: skip
    await store.put("b", folder + "catalog/probe", b"second")
    for n in range(2):  # data beside the folder, and a data key named like it
        await store.put("b", "site/a", b"%d" % n)
        await store.put("b", "site/.backup-my-bucket.txt", b"%d" % n)
    before = await _entries(store, "b")

    dry = await tidy_reserved(store, backup, dry_run=True)
    assert await _entries(store, "b") == before
    done = await tidy_reserved(store, backup)
    after = await _entries(store, "b")

    # history x2; lock.json: two leases and the older marker; the index; the locked probe
    assert (dry.deleted, done.deleted, len(done.refused)) == (7, 6, 1)
    assert dry.nbytes == 1 + 1 + 5 + 5 + 5 + 5 and done.nbytes == dry.nbytes - len(b"first")
    for key, entries in before.items():
        if key.startswith(folder):
            assert after[key][0] == entries[0]  # the current entry, a marker included
        else:
            assert after[key] == entries  # data is never touched
    assert after[folder + "history.json"] == before[folder + "history.json"][:1]
    assert after[folder + "catalog/lock.json"] == before[folder + "catalog/lock.json"][:1]
    assert after[folder + "catalog/index/old.parquet"][0][1] is True  # only its marker
    assert len(after[folder + "catalog/index/old.parquet"]) == 1
    assert after[folder + "catalog/probe"] == before[folder + "catalog/probe"]  # locked: kept
    again = await tidy_reserved(store, backup)
    assert again.deleted == 0
    assert [(f.key, f.version_id) for f in again.refused] == [(folder + "catalog/probe", locked)]


class RefusesOneKey(MemoryStore):
    """Refuses every deletion of one key, as a missing permission would (no Object Lock)."""

    refused_key = ""

    async def delete_versions(self, bucket: str, refs: Sequence[VersionRef]) -> list[ItemFailure]:
        mine = [r for r in refs if r.key == self.refused_key]
        done = await super().delete_versions(bucket, [r for r in refs if r not in mine])
        return done + [
            ItemFailure(r.key, r.version_id, "AccessDenied: Access Denied.") for r in mine
        ]


async def test_gc_reports_the_tidys_refusals_as_its_own(tmp_path: Path) -> None:
    """Rule 17 holds in the reserved folder too: a version Object Lock keeps is reported as
    kept (skipped_locked), any other refused deletion fails gc (exit 3) with its key."""
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    store = RefusesOneKey(clock)
    await store.create_bucket("b")
    await store.set_versioning("b", True)
    backup = S3Url("b")
    folder = reserved_prefix(backup)
    store.refused_key = folder + "history.json"
    old_history = await store.put("b", folder + "history.json", b"{}")
    await store.put("b", folder + "history.json", b"{}")
    locked = await store.put("b", folder + "probe", b"first")
    store.lock("b", folder + "probe", locked, legal_hold=True)
    await store.put("b", folder + "probe", b"second")
    catalog = S3Catalog(store, default_catalog_url(backup), tmp_path, clock)

    with pytest.raises(GcPartialFailure) as caught:
        await gc_catalog(store, catalog, backup, RetentionPolicy(keep_last=1), clock)
    result = caught.value.result
    assert caught.value.exit_code == ExitCode.PARTIAL
    assert [(f.key, f.version_id) for f in result.failures] == [(store.refused_key, old_history)]
    assert [(f.key, f.version_id) for f in result.skipped_locked] == [(folder + "probe", locked)]
    assert "legal hold" in result.skipped_locked[0].reason
