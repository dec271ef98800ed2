"""init and sync through the CLI, against the real server (and a second one)."""

from __future__ import annotations

import asyncio
import json
import random

import pytest

from backup_my_bucket.engine import transfer
from backup_my_bucket.engine.sync import lifecycle_warnings
from backup_my_bucket.errors import ExitCode, StorageError
from backup_my_bucket.model import LifecycleRule, ObjectAttrs, Versioning
from backup_my_bucket.storage.iterate import iter_versions
from backup_my_bucket.storage.protocol import ObjectStore

from ..conftest import S3Server, unique_bucket
from ..engine.restore_helpers import live
from .conftest import bmb, dry_run_lines

pytestmark = pytest.mark.s3
ATTRS = ObjectAttrs(content_type="image/png", cache_control="no-cache", metadata={"a": "1"})


async def buckets(store: ObjectStore, versioned_backup: bool = True) -> tuple[str, str]:
    src, bak = unique_bucket("csrc"), unique_bucket("cbak")
    await store.create_bucket(src)
    await store.create_bucket(bak)
    if versioned_backup:
        await store.set_versioning(bak, True)
    return src, bak


async def test_init_enables_versioning_with_yes(
    cli_env: None, s3_store: ObjectStore, capsys: pytest.CaptureFixture[str]
) -> None:
    src, bak = await buckets(s3_store, versioned_backup=False)
    urls = ["--source", f"s3://{src}", "--backup", f"s3://{bak}/b/"]
    code, _, err = await bmb(capsys, "init", *urls)  # stdin is no terminal: never guess
    assert code == ExitCode.USAGE and "--yes" in err
    assert await s3_store.get_versioning(bak) is Versioning.UNVERSIONED
    code, _, err = await bmb(capsys, "sync", *urls)
    assert code == ExitCode.FAILURE and "versioning is not enabled" in err
    code, out, err = await bmb(capsys, "--json", "init", *urls, "--yes")
    assert code == 0, err
    assert json.loads(out) == {
        "source": f"s3://{src}", "backup": f"s3://{bak}/b/", "versioning": "Enabled",
        "versioning_enabled_now": True, "warnings": [],
        "catalog": f"s3://{bak}/b/.backup-my-bucket/catalog/",
    }  # fmt: skip
    assert await s3_store.get_versioning(bak) is Versioning.ENABLED
    code, out, _ = await bmb(capsys, "--json", "init", *urls)
    assert code == 0 and json.loads(out)["versioning_enabled_now"] is False
    code, _, err = await bmb(capsys, "init", "--source", "s3://bmb-none-42", "--backup", urls[3])
    assert code == ExitCode.NOT_FOUND and "bmb-none-42" in err


def test_lifecycle_rules_that_expire_history_are_warned_about() -> None:
    rules = [
        LifecycleRule("old", True, "", noncurrent_expiration_days=30),
        LifecycleRule("other", True, "logs/", expiration_days=1),
        LifecycleRule("off", False, "", noncurrent_expiration_days=1),
    ]
    warnings = lifecycle_warnings(rules, "backup/")
    assert len(warnings) == 1 and "'old'" in warnings[0] and "30 days" in warnings[0]
    assert len(lifecycle_warnings(rules, "logs/x/")) == 2


