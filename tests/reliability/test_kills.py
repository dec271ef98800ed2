"""kill -9 at random moments (seeded) during `sync` and `snapshot`, then a rerun: the end state
equals an uninterrupted run's, and the catalog never lists a half-written snapshot.

A killed `snapshot` leaves its catalog lock behind; the next run would exit 11 (locked) until
the lock expires (10 minutes). Between kills this test deletes the stale ``lock.json``, which
is what an operator does once sure the holder is dead."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
from pathlib import Path

import pytest

from backup_my_bucket.storage.iterate import iter_objects, iter_versions
from backup_my_bucket.storage.s3 import S3Store

from ..conftest import S3Server, unique_bucket
from .test_http_faults import fill

pytestmark = [pytest.mark.s3, pytest.mark.slow]

KEYS = 2000
KILLS = 20


async def cli(server: S3Server, *args: str, kill_after: float | None = None) -> int | None:
    """Run the CLI as a process; SIGKILL it after ``kill_after`` s. None if it was killed."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "backup_my_bucket", "--workers", "16", *args,
        env={**os.environ, **server.env()},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        return await asyncio.wait_for(proc.wait(), kill_after)
    except TimeoutError:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        return None


async def test_sync_and_snapshot_survive_kill_9(
    s3_server: S3Server, s3_store: S3Store, tmp_path: Path
) -> None:
    rng = random.Random(9)
    src, bak = unique_bucket("kill-src"), unique_bucket("kill-bak")
    await s3_store.create_bucket(src)
    await s3_store.create_bucket(bak)
    await s3_store.set_versioning(bak, True)
    await fill(s3_store, src, {f"d{i % 40:02d}/k{i:05d}": f"v{i}".encode() for i in range(KEYS)})
    source = {o.key: o.etag async for o in iter_objects(s3_store, src)}

    sync = ("sync", "--source", f"s3://{src}", "--backup", f"s3://{bak}")
    killed = 0
    for _ in range(KILLS):
        killed += await cli(s3_server, *sync, kill_after=rng.uniform(0.5, 3.0)) is None
    assert killed >= KILLS // 2  # most runs really were killed mid-way
    syncs_killed = killed
    assert await cli(s3_server, *sync) == 0
    assert {o.key: o.etag async for o in iter_objects(s3_store, bak)} == source
    assert len([v async for v in iter_versions(s3_store, bak)]) == KEYS  # no duplicate copies

    catalog = tmp_path / "catalog"
    snapshot = ("--catalog", str(catalog), "snapshot", "--backup", f"s3://{bak}")
    await asyncio.sleep(1.1)  # S3 times are whole seconds: snapshots must follow the sync
    killed = 0
    for _ in range(KILLS):
        killed += await cli(s3_server, *snapshot, kill_after=rng.uniform(0.3, 2.0)) is None
        (catalog / "lock.json").unlink(missing_ok=True)  # the operator clears a dead holder's lock
    assert killed >= KILLS // 2
    snapshots_killed = killed
    assert await cli(s3_server, *snapshot) == 0

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "backup_my_bucket", "--json", "--catalog", str(catalog),
        "snapshots", "--backup", f"s3://{bak}",
        env={**os.environ, **s3_server.env()}, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    listed = [json.loads(line) for line in out.decode().splitlines()]
    assert listed and all(snap["keys"] == KEYS for snap in listed)
    for snap in listed:  # every listed snapshot's index is whole
        assert await cli(s3_server, "--catalog", str(catalog), "show", snap["id"]) == 0
        assert (
            await cli(s3_server, "--catalog", str(catalog), "verify", snap["id"], "--backup",
                      f"s3://{bak}")
            == 0
        )  # fmt: skip
    print(f"\nkilled: {syncs_killed} syncs, {snapshots_killed} snapshots of {KILLS} runs each; "
          f"snapshots listed after the reruns: {len(listed)}")  # fmt: skip
