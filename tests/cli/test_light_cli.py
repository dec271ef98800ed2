"""Commands whose requests the fast path serves never build botocore's client: a no-op
`backup` and `snapshots`, as processes of their own, import neither aiobotocore nor aiohttp
(nor urllib3, rich, dask, or the restore engine). The same backup with --no-fast-path does
(the check can fail)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from backup_my_bucket.storage.s3 import S3Store

from ..conftest import S3Server, unique_bucket

pytestmark = pytest.mark.s3
HEAVY = ("aiobotocore", "aiohttp", "urllib3", "rich", "dask", "distributed",
         "backup_my_bucket.engine.restore")  # fmt: skip
PROBE = (
    "import json, sys\n"
    "from backup_my_bucket.cli.main import run\n"
    "code = run(sys.argv[1:])\n"
    f"loaded = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
    "print(json.dumps({'code': code, 'loaded': loaded}), file=sys.stderr)\n"
)


async def bmb_process(server: S3Server, home: Path, *args: str) -> tuple[int, list[str], str]:
    """The CLI in a fresh interpreter: its exit code, the heavy packages it imported, stdout."""
    env = {**os.environ, **server.env(), "XDG_DATA_HOME": str(home / "data"),
           "XDG_CACHE_HOME": str(home / "cache"), "AWS_CONFIG_FILE": str(home / "no-config")}  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PROBE, *args, env=env, stdout=-1, stderr=-1
    )
    out, err = await proc.communicate()
    report = json.loads(err.decode().strip().splitlines()[-1])
    assert report["code"] == proc.returncode == 0, err.decode()
    return report["code"], report["loaded"], out.decode()


async def test_a_no_op_backup_and_snapshots_build_no_botocore_client(
    s3_server: S3Server, s3_store: S3Store, tmp_path: Path
) -> None:
    source, backup = unique_bucket("lz-src"), unique_bucket("lz-bk")
    await s3_store.create_bucket(source)
    await s3_store.create_bucket(backup)
    await s3_store.set_versioning(backup, True)
    for key in ("img0/a", "img0/b/c", "img0-x", "img0.idx", "odd key+%.txt"):
        await s3_store.put(source, key, key.encode())
    await s3_store.put(source, "big.bin", b"\x01" * (6 * 1024 * 1024 + 1))
    pair = ["--source", f"s3://{source}", "--backup", f"s3://{backup}"]

    _, _, out = await bmb_process(s3_server, tmp_path, "backup", *pair)
    assert out.startswith("copied 6 objects")
    _, loaded, out = await bmb_process(s3_server, tmp_path, "backup", *pair)
    assert out.startswith("copied 0 objects") and "6 unchanged" in out
    assert loaded == [], "a no-op backup imported what only botocore's client needs"
    _, loaded, out = await bmb_process(s3_server, tmp_path, "snapshots", "--backup", pair[3])
    assert [line.split()[4:6] for line in out.splitlines()] == [["6", "keys"]] * 2
    assert loaded == []

    _, loaded, out = await bmb_process(s3_server, tmp_path, "--no-fast-path", "backup", *pair)
    assert out.startswith("copied 0 objects")
    assert {"aiobotocore", "aiohttp"} <= set(loaded)
