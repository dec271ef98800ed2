"""Restore benchmark: our CLI against ``s5cmd run`` copying the same version list, same run.

    python -m benchmarks.restore_bench --objects 10000

Starts an embedded SeaweedFS, writes N small objects into a versioned bucket (with s5cmd,
the fastest seeder at hand), then restores them into two empty buckets:
- ours: ``backup-my-bucket restore --at T --backup s3://bk --to s3://bench-t1`` (this includes
  listing the backup, planning against the target, and verifying the result afterwards);
- s5cmd: ``s5cmd run FILE`` with one ``cp --version-id ID s3://bench-backup/KEY s3://bench-t2/KEY`` per
  version, the list computed beforehand (its listing is not timed).
Each process is reaped with ``os.wait4`` to get its own CPU time and peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from backup_my_bucket.localserver import LocalS3Server
from backup_my_bucket.model import ObjectVersion
from backup_my_bucket.storage.iterate import iter_versions
from backup_my_bucket.storage.s3 import S3Config, S3Store
from backup_my_bucket.units import format_time

ACCESS, SECRET = "benchaccess", "bench-secret-key-1234"
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Run:
    name: str
    seconds: float
    cpu: float
    max_rss_mib: float
    objects: int

    @property
    def rate(self) -> float:
        return self.objects / self.seconds

    def line(self) -> str:
        return (
            f"{self.name:<8} {self.objects:>7} objects  {self.seconds:6.2f} s  "
            f"{self.rate:7.0f} objects/s  {self.cpu / self.objects * 1000:5.2f} s CPU/1,000  "
            f"peak RSS {self.max_rss_mib:5.0f} MiB"
        )


def run_reaped(name: str, args: list[str], env: dict[str, str], objects: int) -> Run:
    """Run ``args`` with output to files, reap it with ``wait4`` for its own rusage."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{name} exited {proc.returncode}: {err.read()[-2000:]!r}")
    return Run(name, seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, objects)


async def versions(endpoint: str, bucket: str) -> list[ObjectVersion]:
    config = S3Config(endpoint_url=endpoint, region="us-east-1", access_key=ACCESS,
                      secret_key=SECRET)  # fmt: skip
    async with S3Store(config) as store:
        for name in ("bench-t1", "bench-t2"):
            await store.create_bucket(name)
        return [v async for v in iter_versions(store, bucket)]


def seed(endpoint: str, env: dict[str, str], objects: int, work: Path) -> None:
    data = work / "data"
    for i in range(objects):
        sub = data / f"d{i // 1000:03d}"
        if i % 1000 == 0:
            sub.mkdir(parents=True)
        (sub / f"obj{i:07d}").write_bytes(f"object {i} ".encode() * 10)
    s5 = [str(BIN / "s5cmd"), "--endpoint-url", endpoint]
    config = S3Config(endpoint_url=endpoint, region="us-east-1", access_key=ACCESS,
                      secret_key=SECRET)  # fmt: skip

    async def versioning() -> None:
        async with S3Store(config) as store:
            await store.create_bucket("bench-backup")
            await store.set_versioning("bench-backup", True)

    asyncio.run(versioning())
    done = subprocess.run([*s5, "cp", f"{data}/*", "s3://bench-backup/"], env=env, capture_output=True)
    if done.returncode != 0:
        raise RuntimeError(f"s5cmd cp failed: {done.stderr.decode()[-2000:]}")
    shutil.rmtree(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=64, help="our --workers")
    parser.add_argument("--s5cmd-workers", type=int, default=256, help="s5cmd --numworkers")
    parser.add_argument("--profile", metavar="FILE", help="run ours under cProfile into FILE")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bmb-bench-") as tmp, LocalS3Server(
        Path(tmp) / "s3", access_key=ACCESS, secret_key=SECRET
    ) as server:
        work = Path(tmp)
        env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS, "AWS_SECRET_ACCESS_KEY": SECRET,
               "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
        endpoint = server.endpoint_url
        seed(endpoint, env, args.objects, work)
        listed = asyncio.run(versions(endpoint, "bench-backup"))
        assert len(listed) == args.objects, f"listed {len(listed)} versions"
        at = datetime.now(UTC) + timedelta(seconds=1)
        time.sleep(1.1)
        commands = work / "commands.txt"
        commands.write_text(
            "".join(f'cp --version-id {v.version_id} "s3://bench-backup/{v.key}" "s3://bench-t2/{v.key}"\n'
                    for v in listed)  # fmt: skip
        )
        ours = run_reaped(
            "bmb",
            [*([sys.executable, "-m", "cProfile", "-o", args.profile] if args.profile else []),
             str(BIN / "backup-my-bucket"), "--endpoint-url", endpoint, "--workers",
             str(args.workers), "--json", "restore", "--at", format_time(at), "--backup",
             "s3://bench-backup", "--to", "s3://bench-t1", "--journal-dir", str(work / "journal")],
            env, args.objects,
        )  # fmt: skip
        theirs = run_reaped(
            "s5cmd",
            [str(BIN / "s5cmd"), "--endpoint-url", endpoint, "--numworkers",
             str(args.s5cmd_workers), "run", str(commands)],
            env, args.objects,
        )  # fmt: skip
        copied = asyncio.run(versions(endpoint, "bench-t1"))
        assert len(copied) == args.objects, f"t1 holds {len(copied)} objects"
    print(f"restore of {args.objects} small objects, SeaweedFS on loopback, {os.cpu_count()} cores")
    print(ours.line())
    print(theirs.line())
    print(f"ratio (ours / s5cmd objects/s): {ours.rate / theirs.rate:.2f}x")


if __name__ == "__main__":
    main()
