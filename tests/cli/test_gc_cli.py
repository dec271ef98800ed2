"""gc through the CLI against the real server: dry-run, then the real thing, under the lock."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backup_my_bucket.catalog import LockInfo, S3Catalog
from backup_my_bucket.catalog.location import RESERVED, default_catalog_url
from backup_my_bucket.clock import SYSTEM_CLOCK
from backup_my_bucket.engine.gc import GcPartialFailure, run_gc
from backup_my_bucket.engine.retention import RetentionPolicy, SnapshotRef
from backup_my_bucket.errors import ExitCode, ItemFailure
from backup_my_bucket.model import ObjectVersion, S3Url, VersionRef
from backup_my_bucket.storage.iterate import iter_versions
from backup_my_bucket.storage.protocol import ObjectStore
from backup_my_bucket.storage.s3 import S3Store

from ..catalog.test_catalog import dead_pid
from ..conftest import S3Server, is_data, unique_bucket
from .conftest import bmb

pytestmark = pytest.mark.s3


async def test_gc_frees_only_what_removed_snapshots_needed(
    cli_env: None,
    s3_store: ObjectStore,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bucket = unique_bucket("gc")
    await s3_store.create_bucket(bucket)
    await s3_store.set_versioning(bucket, True)
    backup = f"s3://{bucket}"
    ids = []
    for round_ in range(3):
        await s3_store.put(bucket, "a", f"a{round_}".encode())
        if round_ == 0:
            await s3_store.put(bucket, "gone", b"only in the first snapshot")
        if round_ == 1:
            await s3_store.delete(bucket, "gone")
        await asyncio.sleep(1.1)
        code, out, err = await bmb(capsys, "--json", "snapshot", "--backup", backup)
        assert code == 0, err
        ids.append(json.loads(out)["id"])
        await asyncio.sleep(1.1)

    before = await data_versions(s3_store, bucket)
    code, out, err = await bmb(
        capsys, "--json", "gc", "--backup", backup, "--keep-last", "2", "--dry-run"
    )
    assert code == 0, err
    plan = json.loads(out)
    assert plan["dry_run"] is True and plan["snapshots_removed"] == [ids[0]]
    assert await data_versions(s3_store, bucket) == before  # nothing touched

    records = reserved_entries(await versions_of(s3_store, bucket))
    assert any(len(entries) > 1 for entries in records.values())  # the locks' past versions
    code, out, err = await bmb(capsys, "--json", "gc", "--backup", backup, "--keep-last", "2")
    assert code == 0, err
    done = json.loads(out)
    check_tidied(records, reserved_entries(await versions_of(s3_store, bucket)), ids[0])
    assert done["catalog_versions_removed"] > 0
    # a0 and "gone" were needed only by the first snapshot; the marker on "gone" is current
    assert done["snapshots_removed"] == [ids[0]]
    assert set(done["snapshots_kept"]) == set(ids[1:])
    assert done["versions_deleted"] == 2
    assert done["bytes_freed"] == len(b"a0") + len(b"only in the first snapshot")
    code, out, _ = await bmb(capsys, "--json", "snapshots", "--backup", backup)
    assert [json.loads(line)["id"] for line in out.splitlines()] == ids[1:]
    code, out, _ = await bmb(capsys, "--json", "ls", ids[1], "--backup", backup)
    assert [json.loads(line)["key"] for line in out.splitlines()] == ["a"]

    code, out, _ = await bmb(capsys, "--json", "gc", "--backup", backup, "--keep-last", "2")
    assert json.loads(out)["versions_deleted"] == 0  # a second gc has nothing to do


async def data_versions(store: ObjectStore, bucket: str) -> list[ObjectVersion]:
    """The bucket's versions without the reserved folder (the catalog, the records)."""
    return [v for v in await versions_of(store, bucket) if is_data(v.key)]


async def versions_of(store: ObjectStore, bucket: str) -> list[ObjectVersion]:
    return [v async for v in iter_versions(store, bucket)]


