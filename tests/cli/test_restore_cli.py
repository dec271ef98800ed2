"""`restore` through the CLI: usage, dry run, JSON, and resume after Ctrl-C and kill -9."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from backup_my_bucket.cli import main as cli_main
from backup_my_bucket.errors import ExitCode
from backup_my_bucket.storage.s3 import S3Store
from backup_my_bucket.units import format_time

from ..conftest import S3Server, unique_bucket
from ..engine.restore_helpers import bucket_state, live
from .conftest import dry_run_lines

BMB = str(Path(sys.executable).parent / "backup-my-bucket")


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["restore"], ExitCode.USAGE, "needs a snapshot ID or --at"),
        (["restore", "snap-1"], ExitCode.USAGE, "pass --backup"),
        (["restore", "snap-1", "--at", "2h"], ExitCode.USAGE, "not both"),
        (
            ["restore", "--at", "2026-01-01T00:00:00", "--backup", "s3://b", "--to", "s3://t"],
            ExitCode.USAGE,
            "has no zone",
        ),
    ],
)
def test_restore_usage(
    args: list[str], code: int, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main.run(args) == code
    assert text in capsys.readouterr().err


async def bmb(server: S3Server, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        BMB, *args, env={**os.environ, **server.env()}, stdout=-1, stderr=-1
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def count(store: S3Store, bucket: str) -> int:
    return len((await store.list_versions_page(bucket)).entries)


async def interrupt_when(
    server: S3Server, store: S3Store, bucket: str, args: list[str], at_least: int, sig: int
) -> tuple[int, str]:
    """Run the CLI; send ``sig`` once the target holds ``at_least`` versions."""
    proc = await asyncio.create_subprocess_exec(
        BMB, *args, env={**os.environ, **server.env()}, stdout=-1, stderr=-1
    )
    while proc.returncode is None and await count(store, bucket) < at_least:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    assert proc.returncode is None, "the restore finished before it could be interrupted"
    proc.send_signal(sig)
    _, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, err.decode()


@pytest.mark.s3
async def test_dry_run_then_resume_after_ctrl_c_and_kill(
    s3_server: S3Server, s3_store: S3Store, tmp_path: Path
) -> None:
    bk, src = unique_bucket("bk"), unique_bucket("src")
    for bucket in (bk, src):
        await s3_store.create_bucket(bucket)
    await s3_store.set_versioning(bk, True)
    limit = asyncio.Semaphore(16)

    async def put(bucket: str, key: str, data: bytes) -> None:
        async with limit:
            await s3_store.put(bucket, key, data)

    keys = [f"obj/k{i:04d}" for i in range(300)]
    await asyncio.gather(*(put(bk, k, f"v1 {k}".encode()) for k in keys))
    at = max(v.last_modified for v in await live(s3_store, bk)) + timedelta(milliseconds=500)
    await asyncio.sleep(1.2)  # later writes land in a later second than `at`
    await asyncio.gather(*(put(bk, k, b"v2") for k in keys[:20]))
    await asyncio.gather(*(s3_store.delete(bk, k) for k in keys[20:40]))
    await asyncio.gather(*(put(src, f"extra/{i}", b"x") for i in range(10)))
    journal = tmp_path / "journal"
    args = [
        "--workers", "1", "restore", "--at", format_time(at), "--backup", f"s3://{bk}",
        "--to", f"s3://{src}", "--journal-dir", str(journal), "--yes",
    ]  # fmt: skip

    code, out, _ = await bmb(s3_server, "--json", *args, "--dry-run")
    assert code == 0, out
    actions, summary = dry_run_lines(out)
    assert summary == {
        "copied": 300, "deleted": 10, "skipped": 0, "failed": 0, "bytes_copied": 300 * 12,
        "dry_run": True, "verified": False, "archived": 0, "resumed": 0, "checks": 0,
        "at": format_time(at),
    }  # fmt: skip
    assert [(a["action"], a["key"]) for a in actions] == sorted(
        [("copy", k) for k in keys] + [("delete", f"extra/{i}") for i in range(10)],
        key=lambda pair: pair[1],
    )
    assert await count(s3_store, src) == 10  # the dry run changed nothing

    code, err = await interrupt_when(s3_server, s3_store, src, args, 40, signal.SIGINT)
    assert code == ExitCode.INTERRUPTED and "rerun the same command to continue" in err, err
    done = await count(s3_store, src)
    code, _ = await interrupt_when(s3_server, s3_store, src, args, done + 30, signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert await count(s3_store, src) < 310  # killed mid-restore

    code, out, err = await bmb(s3_server, "--json", "--workers", "8", *args[2:])
    assert code == 0, err
    result = json.loads(out)
    # the killed runs' copies are single-part: the listing proves them (skipped as unchanged);
    # "resumed" counts only what the journal alone proves (multipart copies)
    assert result["verified"] and result["failed"] == 0 and result["resumed"] == 0
    assert 0 < result["copied"] < 300 and result["skipped"] == 300 - result["copied"]
    state = await bucket_state(s3_store, src)
    assert {k: v[0] for k, v in state.items()} == {k: f"v1 {k}".encode() for k in keys}
    assert not os.listdir(journal)  # complete and verified: nothing left to resume
