"""promote end to end on SeaweedFS: the primary is lost, the backup takes over."""

from __future__ import annotations

import json

import pytest

from backup_my_bucket.errors import ExitCode
from backup_my_bucket.storage.protocol import ObjectStore

from ..conftest import unique_bucket
from ..engine.restore_helpers import contents as live
from .conftest import bmb, dry_run_lines

pytestmark = pytest.mark.s3


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
    actions, report = dry_run_lines(out)
    assert [(a["action"], a["key"]) for a in actions] == [("copy", k) for k in sorted(files)]
    assert report["restore"]["copied"] == 8 and await live(s3_store, new_primary) == {}
    # promoting into a bucket that holds something: named, and not without --yes (no TTY here)
    await s3_store.put(new_primary, "left-over.txt", b"from an earlier attempt")
    code, out, err = await bmb(capsys, "--json", *args, "--new-backup", f"s3://{new_backup}")
    assert code == ExitCode.USAGE and out == "", err
    assert "promote would delete 1 object and overwrite 0 objects" in err and "left-over.txt" in err
    assert set(await live(s3_store, new_primary)) == {"left-over.txt"}

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
