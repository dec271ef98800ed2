"""`bmb` as a process, as cron, systemd and CI run it: -q, -v, --log-file and SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from backup_my_bucket.errors import ExitCode
from backup_my_bucket.storage.s3 import S3Store

from ..conftest import TEST_SECRET_KEY, S3Server, unique_bucket

BMB = str(Path(sys.executable).parent / "bmb")
pytestmark = pytest.mark.s3


async def run(server: S3Server, *args: str, home: Path) -> tuple[int, str, str]:
    env = {**os.environ, **server.env(), "XDG_DATA_HOME": str(home / "data")}
    proc = await asyncio.create_subprocess_exec(BMB, *args, env=env, stdout=-1, stderr=-1)
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def fill(store: S3Store, bucket: str, count: int) -> None:
    await store.create_bucket(bucket)
    limit = asyncio.Semaphore(16)

    async def put(i: int) -> None:
        async with limit:
            await store.put(bucket, f"img{i % 3}/k{i:04d}", b"x" * i)

    await asyncio.gather(*(put(i) for i in range(count)))


@pytest.fixture
async def buckets(s3_store: S3Store) -> tuple[str, str]:
    src, bk = unique_bucket("pr-src"), unique_bucket("pr-bk")
    await fill(s3_store, src, 30)
    await s3_store.create_bucket(bk)
    await s3_store.set_versioning(bk, True)
    return src, bk


async def test_quiet_verbose_and_a_log_file(
    s3_server: S3Server, buckets: tuple[str, str], tmp_path: Path
) -> None:
    src, bk = buckets
    pair = ["--source", f"s3://{src}", "--backup", f"s3://{bk}"]

    # default, stderr not a terminal: each phase's summary line, no log records
    code, out, err = await run(s3_server, "backup", *pair, home=tmp_path)
    assert code == 0, err
    assert out.startswith("copied 30 objects")
    assert "sync: 30 objects" in err and "snapshot: listing" in err and " INFO " not in err

    # -q: nothing on stderr but warnings and errors; the result still on stdout
    code, out, err = await run(s3_server, "-q", "backup", *pair, home=tmp_path)
    assert code == 0 and err == "" and out.startswith("copied 0 objects")
    code, out, err = await run(
        s3_server, "-q", "restore", "nope", "--backup", f"s3://{bk}", home=tmp_path
    )
    assert code == ExitCode.NOT_FOUND and err.startswith("error: ") and out == ""

    # -v: what it does (the client of each endpoint, the phases); -vv: every request
    code, out, err = await run(s3_server, "-v", "sync", *pair, home=tmp_path)
    assert code == 0, err
    assert f"INFO S3 client for {s3_server.endpoint_url} (region us-east-1" in err
    assert "INFO sync: started" in err and "Sending http request" not in err
    code, out, err = await run(s3_server, "-vv", "sync", *pair, home=tmp_path)
    assert code == 0 and "DEBUG" in err and TEST_SECRET_KEY not in err

    # --log-file, JSON lines: every line for people and the INFO records, even with -q
    log = tmp_path / "logs" / "bmb.jsonl"
    code, out, err = await run(
        s3_server, "-q", "--log-file", str(log), "restore", "latest", "--backup",
        f"s3://{bk}", "--to", f"s3://{src}/copy", home=tmp_path,
    )  # fmt: skip
    assert code == 0 and err == "", err
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert all(set(r) == {"time", "level", "logger", "message"} for r in records)
    assert all(r["time"].endswith("Z") for r in records)
    messages = [r["message"] for r in records]
    assert any(m.startswith("S3 client for ") for m in messages)
    assert any(m.startswith("restore: copying: 30 objects, 435 B in ") for m in messages)
    assert TEST_SECRET_KEY not in log.read_text()

    # a text log is appended to, an error included
    text = tmp_path / "bmb.log"
    for _ in range(2):
        code, _, err = await run(s3_server, "--log-file", str(text), "show", "nope", "--backup",
                                 f"s3://{bk}", home=tmp_path)  # fmt: skip
        assert code == ExitCode.NOT_FOUND
    lines = text.read_text().splitlines()
    assert sum(" ERROR " in line and "nope" in line for line in lines) == 2


async def test_sigterm_stops_a_restore_like_ctrl_c(
    s3_server: S3Server, s3_store: S3Store, buckets: tuple[str, str], tmp_path: Path
) -> None:
    """systemd, Kubernetes and CI send SIGTERM: the message, the journal on disk, exit 143;
    the rerun finishes and removes the journal."""
    src, bk = buckets
    pair = ["--source", f"s3://{src}", "--backup", f"s3://{bk}"]
    await fill(s3_store, src, 300)
    code, _, err = await run(s3_server, "backup", *pair, home=tmp_path)
    assert code == 0, err
    into = unique_bucket("pr-into")
    await s3_store.create_bucket(into)
    journals = tmp_path / "journals"
    args = ["--workers", "1", "restore", "latest", "--backup", f"s3://{bk}", "--to",
            f"s3://{into}", "--journal-dir", str(journals)]  # fmt: skip
    env = {**os.environ, **s3_server.env(), "XDG_DATA_HOME": str(tmp_path / "data")}
    proc = await asyncio.create_subprocess_exec(BMB, *args, env=env, stdout=-1, stderr=-1)

    def journaled() -> int:
        return sum(p.read_text().count('"op"') for p in journals.glob("restore-*.jsonl"))

    while proc.returncode is None and journaled() < 20:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    assert proc.returncode is None, "the restore ended before the signal"
    proc.send_signal(signal.SIGTERM)
    out, err_b = await proc.communicate()
    err = err_b.decode()
    assert proc.returncode == ExitCode.TERMINATED == 143, err
    assert "error: stopped by SIGTERM\nhint: rerun the same command to continue" in err
    (journal,) = journals.glob("restore-*.jsonl")
    text = journal.read_text()
    assert text.endswith("\n")  # flushed whole lines: no torn record
    done = text.count('"op"')
    assert 20 <= done < 300 and out == b""

    code, out_s, err = await run(s3_server, *args, home=tmp_path)
    assert code == 0, err
    assert "verified: the target matches the restoration point" in out_s
    assert not list(journals.iterdir())
