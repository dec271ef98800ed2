"""Through the CLI on SeaweedFS: chunk ETags, metadata-only and tag-only changes, promote."""

from __future__ import annotations

import asyncio
import json

import pytest

from backup_my_bucket.model import ObjectAttrs, VersionRef
from backup_my_bucket.storage.s3 import S3Store

from ..conftest import unique_bucket
from ..engine.test_truth import contents, fill
from ..samples import ATTRS, TAGS
from .conftest import bmb

pytestmark = pytest.mark.s3


async def test_a_metadata_only_change_through_the_cli(
    cli_env: None, s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's case: copy-object REPLACE on the source keeps size and ETag. sync backs it
    up, restore (rollback) undoes it, reruns do nothing; tags only with --compare-tags."""
    src, bak = unique_bucket("msrc"), unique_bucket("mbak")
    for bucket in (src, bak):
        await s3_store.create_bucket(bucket)
    await s3_store.set_versioning(bak, True)
    for key in ("page.html", "big.bin"):
        data = b"<p>hello</p>" if key == "page.html" else bytes(9 * 1024 * 1024)
        await s3_store.put(src, key, data, attrs=ATTRS, tags=TAGS)
    urls = ["--source", f"s3://{src}", "--backup", f"s3://{bak}"]
    await asyncio.sleep(1.05)
    code, out, err = await bmb(capsys, "--json", "backup", *urls)
    assert code == 0, err
    point = json.loads(out)["snapshot"]["id"]
    await asyncio.sleep(1.05)
    broken = ObjectAttrs(content_type="application/x-broken", metadata={"origin": "bug"})
    await s3_store.copy(VersionRef(src, "page.html"), src, "page.html", attrs=broken)
    await asyncio.sleep(1.05)

    code, out, err = await bmb(capsys, "--json", "sync", *urls)
    assert code == 0, err
    assert json.loads(out)["copied"] == 1
    assert (await s3_store.head(bak, "page.html")).attrs.content_type == "application/x-broken"
    code, out, err = await bmb(capsys, "--json", "sync", *urls)
    assert (json.loads(out)["copied"], json.loads(out)["checks"]) == (0, 0)

    restore = ["restore", point, "--backup", f"s3://{bak}", "--to", f"s3://{src}", "--yes"]
    code, out, err = await bmb(capsys, "--json", *restore)
    assert code == 0, err
    assert json.loads(out)["copied"] == 1 and json.loads(out)["verified"]
    head = await s3_store.head(src, "page.html")
    assert head.attrs.content_type == ATTRS.content_type
    assert dict(head.attrs.metadata) == dict(ATTRS.metadata)
    code, out, err = await bmb(capsys, *restore)
    assert code == 0, err
    assert "copied 0 objects" in out and "verified" in out

    await asyncio.sleep(1.05)  # the next copy is strictly newer than the restored object
    code, out, _ = await bmb(capsys, "--json", "sync", *urls)
    assert json.loads(out)["copied"] == 1  # the restored headers, backed up in turn

    tag_set = [{"Key": "tier", "Value": "changed"}]
    await (await s3_store.botocore()).put_object_tagging(
        Bucket=src, Key="page.html", Tagging={"TagSet": tag_set}
    )
    code, out, _ = await bmb(capsys, "--json", "sync", *urls)
    assert json.loads(out)["copied"] == 0  # the documented limit
    code, out, err = await bmb(capsys, "--json", "sync", *urls, "--compare-tags")
    assert code == 0, err
    assert (json.loads(out)["copied"], json.loads(out)["checks"]) == (1, 2 * 2)  # 2 keys
    assert await s3_store.get_tags(bak, "page.html") == {"tier": "changed"}


async def test_promote_from_null_versions_into_an_unversioned_bucket(
    cli_env: None, s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    """The old backup holds null versions written before versioning was enabled (5, 12 and
    40 MiB, single PUT and multipart): verify finds nothing wrong, promote into an unversioned
    bucket completes and verifies, and promoting again copies nothing."""
    old, primary, new = unique_bucket("pold"), unique_bucket("pprim"), unique_bucket("pnew")
    for bucket in (old, primary, new):
        await s3_store.create_bucket(bucket)
    bodies = await fill(s3_store, old)
    await s3_store.set_versioning(old, True)
    bodies["img0.idx"] = b"a versioned write"
    await s3_store.put(old, "img0.idx", bodies["img0.idx"])
    await asyncio.sleep(1.05)
    code, out, err = await bmb(capsys, "--json", "snapshot", "--backup", f"s3://{old}")
    assert code == 0, err
    point = json.loads(out)["id"]
    code, out, err = await bmb(capsys, "--json", "verify", point, "--backup", f"s3://{old}")
    assert code == 0, err
    assert json.loads(out)["checked"] == len(bodies) and json.loads(out)["problems"] == []

    promote = ["promote", point, "--backup", f"s3://{old}", "--to", f"s3://{primary}"]
    code, out, err = await bmb(capsys, "--json", *promote, "--new-backup", f"s3://{new}", "--yes")
    assert code == 0, err
    report = json.loads(out)
    assert report["restore"]["copied"] == len(bodies) and report["restore"]["verified"]
    assert report["first_snapshot"]["keys"] == len(bodies)
    assert await contents(s3_store, primary) == bodies
    code, out, err = await bmb(capsys, "--json", *promote)
    assert code == 0, err
    assert json.loads(out)["restore"]["copied"] == 0 and json.loads(out)["restore"]["verified"]
