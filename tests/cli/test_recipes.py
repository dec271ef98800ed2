"""The user guide's restore recipes, run as written (docs/user-guide.md, "Recipes")."""

from __future__ import annotations

import asyncio
import json

import pytest

from backup_my_bucket.storage.s3 import S3Store

from ..conftest import unique_bucket
from ..engine.restore_helpers import contents
from .conftest import bmb

pytestmark = pytest.mark.s3

DOCS = {"docs/a.txt": b"a", "docs/b.txt": b"bb", "docs/sub/c.txt": b"ccc"}
OTHERS = {"docs-old.txt": b"beside", "docs.idx": b"index", "img0/x": b"x1", "img0-y": b"y"}


@pytest.mark.usefixtures("cli_env")
async def test_bring_back_a_deleted_folder_after_the_nightly_backup(
    s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    """The folder was deleted, then the nightly backup ran: `latest` has no docs/ any more
    (and says so); the snapshot before the deletion, or a moment before it, brings the folder
    back, and nothing else is touched."""
    src, bk = unique_bucket("rc-src"), unique_bucket("rc-bk")
    for bucket in (src, bk):
        await s3_store.create_bucket(bucket)
    for key, body in {**DOCS, **OTHERS}.items():
        await s3_store.put(src, key, body)
    pair = ["--source", f"s3://{src}", "--backup", f"s3://{bk}"]
    code, _, err = await bmb(capsys, "init", *pair, "--yes")
    assert code == 0, err
    code, out, err = await bmb(capsys, "--json", "backup", *pair)  # last night
    assert code == 0, err
    before = json.loads(out)["snapshot"]
    await asyncio.sleep(1.1)
    for key in DOCS:  # today: `aws s3 rm --recursive s3://src/docs/`, and other work goes on
        await s3_store.delete(src, key)
    await s3_store.put(src, "img0/x", b"x2, today's")
    code, out, err = await bmb(capsys, "--json", "backup", *pair)  # tonight
    assert code == 0, err
    assert json.loads(out)["snapshot"]["keys"] == len(OTHERS)
    today = await contents(s3_store, src)
    B = ["--backup", f"s3://{bk}"]

    code, out, err = await bmb(
        capsys, "restore", "latest", *B, "--prefix", "docs/", "--mode", "undelete"
    )
    assert code == 0, err
    assert "copied 0 objects" in out
    assert "warning: the restoration point holds nothing in docs/" in err
    assert "Pick an earlier one" in err
    assert await contents(s3_store, src) == today

    code, out, err = await bmb(capsys, "ls", before["id"], "--prefix", "docs", *B)
    assert code == 0 and out.count("docs/") == len(DOCS), out
    code, out, err = await bmb(
        capsys, "restore", before["id"], *B, "--prefix", "docs/", "--mode", "undelete"
    )
    assert code == 0, err
    assert "copied 3 objects" in out and "verified" in out and "warning" not in err
    restored = await contents(s3_store, src)
    assert restored == {**today, **DOCS}  # the folder is back; img0/x keeps today's bytes

    for key in DOCS:  # once more, by time this time
        await s3_store.delete(src, key)
    code, out, err = await bmb(
        capsys, "restore", "--at", before["at"], *B, "--to", f"s3://{src}",
        "--prefix", "docs/", "--mode", "undelete",
    )  # fmt: skip
    assert code == 0, err
    assert "copied 3 objects" in out
    assert await contents(s3_store, src) == restored
