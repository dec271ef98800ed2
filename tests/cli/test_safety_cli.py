"""No destructive surprises, through the real `bmb` on SeaweedFS: prefixes are folders, a
restore that deletes or overwrites asks first (or needs --yes), dry runs name every action.

Runs the installed entry point in a subprocess: without a terminal (stdin from /dev/null, as
cron would), and on a pseudo-terminal where a person answers the question.
"""

from __future__ import annotations

import asyncio
import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backup_my_bucket.errors import ExitCode
from backup_my_bucket.model import ObjectVersion
from backup_my_bucket.storage.iterate import iter_versions
from backup_my_bucket.storage.protocol import ObjectStore

from ..conftest import S3Server, unique_bucket
from ..engine.restore_helpers import contents as current
from ..engine.test_prefixes import around, put_all
from .conftest import dry_run_lines

BMB = str(Path(sys.executable).parent / "backup-my-bucket")
QUESTION = b"Go on? [y/N]"


def run_cli(server: S3Server, *args: str) -> tuple[int, str, str]:
    """The CLI with no terminal at all: stdin is /dev/null, stdout and stderr are pipes."""
    done = subprocess.run(
        [BMB, *args],
        env={**os.environ, **server.env()},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def run_on_tty(server: S3Server, *args: str, answer: str | None) -> tuple[int, str, str]:
    """The CLI with stdin and stderr on a pseudo-terminal (stdout a pipe); types ``answer``
    when the question appears. Returns the code, stdout, and what the terminal showed."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [BMB, *args],
        env={**os.environ, **server.env(), "TERM": "dumb"},
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=slave,
    )
    os.close(slave)
    shown, answered, deadline = b"", False, time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                shown += chunk
                if answer is not None and not answered and QUESTION in shown:
                    os.write(master, answer.encode() + b"\n")
                    answered = True
            elif proc.poll() is not None:
                break
        assert proc.stdout is not None
        out = proc.stdout.read().decode()
        return proc.wait(timeout=60), out, shown.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


async def history(store: ObjectStore, bucket: str) -> list[ObjectVersion]:
    return [v async for v in iter_versions(store, bucket)]


@pytest.mark.s3
async def test_folders_confirmation_and_dry_runs_through_the_cli(
    s3_server: S3Server, s3_store: ObjectStore, tmp_path: Path
) -> None:
    src, bk, tgt = unique_bucket("fsrc"), unique_bucket("fbk"), unique_bucket("ftgt")
    for bucket in (src, bk, tgt):
        await s3_store.create_bucket(bucket)
    await s3_store.set_versioning(bk, True)
    content, neighbours = around("p", b"v1")
    await put_all(s3_store, src, content | neighbours)
    _, backup_neighbours = around("site", b"other backup")
    await put_all(s3_store, bk, backup_neighbours)
    cat = ("--catalog", str(tmp_path / "catalog"))

    # sync and snapshot a folder spelt without its slash: only p/ is read, only site/ written
    pair = ("--source", f"s3://{src}/p", "--backup", f"s3://{bk}/site")
    code, out, err = await asyncio.to_thread(run_cli, s3_server, "--json", "sync", *pair)
    assert code == 0, err
    assert await current(s3_store, bk) == backup_neighbours | {
        "site/a.txt": b"a v1",
        "site/sub/b.txt": b"bb v1",
    }
    await asyncio.sleep(1.1)
    code, out, err = await asyncio.to_thread(run_cli, s3_server, *cat, "--json", "snapshot", *pair)
    assert code == 0, err
    snap = json.loads(out)
    assert (snap["keys"], snap["backup"], snap["source"]) == (
        2,
        f"s3://{bk}/site/",
        f"s3://{src}/p/",
    )
    code, out, err = await asyncio.to_thread(run_cli, s3_server, *cat, "verify", snap["id"])
    assert code == 0 and out.startswith("checked 2 versions"), err

    # a target folder with neighbours: a rollback would overwrite 2 and delete 1 object in it
    inside, target_neighbours = around("inspect", b"target")
    target_neighbours["inspection-notes.txt"] = b"notes"
    await put_all(s3_store, tgt, inside | target_neighbours | {"inspect/extra.txt": b"x"})
    before = await history(s3_store, tgt)
    restore = (*cat, "restore", snap["id"], "--to", f"s3://{tgt}/inspect")

    code, out, err = await asyncio.to_thread(run_cli, s3_server, *restore)
    assert code == ExitCode.USAGE and out == "", err
    assert f"would delete 1 object and overwrite 2 objects in s3://{tgt}/inspect/" in err
    assert "overwrite a.txt" in err and "delete    extra.txt" in err
    assert "--yes" in err and "--dry-run" in err and "nothing changed" in err
    assert await history(s3_store, tgt) == before

    code, out, err = await asyncio.to_thread(run_cli, s3_server, *restore, "--dry-run")
    assert code == 0, err
    assert out.splitlines()[:3] == [
        "copy    a.txt  4 B  (differs from the restoration point)",
        "delete  extra.txt  1 B  (not in the restoration point)",
        "copy    sub/b.txt  5 B  (differs from the restoration point)",
    ]
    code, out, err = await asyncio.to_thread(run_cli, s3_server, "--json", *restore, "--dry-run")
    actions, summary = dry_run_lines(out)
    assert [(a["action"], a["key"], a["size"]) for a in actions] == [
        ("copy", "a.txt", 4),
        ("delete", "extra.txt", 1),
        ("copy", "sub/b.txt", 5),
    ]
    assert all(a["version_id"] for a in actions if a["action"] == "copy")
    assert (summary["copied"], summary["deleted"], summary["dry_run"]) == (2, 1, True)
    assert await history(s3_store, tgt) == before

    # on a terminal: the question names what would go; "n" changes nothing
    code, out, shown = await asyncio.to_thread(run_on_tty, s3_server, *restore, answer="n")
    assert code == ExitCode.USAGE and "the answer was no" in shown, shown
    assert "overwrite sub/b.txt" in shown and "NOT versioned" in shown and out == ""
    assert await history(s3_store, tgt) == before
    # --json is for machines: it never asks, even on a terminal
    code, out, shown = await asyncio.to_thread(
        run_on_tty, s3_server, "--json", *restore, answer=None
    )
    assert code == ExitCode.USAGE and QUESTION.decode() not in shown and out == "", shown
    assert await history(s3_store, tgt) == before
    # "y" goes ahead; nothing beside the folder is touched
    code, out, shown = await asyncio.to_thread(run_on_tty, s3_server, *restore, answer="y")
    assert code == 0, shown
    assert "verified" in out
    assert await current(s3_store, tgt) == target_neighbours | {
        "inspect/a.txt": b"a v1",
        "inspect/sub/b.txt": b"bb v1",
    }
    assert [v for v in await history(s3_store, tgt) if not v.key.startswith("inspect/")] == [
        v for v in before if not v.key.startswith("inspect/")
    ]

    # --prefix is a folder of relative keys: `sub` is sub/, never sub2/ or suba.txt
    await put_all(s3_store, tgt, {"inspect/sub/b.txt": b"broken", "inspect/a.txt": b"broken"})
    await put_all(s3_store, tgt, {"inspect/sub2/c": b"kept", "inspect/suba.txt": b"kept"})
    for point in ((snap["id"],), ("--at", snap["at"], "--backup", f"s3://{bk}/site")):
        args = (*cat, "restore", *point, "--to", f"s3://{tgt}/inspect", "--prefix", "sub")
        code, out, err = await asyncio.to_thread(run_cli, s3_server, "--json", *args, "--yes")
        assert code == 0, err
        assert (json.loads(out)["copied"], json.loads(out)["deleted"]) == (1, 0)
        now = await current(s3_store, tgt)
        assert now["inspect/sub/b.txt"] == b"bb v1" and now["inspect/a.txt"] == b"broken"
        assert now["inspect/sub2/c"] == now["inspect/suba.txt"] == b"kept"
        await put_all(s3_store, tgt, {"inspect/sub/b.txt": b"broken"})

    # overlapping locations are refused before anything is read or written
    for args in (
        ("sync", "--source", f"s3://{src}/p", "--backup", f"s3://{src}/p/backup"),
        ("sync", "--source", f"s3://{bk}", "--backup", f"s3://{bk}/site"),
        (*cat, "restore", snap["id"], "--to", f"s3://{bk}/site/old", "--yes"),
    ):
        code, out, err = await asyncio.to_thread(run_cli, s3_server, *args)
        assert code == ExitCode.USAGE and "overlaps" in err and "hint:" in err, (args, err)