async def test_sync_json_dry_run_filters_and_rerun(
    cli_env: None, s3_store: ObjectStore, capsys: pytest.CaptureFixture[str]
) -> None:
    src, bak = await buckets(s3_store)
    names = ["a.txt", "dir/b.txt", "dir/c.tmp", "sp ace/\u00e9t\u00e9.txt", "x+y%z"]
    for name in names:
        await s3_store.put(src, name, name.encode(), attrs=ATTRS, tags={"t": "1"})
    await s3_store.put(bak, "stale", b"old")
    await asyncio.sleep(1.05)
    urls = ["--source", f"s3://{src}", "--backup", f"s3://{bak}"]
    code, out, _ = await bmb(capsys, "--json", "sync", *urls, "--dry-run")
    assert code == 0
    actions, summary = dry_run_lines(out)
    assert summary == {
        "copied": 5, "deleted": 1, "skipped": 0, "failed": 0,
        "bytes_copied": sum(len(n.encode()) for n in names), "dry_run": True, "checks": 0,
    }  # fmt: skip
    sources = {v.key: v for v in await live(s3_store, src)}
    (stale,) = await live(s3_store, bak)
    assert actions == sorted(
        [
            {"action": "copy", "key": n, "version_id": sources[n].version_id,
             "size": len(n.encode()), "reason": "missing in the backup"}
            for n in names
        ]
        + [{"action": "delete", "key": "stale", "version_id": stale.version_id, "size": 3,
            "reason": "gone from the source"}],
        key=lambda a: a["key"],
    )  # fmt: skip
    code, out, _ = await bmb(capsys, "sync", *urls, "--dry-run")
    assert out.splitlines()[:2] == ["copy    a.txt  5 B  (missing in the backup)",
                                    "copy    dir/b.txt  9 B  (missing in the backup)"]  # fmt: skip
    assert "delete  stale  3 B  (gone from the source)" in out.splitlines()
    assert out.splitlines()[-1].startswith("dry run: would copy 5 objects")
    assert [v.key async for v in iter_versions(s3_store, bak)] == ["stale"]

    code, out, _ = await bmb(capsys, "sync", *urls, "--exclude", "*.tmp")
    assert code == 0 and out.startswith("copied 4 objects")
    code, out, _ = await bmb(capsys, "--json", "sync", *urls, "--include", "dir/*")
    assert json.loads(out)["copied"] == 1  # only dir/c.tmp was left
    code, out, _ = await bmb(capsys, "--json", "sync", *urls)
    assert json.loads(out) == {
        "copied": 0, "deleted": 0, "skipped": 5, "failed": 0, "bytes_copied": 0,
        "dry_run": False, "checks": 0,  # an ordinary rerun makes no request per key
    }  # fmt: skip
    for name in names:
        head = await s3_store.head(bak, name)
        assert head.attrs.content_type == "image/png" and dict(head.attrs.metadata) == {"a": "1"}
        assert await s3_store.get_tags(bak, name) == {"t": "1"}
    stale = [v async for v in iter_versions(s3_store, bak, prefix="stale")]
    assert [v.is_delete_marker for v in stale] == [True, False]


async def test_failed_objects_exit_3_after_the_json(
    cli_env: None,
    s3_store: ObjectStore,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src, bak = await buckets(s3_store)
    await s3_store.put(src, "good", b"1")
    await s3_store.put(src, "bad", b"2")
    real = transfer.copy_version  # what sync's copy unit (transfer.CopyBetween) calls

    async def flaky(source, src_ref, *args, **kwargs):  # type: ignore[no-untyped-def]
        if src_ref.key == "bad":
            raise StorageError("InternalError: the disk is on fire")
        return await real(source, src_ref, *args, **kwargs)

    monkeypatch.setattr(transfer, "copy_version", flaky)
    code, out, err = await bmb(
        capsys, "--json", "sync", "--source", f"s3://{src}", "--backup", f"s3://{bak}"
    )
    assert code == ExitCode.PARTIAL
    assert json.loads(out)["copied"] == 1 and json.loads(out)["failed"] == 1
    assert "failed: 'bad'" in err and "disk is on fire" in err


async def test_sync_across_two_endpoints(
    s3_server: S3Server,
    second_s3_server: S3Server,
    s3_store: ObjectStore,
    second_s3_store: ObjectStore,
    cli_env: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    src, bak = unique_bucket("xsrc"), unique_bucket("xbak")
    await s3_store.create_bucket(src)
    await second_s3_store.create_bucket(bak)
    await second_s3_store.set_versioning(bak, True)
    big = random.Random(9).randbytes(20 * 1024 * 1024)  # streamed in parts
    await s3_store.put(src, "big.bin", big, attrs=ATTRS, tags={"k": "v"})
    await s3_store.put(src, "small \u00e9", b"s", attrs=ATTRS, tags={"k": "v"})
    await asyncio.sleep(1.05)
    args = [
        "--json", "--source-endpoint-url", s3_server.endpoint_url,
        "--backup-endpoint-url", second_s3_server.endpoint_url,
        "sync", "--source", f"s3://{src}", "--backup", f"s3://{bak}/copy/",
    ]  # fmt: skip
    code, out, err = await bmb(capsys, *args)
    assert code == 0, err
    assert json.loads(out)["copied"] == 2
    for key, data in (("big.bin", big), ("small \u00e9", b"s")):
        got = b"".join([c async for c in second_s3_store.get(bak, f"copy/{key}")])
        assert got == data
        head = await second_s3_store.head(bak, f"copy/{key}")
        assert head.attrs.content_type == "image/png" and head.attrs.cache_control == "no-cache"
        assert await second_s3_store.get_tags(bak, f"copy/{key}") == {"k": "v"}
    code, out, _ = await bmb(capsys, *args)
    assert json.loads(out)["skipped"] == 2
