"""The reserved folder's tidy (catalog/tidy.py): noncurrent entries go, a key's current entry
and a delete marker on top stay, a refused deletion (Object Lock) is left and counted, nothing
outside the folder is touched."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from backup_my_bucket.catalog.location import reserved_prefix
from backup_my_bucket.catalog.tidy import tidy_reserved
from backup_my_bucket.model import S3Url
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
    assert (dry.deleted, done.deleted, done.refused) == (7, 6, 1)
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
    assert (again.deleted, again.refused) == (0, 1)
    (warning,) = again.warnings()
    assert "catalog/probe" in warning and "1 old version" in warning
