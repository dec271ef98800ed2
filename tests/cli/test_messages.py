"""Messages a user reads, each driven through the CLI with its exit code and wording: a
backup version gone, promote's dry run, show, counts with their nouns, environment
variables that set nothing, restore journals and their retention."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from backup_my_bucket.cli.config import check_environment
from backup_my_bucket.cli.main import cli
from backup_my_bucket.engine.journals import RETENTION
from backup_my_bucket.engine.sync import lifecycle_warnings
from backup_my_bucket.errors import ExitCode
from backup_my_bucket.model import LifecycleRule, VersionRef
from backup_my_bucket.ops.hooks import HOOK_VARIABLES
from backup_my_bucket.storage.iterate import iter_versions
from backup_my_bucket.storage.s3 import S3Store

from ..conftest import unique_bucket
from .conftest import bmb

FILES = {"img0/a.jpg": b"a" * 10, "img0-b.jpg": b"b" * 20, "img0.idx": b"i"}


async def backed_up(store: S3Store, capsys: pytest.CaptureFixture[str]) -> tuple[str, str, str]:
    """A source and its backup with one snapshot; returns the buckets and the snapshot id."""
    src, bk = unique_bucket("msg-src"), unique_bucket("msg-bk")
    for bucket in (src, bk):
        await store.create_bucket(bucket)
    for key, body in FILES.items():
        await store.put(src, key, body)
    code, _, err = await bmb(
        capsys, "init", "--source", f"s3://{src}", "--backup", f"s3://{bk}", "--yes"
    )
    assert code == 0, err
    code, out, err = await bmb(
        capsys, "--json", "backup", "--source", f"s3://{src}", "--backup", f"s3://{bk}"
    )
    assert code == 0, err
    return src, bk, json.loads(out)["snapshot"]["id"]


@pytest.mark.s3
@pytest.mark.usefixtures("cli_env")
async def test_a_backup_version_gone_is_named_in_the_backup_bucket(
    s3_store: S3Store, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """It was reported as `no such object: s3://<target>/…`, and the same summary said
    `failed 1` and `verified`."""
    _, bk, snap = await backed_up(s3_store, capsys)
    (gone,) = [v async for v in iter_versions(s3_store, bk) if v.key == "img0/a.jpg"]
    await s3_store.delete_versions(
        bk, [VersionRef(bk, gone.key, gone.version_id)]
    )  # someone deleted a version of the backup
    into = unique_bucket("msg-into")
    await s3_store.create_bucket(into)
    journals = tmp_path / "journals"
    args = ["restore", snap, "--backup", f"s3://{bk}", "--to", f"s3://{into}"]
    code, out, err = await bmb(capsys, *args, "--journal-dir", str(journals))
    assert code == ExitCode.PARTIAL, err
    assert f"no such object: s3://{bk}/img0/a.jpg (version {gone.version_id})" in err
    assert f"s3://{into}/img0/a.jpg" not in err
    assert "failed 1" in out and "NOT verified: 1 object failed or differ" in out
    assert "verified: the target matches" not in out
    code, out, err = await bmb(capsys, "--json", *args, "--journal-dir", str(journals))
    result = json.loads(out)
    assert code == ExitCode.PARTIAL and result["failed"] == 1 and result["verified"] is False
    # the rerun skipped the two copies the first run finished: the listing proves them, so
    # they are not "resumed" (which counts only what the journal alone proves)
    assert result["skipped"] == 2 and result["resumed"] == 0
    code, out, err = await bmb(capsys, "--json", "journals", "--journal-dir", str(journals))
    (listed,) = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and listed["target"] == f"s3://{into}" and listed["items"] == 2
    assert listed["point"] == f"snapshot:{snap}" and not listed["removed"]


@pytest.mark.s3
@pytest.mark.usefixtures("cli_env")
async def test_old_journals_are_removed_by_the_next_restore_and_on_request(
    s3_store: S3Store, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    src, bk, snap = await backed_up(s3_store, capsys)
    journals = tmp_path / "journals"
    journals.mkdir()
    old, recent = journals / f"restore-{'a' * 32}.jsonl", journals / f"restore-{'b' * 32}.jsonl"
    for path in (old, recent):
        path.write_text('{"restore": {"point": "at:x", "target": "s3://t", "mode": "safe"}}\n')
    month_ago = time.time() - RETENTION.total_seconds() - 3600
    os.utime(old, (month_ago, month_ago))
    code, out, err = await bmb(
        capsys, "restore", snap, "--backup", f"s3://{bk}", "--to", f"s3://{src}/copy",
        "--journal-dir", str(journals),
    )  # fmt: skip
    assert code == 0, err
    assert sorted(journals.iterdir()) == [recent]  # the old one went; its own: completed
    code, out, err = await bmb(capsys, "journals", "--journal-dir", str(journals))
    assert code == 0 and out.startswith(f"journal {'b' * 32}") and "1 journal in" in err
    code, out, err = await bmb(
        capsys, "journals", "--journal-dir", str(journals), "--remove-older-than", "0s"
    )
    assert code == 0 and out.startswith("removed ") and "removed 1 journal from" in err
    assert not list(journals.iterdir())


@pytest.mark.s3
@pytest.mark.usefixtures("cli_env")
async def test_promote_dry_run_says_what_it_would_do(
    s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    """It printed `s3://new-primary now holds snapshot …` and a raw dict; its JSON had
    `"new_backup": null` although --new-backup was given."""
    _, bk, snap = await backed_up(s3_store, capsys)
    primary, new_backup = unique_bucket("msg-np"), unique_bucket("msg-nb")
    await s3_store.create_bucket(primary)
    args = ["promote", snap, "--backup", f"s3://{bk}", "--to", f"s3://{primary}"]
    args += ["--new-backup", f"s3://{new_backup}", "--dry-run"]
    code, out, err = await bmb(capsys, *args)
    assert code == 0, err
    lines = [line for line in out.splitlines() if not line.startswith("copy ")]
    assert lines[0] == f"dry run: promote snapshot {snap} into s3://{primary}; nothing changed"
    assert "now holds" not in out and "{" not in out
    assert "would copy 3 objects (31 B)" in out
    assert f"then: enable versioning on s3://{new_backup}, back s3://{primary} up" in out
    code, out, err = await bmb(capsys, "--json", *args)
    report = json.loads(out.splitlines()[-1])
    assert report["new_backup"] == f"s3://{new_backup}" and report["dry_run"] is True


@pytest.mark.s3
@pytest.mark.usefixtures("cli_env")
async def test_show_sync_and_counts_read_as_text(
    s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    """`show` printed `total_bytes: 252972601`; its JSON said `total_bytes` where `snapshot`
    says `bytes`; "copied 1 objects"."""
    src, bk, snap = await backed_up(s3_store, capsys)
    code, out, err = await bmb(capsys, "show", snap, "--backup", f"s3://{bk}")
    assert code == 0, err
    assert "      size: 31 B\n" in out and "keys: 3\n" in out and "total_bytes" not in out
    assert re.search(r"\n        at: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\n", out), out
    code, out, err = await bmb(capsys, "--json", "show", snap, "--backup", f"s3://{bk}")
    shown = json.loads(out)
    assert shown["bytes"] == shown["total_bytes"] == 31 and shown["keys"] == 3
    await s3_store.put(src, "img0/a.jpg", b"changed")
    code, out, err = await bmb(capsys, "sync", "--source", f"s3://{src}", "--backup", f"s3://{bk}")
    assert code == 0 and out.startswith("copied 1 object (7 B), marked 0 deleted, 2 unchanged")
    code, out, err = await bmb(capsys, "diff", snap, "live", "--backup", f"s3://{bk}")
    assert code == 0 and out == "~ img0/a.jpg\n" and err.endswith("1 change\n")


def test_counts_and_days_agree_with_their_nouns() -> None:
    rule = LifecycleRule(id="r", enabled=True, prefix="", noncurrent_expiration_days=1)
    assert "after 1 day:" in lifecycle_warnings([rule], "")[0]
    rule = LifecycleRule(id="r", enabled=True, prefix="", expiration_days=30)
    assert "after 30 days:" in lifecycle_warnings([rule], "")[0]


def test_environment_variables_that_set_nothing_are_named() -> None:
    environ = {
        "BMB_GC_KEEP_DAYLY": "7",  # misspelt
        "BMB_GC_KEEP_DAILY": "7",
        "BMB_WORKERS": "8",
        "BMB_PLAN_RUN_TEXTFILE": "/x",  # a subcommand's option
        "BMB_TEST_ENDPOINT": "http://x",
        "BMB_WEED": "/usr/bin/weed",
        "BMB_ENDPOINT_URL": "http://x",  # an explicit envvar
        **dict.fromkeys(HOOK_VARIABLES, "1"),  # a hook that runs bmb
        "BMB_WORKRES": "8",
        "BMB_NOTHING_LIKE_ANYTHING": "1",
    }
    warnings = check_environment(environ, cli)
    assert warnings == [
        "environment variable BMB_GC_KEEP_DAYLY sets no option and is ignored: did you mean "
        "BMB_GC_KEEP_DAILY?",
        "environment variable BMB_NOTHING_LIKE_ANYTHING sets no option and is ignored (see "
        "docs/cli.md, Configuration)",
        "environment variable BMB_WORKRES sets no option and is ignored: did you mean BMB_WORKERS?",
    ]


async def test_a_misspelt_variable_is_warned_about_and_the_command_runs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BMB_GC_KEEP_DAYLY", "7")
    code, _, err = await bmb(capsys, "journals", "--journal-dir", str(tmp_path))
    assert code == 0 and err.startswith(
        "warning: environment variable BMB_GC_KEEP_DAYLY sets no option and is ignored: did "
        "you mean BMB_GC_KEEP_DAILY?\n"
    )
