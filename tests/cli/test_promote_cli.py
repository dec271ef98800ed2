"""promote end to end on SeaweedFS: the primary is lost, the backup takes over."""

from __future__ import annotations

import json

import pytest

from backup_my_bucket.storage.iterate import iter_versions
from backup_my_bucket.storage.protocol import ObjectStore

from ..conftest import unique_bucket
from .conftest import bmb

pytestmark = pytest.mark.s3


async def live(store: ObjectStore, bucket: str) -> dict[str, bytes]:
    state = {}
    async for v in iter_versions(store, bucket):
        if v.is_latest and not v.is_delete_marker:
            state[v.key] = b"".join([c async for c in store.get(bucket, v.key)])
    return state


async def test_promote_a_snapshot_and_start_a_new_backup(
    cli_env: None, s3_store: ObjectStore, capsys: pytest.CaptureFixture[str]
) -> None:
    primary, old_backup = unique_bucket("prim"), unique_bucket("obak")
    new_primary, new_backup = unique_bucket("nprim"), unique_bucket("nbak")
    for bucket in (primary, old_backup, new_primary, new_backup):
        await s3_store.create_bucket(bucket)
    await s3_store.set_versioning(old_backup, True)
    files = {f"site/{i}.html": f"<p>{i}</p>".encode() for i in range(8)}
    for key, data in files.items():
        await s3_store.put(primary, key, data)
    code, out, err = await bmb(
        capsys, "--json", "backup", "--source", f"s3://{primary}", "--backup", f"s3://{old_backup}"
    )
    assert code == 0, err
    old_id = json.loads(out)["snapshot"]["id"]
    for key in files:  # the primary is lost
        await s3_store.delete(primary, key)

    args = ["promote", old_id, "--backup", f"s3://{old_backup}", "--to", f"s3://{new_primary}"]
    code, out, err = await bmb(capsys, "--json", *args, "--dry-run")
    assert code == 0, err
    assert json.loads(out)["restore"]["copied"] == 8 and await live(s3_store, new_primary) == {}

    code, out, err = await bmb(
        capsys, "--json", *args, "--new-backup", f"s3://{new_backup}", "--yes"
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["restore"]["verified"] is True
    assert report["carried_snapshots"] == 1
    assert report["first_snapshot"]["keys"] == 8
    assert report["first_snapshot"]["source"] == f"s3://{new_primary}"
    assert await live(s3_store, new_primary) == files

    # the new relationship lists old and new restoration points; the old one still restores
    code, out, _ = await bmb(capsys, "--json", "snapshots", "--backup", f"s3://{new_backup}")
    listed = [json.loads(line) for line in out.splitlines()]
    assert [s["id"] for s in listed] == [old_id, report["first_snapshot"]["id"]]
    scratch = unique_bucket("scr")
    await s3_store.create_bucket(scratch)
    code, out, err = await bmb(
        capsys,
        "--json",
        "restore",
        old_id,
        "--backup",
        f"s3://{new_backup}",
        "--to",
        f"s3://{scratch}",
    )
    assert code == 0, err
    assert await live(s3_store, scratch) == files
    code, out, err = await bmb(
        capsys,
        "--json",
        "backup",
        "--source",
        f"s3://{new_primary}",
        "--backup",
        f"s3://{new_backup}",
    )
    assert code == 0, err
    assert json.loads(out)["sync"]["copied"] == 0  # the new relationship is incremental
