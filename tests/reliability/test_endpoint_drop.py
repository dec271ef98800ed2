"""An endpoint that goes away in the middle of a run: the command ends with the endpoint's
error (exit 1) soon after, instead of failing the remaining objects one by one, each after
every retry (hours for a large bucket, with a progress line that looks alive). A rerun
against a working endpoint finishes the job."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest

from backup_my_bucket.errors import ExitCode
from backup_my_bucket.storage.iterate import iter_objects
from backup_my_bucket.storage.s3 import S3Store

from ..conftest import S3Server, is_data, unique_bucket
from .faultproxy import FaultProxy

pytestmark = pytest.mark.s3

OBJECTS = 1500
GIVE_UP = 120  # seconds after the drop; without the rule it runs for hours


async def test_sync_ends_soon_after_its_endpoint_goes_away(
    s3_server: S3Server, s3_store: S3Store
) -> None:
    src, bak = unique_bucket("drop-src"), unique_bucket("drop-bak")
    for bucket in (src, bak):
        await s3_store.create_bucket(bucket)
    await s3_store.set_versioning(bak, True)
    gate = asyncio.Semaphore(64)

    async def put(i: int) -> None:
        async with gate:
            await s3_store.put(src, f"d{i % 30:02d}/k{i:05d}", f"v{i}".encode())

    await asyncio.gather(*(put(i) for i in range(OBJECTS)))
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    pair = ["--source", f"s3://{src}", "--backup", f"s3://{bak}"]
    with FaultProxy(s3_server.endpoint_url, rate=0) as proxy:
        env.update(s3_server.env(), AWS_ENDPOINT_URL=proxy.url)
        run = subprocess.Popen(  # noqa: ASYNC220 (a process of its own, watched below)
            [sys.executable, "-m", "backup_my_bucket", "sync", *pair],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        while proxy.stats.requests < 200 and run.poll() is None:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        assert run.poll() is None, "the sync ended before the endpoint went away"
    dropped = time.monotonic()  # the proxy is gone: connections refused from now on
    try:
        _, err = await asyncio.to_thread(run.communicate, timeout=GIVE_UP)
    except subprocess.TimeoutExpired:
        run.kill()
        run.communicate()
        pytest.fail(f"the sync still ran {GIVE_UP} s after its endpoint went away")
    print(f"sync ended {time.monotonic() - dropped:.1f} s after the endpoint went away")
    assert run.returncode == ExitCode.FAILURE, err
    assert "cannot reach the S3 endpoint" in err and "Traceback" not in err, err

    # the same command on a working endpoint completes the backup
    env.update(AWS_ENDPOINT_URL=s3_server.endpoint_url)
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "backup_my_bucket", "sync", *pair],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    source = {o.key async for o in iter_objects(s3_store, src)}
    backup = {o.key async for o in iter_objects(s3_store, bak) if is_data(o.key)}
    assert backup == source and len(source) == OBJECTS