def reserved_entries(listed: list[ObjectVersion]) -> dict[str, list[ObjectVersion]]:
    found: dict[str, list[ObjectVersion]] = {}
    for v in listed:
        if v.key.startswith(RESERVED):
            found.setdefault(v.key, []).append(v)
    return found


def check_tidied(
    before: dict[str, list[ObjectVersion]], after: dict[str, list[ObjectVersion]], removed: str
) -> None:
    """gc kept the reserved folder to its current entries (rule 25): one per key (gc's own
    lease aside), each the one before gc (but what gc itself writes), a removed snapshot's
    manifest and index only as a delete marker."""
    lock = after.pop(f"{RESERVED}catalog/lock.json")
    assert len(lock) == 2 and lock[0].is_delete_marker  # gc's own lease, released after
    assert {k: len(v) for k, v in after.items() if len(v) > 1} == {}
    written_by_gc = (f"{RESERVED}catalog/lock.json", f"{RESERVED}history.json")
    for key, (top, *_) in before.items():
        if key not in written_by_gc and removed not in key:
            assert after[key][0].version_id == top.version_id, key
    for key in (f"{RESERVED}catalog/snapshots/{removed}.json",
                f"{RESERVED}catalog/index/{removed}.parquet"):  # fmt: skip
        assert [v.is_delete_marker for v in after[key]] == [True]


