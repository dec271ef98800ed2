"""snapshot, snapshots, show, ls and diff through the CLI, against the real server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from backup_my_bucket.catalog.index import SnapshotMeta
from backup_my_bucket.clock import SystemClock
from backup_my_bucket.engine import backup as backup_engine
from backup_my_bucket.engine.cut import POLL
from backup_my_bucket.errors import ExitCode
from backup_my_bucket.storage.iterate import iter_versions
from backup_my_bucket.storage.protocol import ObjectStore

from ..conftest import unique_bucket
from .conftest import bmb, dry_run_lines

pytestmark = pytest.mark.s3


async def test_snapshot_workflow(
    cli_env: None, s3_store: ObjectStore, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bucket = unique_bucket("cli")
    await s3_store.create_bucket(bucket)
    await s3_store.set_versioning(bucket, True)
    for key in ["photos/a.jpg", "photos/b.jpg", "docs/readme.txt", "caf\u00e9 menu.txt"]:
        await s3_store.put(bucket, key, key.encode())
    await asyncio.sleep(1.1)

    code, out, err = await bmb(
        capsys, "--json", "snapshot", "--backup", f"s3://{bucket}", "--tag", "first"
    )
    assert code == 0, err
    first = json.loads(out)
    assert set(first) >= {"id", "at", "keys", "bytes", "backup"}
    assert first["keys"] == 4 and first["backup"] == f"s3://{bucket}"
    assert first["bytes"] == sum(
        len(k.encode())
        for k in ["photos/a.jpg", "photos/b.jpg", "docs/readme.txt", "caf\u00e9 menu.txt"]
    )

    await s3_store.put(bucket, "photos/a.jpg", b"overwritten by a bug")
    await s3_store.delete(bucket, "docs/readme.txt")
    await s3_store.put(bucket, "new.txt", b"n")
    await asyncio.sleep(1.1)
    code, out, _ = await bmb(capsys, "--json", "snapshot", "--backup", f"s3://{bucket}")
    second = json.loads(out)

    code, _, err = await bmb(capsys, "--json", "snapshots")  # snapshots live with the backup
    assert code == ExitCode.USAGE and "--backup" in err
    code, out, _ = await bmb(capsys, "--json", "snapshots", "--backup", f"s3://{bucket}")
    assert code == 0
    assert [json.loads(line)["id"] for line in out.splitlines()] == [first["id"], second["id"]]

    code, out, _ = await bmb(
        capsys, "--json", "show", first["id"][:17], "--backup", f"s3://{bucket}"
    )
    assert code == 0 and json.loads(out)["tags"] == ["first"]

    backup = ["--backup", f"s3://{bucket}"]
    code, out, _ = await bmb(capsys, "--json", "ls", first["id"], "--prefix", "photos/", *backup)
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["key"] for r in rows] == ["photos/a.jpg", "photos/b.jpg"]
    assert set(rows[0]) == {"key", "version_id", "size", "etag", "last_modified"}

    code, out, _ = await bmb(capsys, "--json", "diff", first["id"], second["id"], *backup)
    changes = {json.loads(line)["key"]: json.loads(line)["change"] for line in out.splitlines()}
    assert changes == {"photos/a.jpg": "changed", "docs/readme.txt": "removed", "new.txt": "added"}

    await s3_store.put(bucket, "later.txt", b"l")
    code, out, _ = await bmb(capsys, "--json", "diff", "latest", "live", *backup)
    assert [json.loads(line)["key"] for line in out.splitlines()] == ["later.txt"]

    code, _, err = await bmb(capsys, "show", "nope", *backup)
    assert code == ExitCode.NOT_FOUND and "no snapshot 'nope'" in err


async def test_snapshot_errors(
    cli_env: None, s3_store: ObjectStore, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = await bmb(capsys, "snapshot", "--backup", "s3://bmb-missing-bucket-x")
    assert code == ExitCode.NOT_FOUND and "does not exist" in err and "Traceback" not in err
    bucket = unique_bucket("unv")
    await s3_store.create_bucket(bucket)
    code, _, err = await bmb(capsys, "snapshot", "--backup", f"s3://{bucket}")
    assert code == ExitCode.FAILURE and "versioning is not enabled" in err and "hint:" in err
    code, _, err = await bmb(capsys, "snapshot", "--backup", f"s3://{bucket}", "--at", "yesterday")
    assert code == ExitCode.USAGE and "not a time" in err


async def test_catalog_in_the_backup_bucket(
    cli_env: None, s3_store: ObjectStore, capsys: pytest.CaptureFixture[str]
) -> None:
    """The default catalog lives in the backup bucket, in its reserved folder, which no
    snapshot includes; a --catalog elsewhere inside the backup location is refused."""
    bucket = unique_bucket("incat")
    await s3_store.create_bucket(bucket)
    await s3_store.set_versioning(bucket, True)
    await s3_store.put(bucket, "data/x", b"x")
    await asyncio.sleep(1.1)
    for _ in range(2):  # the second snapshot must not see the first one's catalog files
        code, out, err = await bmb(capsys, "--json", "snapshot", "--backup", f"s3://{bucket}")
        assert code == 0, err
        assert json.loads(out)["keys"] == 1
        await asyncio.sleep(1.1)
    keys = {v.key async for v in iter_versions(s3_store, bucket) if not v.is_delete_marker}
    assert {k for k in keys if not k.startswith(".backup-my-bucket/")} == {"data/x"}
    assert ".backup-my-bucket/location.json" in keys
    assert sum(k.startswith(".backup-my-bucket/catalog/snapshots/") for k in keys) == 2
    code, out, _ = await bmb(capsys, "--json", "snapshots", "--backup", f"s3://{bucket}")
    assert len(out.splitlines()) == 2
    nested = ["--catalog", f"s3://{bucket}/.bmb/", "snapshot", "--backup", f"s3://{bucket}"]
    code, _, err = await bmb(capsys, *nested)
    assert code == ExitCode.USAGE and "inside the backup location" in err and "migrate" in err


async def test_backup_is_sync_then_snapshot(
    cli_env: None,
    s3_store: ObjectStore,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waits: list[float] = []
    real_sleep = SystemClock.sleep

    async def sleep(self: SystemClock, seconds: float) -> None:
        waits.append(seconds)
        await real_sleep(self, seconds)

    monkeypatch.setattr(SystemClock, "sleep", sleep)
    listings = []  # the snapshots that listed the backup bucket themselves
    real_take = backup_engine.take_snapshot

    async def take_snapshot(*args: Any, **kwargs: Any) -> SnapshotMeta:
        listings.append(await real_take(*args, **kwargs))
        return listings[-1]

    monkeypatch.setattr(backup_engine, "take_snapshot", take_snapshot)
    source, target = unique_bucket("bsrc"), unique_bucket("bdst")
    await s3_store.create_bucket(source)
    await s3_store.create_bucket(target)
    await s3_store.set_versioning(target, True)
    for i in range(5):
        await s3_store.put(source, f"f/{i}", bytes(i))
    args = ["--json", "backup", "--source", f"s3://{source}", "--backup", f"s3://{target}"]
    code, out, err = await bmb(capsys, *args, "--dry-run")
    assert code == 0, err
    actions, summary = dry_run_lines(out)
    assert [(a["action"], a["key"]) for a in actions] == [("copy", f"f/{i}") for i in range(5)]
    assert summary == {"sync": summary["sync"], "snapshot": None}
    assert summary["sync"]["dry_run"] is True
    code, out, err = await bmb(capsys, *args, "--tag", "nightly")
    assert code == 0, err
    result = json.loads(out)
    assert result["sync"]["copied"] == 5
    assert result["snapshot"]["keys"] == 5 and result["snapshot"]["source"] == f"s3://{source}"
    assert result["snapshot"]["tags"] == ["nightly"]
    # till the server's clock left the second of its copies (rule 8), asking every POLL s
    assert waits and set(waits) == {POLL} and sum(waits) <= 1.0 + POLL
    waited = len(waits)
    code, out, _ = await bmb(capsys, *args)
    again = json.loads(out)
    assert again["sync"]["copied"] == 0 and again["snapshot"]["keys"] == 5
    assert again["snapshot"]["id"] != result["snapshot"]["id"]
    assert len(waits) == waited  # nothing written, nothing seen after the cut: no wait
    # nor a second listing: the sync's listing of the backup is the state at its T
    assert len(listings) == 1
    code, out, err = await bmb(
        capsys, "--json", "snapshot", "--backup", f"s3://{target}", "--at", again["snapshot"]["at"]
    )
    assert code == 0, err
    fresh = json.loads(out)
    assert (fresh["at"], fresh["keys"]) == (again["snapshot"]["at"], 5)

    async def rows(snapshot_id: str) -> list[dict[str, Any]]:
        code, out, err = await bmb(
            capsys, "--json", "ls", snapshot_id, "--backup", f"s3://{target}"
        )
        assert code == 0, err
        return [json.loads(line) for line in out.splitlines()]

    listed = await rows(again["snapshot"]["id"])
    assert len(listed) == 5 and listed == await rows(fresh["id"])
    await s3_store.put(source, "f/new", b"new")
    code, out, _ = await bmb(capsys, *args)
    assert json.loads(out)["sync"]["copied"] == 1 and json.loads(out)["snapshot"]["keys"] == 6
    assert len(waits) > waited  # a copy: the snapshot waits for the next second again
    assert len(listings) == 2  # and lists the bucket itself


async def test_restore_a_snapshot_by_id_into_its_source(
    cli_env: None, s3_store: ObjectStore, capsys: pytest.CaptureFixture[str]
) -> None:
    source, target = unique_bucket("rsrc"), unique_bucket("rdst")
    await s3_store.create_bucket(source)
    await s3_store.create_bucket(target)
    await s3_store.set_versioning(target, True)
    original = {f"k{i}": f"v{i}".encode() for i in range(6)}
    for key, data in original.items():
        await s3_store.put(source, key, data)
    args = ["--source", f"s3://{source}", "--backup", f"s3://{target}"]
    code, out, err = await bmb(capsys, "--json", "backup", *args)
    assert code == 0, err
    snapshot_id = json.loads(out)["snapshot"]["id"]
    await s3_store.put(source, "k1", b"broken")
    await s3_store.delete(source, "k2")
    await s3_store.put(source, "extra", b"written after the snapshot")

    code, out, err = await bmb(
        capsys, "--json", "restore", snapshot_id[:15], "--dry-run", "--backup", f"s3://{target}"
    )
    assert code == 0, err
    actions, summary = dry_run_lines(out)
    assert summary["dry_run"] is True and summary["copied"] == 2
    assert [(a["action"], a["key"], a["reason"]) for a in actions] == [
        ("delete", "extra", "not in the restoration point"),
        ("copy", "k1", "differs from the restoration point"),
        ("copy", "k2", "missing in the target"),
    ]
    code, out, err = await bmb(capsys, "--json", "restore", "latest", "--backup", f"s3://{target}")
    assert code == ExitCode.USAGE and out == "", err  # deletes and overwrites: --yes, or a TTY
    assert "would delete 1 object and overwrite 1 object" in err and "--yes" in err
    code, out, err = await bmb(
        capsys, "--json", "restore", "latest", "--backup", f"s3://{target}", "--yes"
    )
    assert code == 0, err
    result = json.loads(out)
    assert (result["copied"], result["deleted"], result["verified"]) == (2, 1, True)
    state = {}
    async for v in iter_versions(s3_store, source):
        if v.is_latest and not v.is_delete_marker:
            state[v.key] = b"".join([c async for c in s3_store.get(source, v.key)])
    assert state == original
