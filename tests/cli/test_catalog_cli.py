"""The backup bucket carries its catalog: old local catalogs move in once, a catalog kept
elsewhere must be the one the bucket names, damaged snapshots stay their own problem."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from backup_my_bucket.catalog import LocalCatalog
from backup_my_bucket.clock import SYSTEM_CLOCK
from backup_my_bucket.engine.snapshot import take_snapshot
from backup_my_bucket.errors import ExitCode
from backup_my_bucket.model import S3Url
from backup_my_bucket.storage.iterate import iter_versions
from backup_my_bucket.storage.protocol import ObjectStore

from ..conftest import S3Server, is_data, unique_bucket
from .conftest import bmb, source_and_backup

pytestmark = pytest.mark.s3
CATALOG = ".backup-my-bucket/catalog/"


async def backup_bucket(store: ObjectStore, label: str) -> str:
    bucket = unique_bucket(label)
    await store.create_bucket(bucket)
    await store.set_versioning(bucket, True)
    return bucket


async def data_versions(store: ObjectStore, bucket: str) -> list[tuple[str, str]]:
    return [(v.key, v.version_id) async for v in iter_versions(store, bucket) if is_data(v.key)]


async def ids(capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    code, out, err = await bmb(capsys, "--json", "snapshots", *args)
    assert code == 0, err
    return [json.loads(line)["id"] for line in out.splitlines()]


async def test_old_local_catalogs_move_into_the_bucket_once(
    cli_env: None, s3_server: S3Server, s3_store: ObjectStore, capsys: pytest.CaptureFixture[str]
) -> None:
    bak = await backup_bucket(s3_store, "mig")
    url = S3Url(bak)
    old_root = Path(__import__("platformdirs").user_data_dir("backup-my-bucket")) / "catalogs"
    port = s3_server.endpoint_url.rsplit(":", 1)[1]
    old_dirs = [old_root / f"127.0.0.1_{port}" / bak, old_root / "aws" / bak]
    taken = []
    for round_, old in enumerate(old_dirs):  # what earlier versions did: one per spelling
        await s3_store.put(bak, "a", f"v{round_}".encode())
        await asyncio.sleep(1.1)
        meta = await take_snapshot(s3_store, url, LocalCatalog(old, SYSTEM_CLOCK), SYSTEM_CLOCK)
        taken.append(meta.id)
    await s3_store.put(bak, "a", b"v2")
    await asyncio.sleep(1.1)
    backup = ["--backup", f"s3://{bak}"]

    code, out, err = await bmb(capsys, "--json", "snapshots", *backup)
    assert code == 0 and out == ""
    assert err.count("still only in the old local catalog") == 2 and "catalog migrate" in err
    before = await data_versions(s3_store, bak)
    code, _, err = await bmb(capsys, "gc", *backup, "--keep-last", "1")
    assert code == ExitCode.USAGE and "gc would delete versions they need" in err
    assert await data_versions(s3_store, bak) == before

    code, out, err = await bmb(capsys, "--json", "catalog", "migrate", *backup, "--dry-run")
    assert code == 0, err
    plan = json.loads(out)
    assert sorted(plan["copied"]) == taken and plan["retired"] == [] and plan["dry_run"]
    assert all(old.is_dir() for old in old_dirs) and await ids(capsys, *backup) == []

    code, out, err = await bmb(capsys, "--json", "catalog", "migrate", *backup)
    assert code == 0, err
    done = json.loads(out)
    assert sorted(done["copied"]) == taken and done["bound"] is True
    assert sorted(done["retired"]) == sorted(str(old) + ".migrated" for old in old_dirs)
    assert not any(old.exists() for old in old_dirs)
    code, out, err = await bmb(capsys, "--json", "snapshots", *backup)
    assert code == 0 and "old local catalog" not in err
    assert [json.loads(line)["id"] for line in out.splitlines()] == taken
    code, out, err = await bmb(capsys, "--json", "catalog", "migrate", *backup)  # once only
    assert code == 0 and json.loads(out)["copied"] == [] and json.loads(out)["bound"] is False

    code, out, err = await bmb(capsys, "--json", "gc", *backup, "--keep-last", "1")
    assert code == 0, err
    assert json.loads(out)["snapshots_kept"] == [taken[1]]
    code, _, err = await bmb(capsys, "verify", taken[1], *backup)
    assert code == 0, err


async def test_a_catalog_kept_elsewhere_must_be_the_one_the_bucket_names(
    cli_env: None, s3_store: ObjectStore, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bak = await backup_bucket(s3_store, "bound")
    await s3_store.put(bak, "a", b"1")
    await asyncio.sleep(1.1)
    backup = ["--backup", f"s3://{bak}"]
    mine, other = str(tmp_path / "mine"), str(tmp_path / "other")
    code, out, err = await bmb(capsys, "--json", "--catalog", mine, "snapshot", *backup)
    assert code == 0, err
    first = json.loads(out)["id"]
    assert await ids(capsys, *backup) == [first]  # the bucket names it: found without --catalog

    before = await data_versions(s3_store, bak)
    for command in (["gc", *backup, "--keep-last", "1"], ["snapshot", *backup]):
        code, _, err = await bmb(capsys, "--catalog", other, *command)
        assert code == ExitCode.USAGE, err
        assert f"{other} is not the catalog of s3://{bak}" in err and mine in err
    assert await data_versions(s3_store, bak) == before
    code, out, err = await bmb(capsys, "--json", "--catalog", other, "snapshots", *backup)
    assert code == 0 and out == "" and "reading it anyway" in err  # reading: a warning

    # the named directory emptied and made again: the message says what happened there
    shutil.move(mine, f"{mine}.saved")
    Path(mine).mkdir()
    code, _, err = await bmb(capsys, "--catalog", mine, "snapshot", *backup)
    assert code == ExitCode.USAGE and "whose catalog there has been emptied" in err, err
    Path(mine).rmdir()
    shutil.move(f"{mine}.saved", mine)

    # move it into the bucket: the local directory is then no longer the backup's catalog
    code, out, err = await bmb(capsys, "--json", "catalog", "migrate", *backup)
    assert code == 0, err
    assert json.loads(out)["copied"] == [first] and json.loads(out)["bound"] is True
    assert Path(mine).is_dir()  # a --catalog directory is left as it was
    code, _, err = await bmb(capsys, "--catalog", mine, "gc", *backup, "--keep-last", "1")
    assert code == ExitCode.USAGE and "is not the catalog of" in err
    code, out, err = await bmb(capsys, "--json", "catalog", "info", *backup)
    assert code == 0, err
    info = json.loads(out)
    assert info["catalog"] == f"s3://{bak}/{CATALOG}" and info["snapshots"] == 1

    # a bucket whose catalog is a directory on another machine: said so, not "no snapshots"
    record = json.dumps(
        {"format_version": "1.0", "backup": f"s3://{bak}", "catalog": "/srv/bmb/catalog",
         "catalog_id": "0123", "host": "backup-host.example", "bound_at": "2026-01-01T00:00:00Z"}
    ).encode()  # fmt: skip
    await s3_store.put(bak, ".backup-my-bucket/location.json", record)
    code, _, err = await bmb(capsys, "snapshots", *backup)
    assert code == ExitCode.FAILURE and "backup-host.example" in err and "/srv/bmb" in err


async def test_a_damaged_snapshot_affects_only_itself(
    cli_env: None, s3_store: ObjectStore, capsys: pytest.CaptureFixture[str]
) -> None:
    src, bak = await source_and_backup(s3_store, "dmg")
    urls = ["--source", f"s3://{src}", "--backup", f"s3://{bak}"]
    backup = urls[2:]
    taken = []
    for round_ in range(3):
        await s3_store.put(src, "a", f"v{round_}".encode())
        await s3_store.put(src, f"only{round_}", b"x")
        code, out, err = await bmb(capsys, "--json", "backup", *urls)
        assert code == 0, err
        taken.append(json.loads(out)["snapshot"]["id"])
        await asyncio.sleep(1.1)
    manifest = f"{CATALOG}snapshots/{taken[1]}.json"
    raw = b"".join([c async for c in s3_store.get(bak, manifest)])
    await s3_store.put(bak, manifest, raw[: len(raw) // 2])  # truncated

    code, out, err = await bmb(capsys, "--json", "snapshots", *backup)
    assert code == ExitCode.PARTIAL, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [x["id"] for x in lines] == [taken[0], taken[2], taken[1]]
    assert lines[2]["damaged"] is True and "unreadable" in lines[2]["problem"]
    assert taken[1] in err and "catalog remove" in err
    dst = unique_bucket("dmg-dst")
    await s3_store.create_bucket(dst)
    code, out, err = await bmb(
        capsys, "--json", "restore", taken[0], *backup, "--to", f"s3://{dst}"
    )
    assert code == 0, err
    for command in ("show", "verify"):
        code, _, err = await bmb(capsys, command, taken[2], *backup)
        assert code == 0, err
    code, _, err = await bmb(capsys, "show", taken[1], *backup)
    assert code == ExitCode.FAILURE and "is damaged" in err

    before = await data_versions(s3_store, bak)
    code, _, err = await bmb(capsys, "gc", *backup, "--keep-last", "1")
    assert code == ExitCode.FAILURE and taken[1] in err and "catalog remove" in err
    assert await data_versions(s3_store, bak) == before  # it stopped rather than guess
    code, _, err = await bmb(capsys, "catalog", "remove", taken[1], *backup)
    assert code == 0, err
    code, out, err = await bmb(capsys, "--json", "gc", *backup, "--keep-last", "1")
    assert code == 0, err
    assert json.loads(out)["snapshots_kept"] == [taken[2]]


async def test_missing_backup_bucket_and_a_source_with_the_reserved_folder(
    cli_env: None, s3_store: ObjectStore, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await bmb(capsys, "snapshots", "--backup", "s3://bmb-no-such-bucket-q7")
    assert code == ExitCode.NOT_FOUND and out == "" and "does not exist" in err

    src, bak = await source_and_backup(s3_store, "res")
    for key in ("a", ".backup-my-bucket/catalog/snapshots/x.json", ".backup-my-bucket-2/b"):
        await s3_store.put(src, key, b"1")
    sync = ["--json", "sync", "--source", f"s3://{src}", "--backup", f"s3://{bak}"]
    code, _, err = await bmb(capsys, *sync)
    assert code == ExitCode.USAGE and ".backup-my-bucket/" in err and "--exclude" in err
    assert await data_versions(s3_store, bak) == []  # refused before any copy
    code, out, err = await bmb(capsys, *sync, "--exclude", ".backup-my-bucket/*")
    assert code == 0, err
    assert sorted(k for k, _ in await data_versions(s3_store, bak)) == [
        ".backup-my-bucket-2/b",
        "a",
    ]