async def test_gc_refuses_empty_policy_and_respects_the_lock(
    cli_env: None,
    s3_store: ObjectStore,
    capsys: pytest.CaptureFixture[str],
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    bucket = unique_bucket("gcl")
    await s3_store.create_bucket(bucket)
    await s3_store.set_versioning(bucket, True)
    code, _, err = await bmb(capsys, "gc", "--backup", f"s3://{bucket}")
    assert code == ExitCode.USAGE and "hint:" in err
    catalog = tmp_path / "cat"
    (catalog).mkdir()
    (catalog / "lock.json").write_text(
        json.dumps({"token": "t", "purpose": "snapshot", "owner": "other:1",
                    "acquired": "2026-01-01T00:00:00Z", "expires": "2999-01-01T00:00:00Z"})
    )  # fmt: skip
    code, _, err = await bmb(
        capsys, "--catalog", str(catalog), "gc", "--backup", f"s3://{bucket}", "--keep-last", "1"
    )
    assert code == ExitCode.LOCKED and "locked by snapshot" in err
    # the same lock left on this host by a process that is gone (killed): taken over at once
    lock = json.loads((catalog / "lock.json").read_text())
    lock.update(host=socket.gethostname(), pid=dead_pid(), owner=f"{socket.gethostname()}:x")
    (catalog / "lock.json").write_text(json.dumps(lock))
    code, _, err = await bmb(
        capsys, "--catalog", str(catalog), "gc", "--backup", f"s3://{bucket}", "--keep-last", "1"
    )
    assert code == 0 and "no longer running" in err
    assert not (catalog / "lock.json").exists()


async def test_gc_sweeps_what_killed_runs_left_in_the_catalog(
    cli_env: None,
    s3_store: ObjectStore,
    capsys: pytest.CaptureFixture[str],
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    """A snapshot killed before its manifest, or a gc killed between a manifest and its index,
    leaves an index that no manifest lists (and maybe a temporary file): the next gc removes
    them, under the lock, before it deletes versions; --dry-run only names them."""
    bucket = unique_bucket("gcs")
    await s3_store.create_bucket(bucket)
    await s3_store.set_versioning(bucket, True)
    await s3_store.put(bucket, "a", b"a")
    await asyncio.sleep(1.1)
    catalog = tmp_path / "cat"
    args = ["--json", "--catalog", str(catalog)]
    code, out, err = await bmb(capsys, *args, "snapshot", "--backup", f"s3://{bucket}")
    assert code == 0, err
    snap = json.loads(out)["id"]
    orphan = catalog / "index" / "20200101T000000Z-dead00.parquet"
    orphan.write_bytes((catalog / "index" / f"{snap}.parquet").read_bytes())
    partial = catalog / "snapshots" / ".20200101T000000Z-dead01.json.x1y2.tmp"
    partial.write_text("{")
    gc = [*args, "gc", "--backup", f"s3://{bucket}", "--keep-last", "1"]
    code, out, err = await bmb(capsys, *gc, "--dry-run")
    assert code == 0, err
    leftovers = ["index/" + orphan.name, "snapshots/" + partial.name]
    assert json.loads(out)["catalog_leftovers_removed"] == leftovers
    assert orphan.exists() and partial.exists()
    code, out, err = await bmb(capsys, *gc)
    assert code == 0, err
    assert json.loads(out)["catalog_leftovers_removed"] == leftovers
    assert not orphan.exists() and not partial.exists()
    assert (catalog / "index" / f"{snap}.parquet").exists()
    code, out, err = await bmb(capsys, *gc[1:])  # the text output names them too
    assert code == 0 and "interrupted runs" not in out


async def _two_rounds(
    s3_store: ObjectStore, bucket: str, capsys: pytest.CaptureFixture[str]
) -> str:
    """Keys a and b written twice, a snapshot after each round; return the first round's
    version ids of a and b (what gc --keep-last 1 deletes), in key order."""
    old = []
    for round_ in range(2):
        for key in ("a", "b"):
            version = await s3_store.put(bucket, key, f"{key}{round_}".encode())
            if round_ == 0:
                old.append(version)
        await asyncio.sleep(1.1)
        code, _, err = await bmb(capsys, "snapshot", "--backup", f"s3://{bucket}")
        assert code == 0, err
        await asyncio.sleep(1.1)
    return ",".join(old)


async def test_gc_refused_without_object_lock_fails_with_the_keys(
    cli_env: None,
    s3_store: ObjectStore,
    readonly_s3_server: S3Server,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Credentials that may not write: the gc command cannot take the catalog lock (it lives
    in the backup bucket) and stops before any deletion (exit 1, the permission named). The
    engine given such credentials (a gc whose lock were elsewhere): SeaweedFS refuses each
    version with the very answer it gives a locked one (AccessDenied: Access Denied.), and
    since nothing is locked, each is a failure: exit 3, listed."""
    bucket = unique_bucket("gcd")
    await s3_store.create_bucket(bucket)
    await s3_store.set_versioning(bucket, True)
    old = (await _two_rounds(s3_store, bucket, capsys)).split(",")
    for name, value in readonly_s3_server.env().items():
        monkeypatch.setenv(name, value)
    code, out, err = await bmb(
        capsys, "--json", "gc", "--backup", f"s3://{bucket}", "--keep-last", "1"
    )
    assert out == ""
    assert code == ExitCode.FAILURE and "access denied" in err and "lock.json" in err, err
    assert len(await data_versions(s3_store, bucket)) == 4  # nothing deleted

    catalog = S3Catalog(s3_store, default_catalog_url(S3Url(bucket)), tmp_path, SYSTEM_CLOCK)
    refs = [SnapshotRef(m.id, m.at) for m in await catalog.list()]
    removed: list[str] = []

    async def remove(ids: Sequence[str]) -> None:  # the catalog itself stays as it is
        removed.extend(ids)

    async with S3Store(readonly_s3_server.config()) as readonly:
        with pytest.raises(GcPartialFailure) as caught:
            await run_gc(
                readonly, bucket, "", refs, RetentionPolicy(keep_last=1), datetime.now(UTC),
                remove_snapshots=remove,
            )  # fmt: skip
    result = caught.value.result
    assert result.skipped_locked == () and result.versions_deleted == 0
    assert sorted((f.key, f.version_id) for f in result.failures) == [("a", old[0]), ("b", old[1])]
    assert "AccessDenied" in result.failures[0].reason and removed == [refs[0].id]
    assert len(await data_versions(s3_store, bucket)) == 4


async def test_gc_skips_and_reports_versions_under_object_lock(
    cli_env: None,
    s3_store: S3Store,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Retention in force and a legal hold: kept and reported, not failures (exit 0); a
    version whose retention has passed is deleted."""
    bucket = unique_bucket("gco")
    await (await s3_store.botocore()).create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    old = (await _two_rounds(s3_store, bucket, capsys)).split(",")
    until = datetime.now(UTC) + timedelta(hours=1)
    await (await s3_store.botocore()).put_object_retention(
        Bucket=bucket, Key="a", VersionId=old[0],
        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until},
    )  # fmt: skip
    await (await s3_store.botocore()).put_object_legal_hold(
        Bucket=bucket, Key="b", VersionId=old[1], LegalHold={"Status": "ON"}
    )
    code, out, err = await bmb(
        capsys, "--json", "gc", "--backup", f"s3://{bucket}", "--keep-last", "1"
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["failures"] == [] and result["versions_deleted"] == 0
    kept = sorted((f["key"], f["version_id"], f["reason"]) for f in result["skipped_locked"])
    assert [k[:2] for k in kept] == [("a", old[0]), ("b", old[1])]
    assert kept[0][2].startswith("kept by Object Lock: GOVERNANCE retention until ")
    assert kept[1][2] == "kept by Object Lock: a legal hold"
    await (await s3_store.botocore()).put_object_legal_hold(
        Bucket=bucket, Key="b", VersionId=old[1], LegalHold={"Status": "OFF"}
    )
    code, out, err = await bmb(capsys, "gc", "--backup", f"s3://{bucket}", "--keep-last", "1")
    assert code == 0, err
    assert "deleted 1 version" in out and f"skipped (locked): a {old[0]}: kept by" in out


async def test_gc_that_loses_its_lock_stops_with_exit_11(
    cli_env: None,
    s3_store: ObjectStore,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another process takes the catalog lock while gc deletes its first batch: gc stops
    before the next one (exit 11), and a rerun, once the lock is free, finishes the job."""
    bucket = unique_bucket("gclost")
    await s3_store.create_bucket(bucket)
    await s3_store.set_versioning(bucket, True)
    gate = asyncio.Semaphore(64)

    async def put(key: str, data: bytes) -> None:
        async with gate:
            await s3_store.put(bucket, key, data)

    keys = [f"k{i:04d}" for i in range(1100)]
    for round_ in range(2):  # 1,100 old versions: two batches (1,000 + 100)
        await asyncio.gather(*(put(k, f"{round_}".encode()) for k in keys))
        await asyncio.sleep(1.1)
    code, out, err = await bmb(capsys, "--json", "snapshot", "--backup", f"s3://{bucket}")
    assert code == 0, err
    snap = json.loads(out)["id"]
    lock_key = ".backup-my-bucket/catalog/lock.json"
    batches: list[int] = []
    original = S3Store.delete_versions

    async def steal_during_first(
        self: S3Store, bucket_: str, refs: Sequence[VersionRef]
    ) -> list[ItemFailure]:
        if bucket_ == bucket and not any(r.key.startswith(RESERVED) for r in refs):
            batches.append(len(refs))
            if len(batches) == 1:
                now = datetime.now(UTC)
                thief = LockInfo.new("snapshot", now, timedelta(hours=1))
                await self.put(bucket, lock_key, thief.dumps())
        return await original(self, bucket_, refs)

    monkeypatch.setattr(S3Store, "delete_versions", steal_during_first)
    gc = ["--json", "--workers", "1", "gc", "--backup", f"s3://{bucket}", "--keep-last", "1"]
    code, out, err = await bmb(capsys, *gc)
    assert code == ExitCode.LOCKED, err
    assert "lost the catalog lock" in err and "before its next batch of deletions" in err
    assert batches == [1000]
    assert len(await data_versions(s3_store, bucket)) == 2200 - 1000
    code, _, err = await bmb(capsys, *gc)  # the thief still holds it
    assert code == ExitCode.LOCKED and "locked by snapshot" in err

    await s3_store.delete(bucket, lock_key)  # the other holder finished
    code, out, err = await bmb(capsys, *gc)
    assert code == 0, err
    assert json.loads(out)["versions_deleted"] == 100
    assert len(await data_versions(s3_store, bucket)) == 1100
    code, _, err = await bmb(capsys, "verify", snap, "--backup", f"s3://{bucket}")
    assert code == 0, err
