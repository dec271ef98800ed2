"""Restore benchmark: our CLI against ``s5cmd run`` copying the same version list, same run.

    python -m benchmarks.restore_bench --objects 10000

Starts an embedded SeaweedFS, writes N small objects into a versioned bucket (with s5cmd,
the fastest seeder at hand), then restores them into two empty buckets:
- ours, by default (``--point snapshot``): ``backup-my-bucket restore ID --to s3://T``, from a
  snapshot taken beforehand (untimed, like s5cmd's version list): listing the target,
  planning, the copies, and verifying the result with a second listing of the target;
- ours with ``--point at``: ``restore --at T --backup s3://B --to s3://T``, which also lists
  the backup's versions to compute the point in time;
- s5cmd: ``s5cmd run FILE`` with one ``cp --version-id ID s3://B/KEY s3://T/KEY`` per
  version, the list computed beforehand (its listing is not timed).
Ours runs at the CLI defaults (``--workers N`` pins it instead) and with the fast path off
(``--no-fast-path``: botocore alone, what AWS costs without the fast path; ``--no-botocore``
skips it); s5cmd at each ``--s5cmd-workers`` count, its best run of the round the yardstick.
Two rounds, each tool in turn first, each run into a fresh bucket. Each process is reaped
with ``os.wait4`` for its own CPU time; its peak RSS is polled.

``--reruns`` then times two restores with nothing to copy, and the requests each made
beyond the listings (``checks``: HEADs comparing headers and metadata, docs/design.md, "What
listings cannot tell"): into the bucket the first round restored (every object newer than its
version: 2 HEADs each), and into ``bench-intact``, the same objects written before the backup
was (each older than its version: none).
"""

from __future__ import annotations

import argparse
import asyncio
import json
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

from .common import (
    against_best_s5cmd,
    audit_alone,
    installed_env,
    measure,
    rotated,
    server_note,
    settings_label,
    variants,
    watch_server,
)  # fmt: skip

ACCESS, SECRET = "benchaccess", "bench-secret-key-1234"
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Run:
    name: str
    target: str
    seconds: float
    cpu: float
    max_rss_mib: float
    objects: int
    server_cpu: float = 0.0

    @property
    def rate(self) -> float:
        return self.objects / self.seconds

    def line(self) -> str:
        return (
            f"{self.name:<18} -> {self.target:<12} {self.objects:>6} objects {self.seconds:6.2f} s  "
            f"{self.rate:7.0f} objects/s  {self.cpu / self.objects * 1000:5.2f} s CPU/1,000  "
            f"peak RSS {self.max_rss_mib:5.0f} MiB{server_note(self.server_cpu)}"
        )


def run_reaped(name: str, target: str, args: list[str], env: dict[str, str], objects: int) -> Run:
    """Run ``args``: wall time, its own CPU time and peak RSS (benchmarks/common.py)."""
    run = measure(name, args, env)
    return Run(name, target, run.wall, run.cpu, run.max_rss_mb, objects, run.server_cpu)


async def versions(endpoint: str, bucket: str) -> list[ObjectVersion]:
    config = S3Config(endpoint_url=endpoint, region="us-east-1", access_key=ACCESS,
                      secret_key=SECRET)  # fmt: skip
    async with S3Store(config) as store:
        await store.create_bucket(bucket)  # a no-op when it exists
        return [v async for v in iter_versions(store, bucket)]


def seed(
    endpoint: str, env: dict[str, str], objects: int, work: Path, intact: bool = False
) -> None:
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
    for bucket in (["bench-intact"] if intact else []) + ["bench-backup"]:
        if bucket == "bench-intact":
            asyncio.run(versions(endpoint, bucket))  # creates it
        done = subprocess.run(
            [*s5, "cp", f"{data}/*", f"s3://{bucket}/"], env=env, capture_output=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"s5cmd cp failed: {done.stderr.decode()[-2000:]}")
        time.sleep(1.1)  # the backup's versions are strictly newer than the intact objects
    shutil.rmtree(data)


def restore_with(
    tool: str, options: list[str], target: str, args: argparse.Namespace, endpoint: str,
    env: dict[str, str], at: datetime, work: Path, listed: list[ObjectVersion],
) -> Run:  # fmt: skip
    """One timed restore of every listed version into the empty bucket ``target``."""
    asyncio.run(versions(endpoint, target))  # creates it
    if tool.startswith("s5cmd"):
        commands = work / f"{target}.txt"
        commands.write_text(
            "".join(
                f'cp --version-id {v.version_id} "s3://bench-backup/{v.key}" '
                f'"s3://{target}/{v.key}"\n'
                for v in listed
            )
        )
        argv = [str(BIN / "s5cmd"), "--endpoint-url", endpoint, *options, "run", str(commands)]
    else:
        profile = [sys.executable, "-m", "cProfile", "-o", args.profile] if args.profile else []
        point = (["--at", format_time(at), "--backup", "s3://bench-backup"]
                 if args.point == "at" else [args.snapshot_id])  # fmt: skip
        argv = [*profile, str(BIN / "backup-my-bucket"), "--endpoint-url", endpoint,
                "--catalog", str(work / "catalog"), *options, "--json",
                "restore", *point, "--to", f"s3://{target}", "--journal-dir",
                str(work / "journal")]  # fmt: skip
    return run_reaped(tool, target, argv, env, len(listed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--workers", type=int, help="ours with --workers N (default: CLI defaults)")
    parser.add_argument("--no-botocore", action="store_true", help="skip the --no-fast-path runs")
    parser.add_argument("--s5cmd-workers", default="128,256", help="s5cmd --numworkers (list)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--profile", metavar="FILE", help="run ours under cProfile into FILE")
    parser.add_argument(
        "--point", choices=["snapshot", "at"], default="snapshot",
        help="restore a snapshot taken beforehand, or --at a time (lists the backup too)",
    )  # fmt: skip
    parser.add_argument(
        "--reruns", action="store_true",
        help="then time restores with nothing to copy (a restored bucket, an intact one)",
    )  # fmt: skip
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="bmb-bench-") as tmp,
        LocalS3Server(Path(tmp) / "s3", access_key=ACCESS, secret_key=SECRET) as server,
    ):
        work = Path(tmp)
        watch_server(server)
        env = {**installed_env(), "AWS_ACCESS_KEY_ID": ACCESS, "AWS_SECRET_ACCESS_KEY": SECRET,
               "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
        endpoint = server.endpoint_url
        seed(endpoint, env, args.objects, work, intact=args.reruns)
        listed = asyncio.run(versions(endpoint, "bench-backup"))
        assert len(listed) == args.objects, f"listed {len(listed)} versions"
        at = datetime.now(UTC) + timedelta(seconds=1)
        time.sleep(1.1)
        snapshot = subprocess.run(
            [str(BIN / "backup-my-bucket"), "--endpoint-url", endpoint, "--catalog",
             str(work / "catalog"), "--json", "snapshot", "--backup", "s3://bench-backup"],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        args.snapshot_id = json.loads(snapshot.stdout)["id"]
        tools = variants(args.workers, not args.no_botocore)
        tools += [(f"s5cmd {n}", ["--numworkers", n]) for n in args.s5cmd_workers.split(",")]
        runs: list[list[Run]] = []
        for round_ in range(args.rounds):
            runs.append([])
            for n, (tool, options) in enumerate(rotated(tools, round_)):
                target = f"bench-{round_}-{n}"
                runs[-1].append(
                    restore_with(tool, options, target, args, endpoint, env, at, work, listed)
                )
        for run in (r for round_runs in runs for r in round_runs):
            copied = asyncio.run(versions(endpoint, run.target))
            assert len(copied) == args.objects, f"{run.target} holds {len(copied)} objects"
        restored = next(r.target for r in runs[0] if r.name == "bmb")
        reruns = [rerun(target, args, endpoint, env, work) for target in
                  ([restored, "bench-intact"] if args.reruns else [])]  # fmt: skip
        alone = audit_alone(restored, {**env, "AWS_ENDPOINT_URL": endpoint}, current=True)
    load = os.getloadavg()
    print(
        f"restore ({args.point}) of {args.objects} small objects, SeaweedFS on loopback, "
        f"{os.cpu_count()} cores, ours: {settings_label(args.workers)}; "
        f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
    )
    for i, round_runs in enumerate(runs):
        for run in round_runs:
            print(run.line())
        runs_of_round = [(run.name, run.seconds, run.cpu, run.server_cpu) for run in round_runs]
        against_best_s5cmd(runs_of_round, f"round {i + 1}: ")
    for line in reruns:
        print(line)
    print(
        f"{alone[0].line(args.objects, 'objects')}  {alone[1]} requests (the verification's "
        "listing; the plan's, of an empty target, is one request)"
    )


def rerun(target: str, args: argparse.Namespace, endpoint: str, env: dict[str, str],
          work: Path) -> str:  # fmt: skip
    """A restore of the snapshot into ``target``, which already holds it: nothing to copy."""
    options = variants(args.workers, botocore=False)[0][1]
    argv = [str(BIN / "backup-my-bucket"), "--endpoint-url", endpoint, "--catalog",
            str(work / "catalog"), *options, "--json", "restore",
            args.snapshot_id, "--to", f"s3://{target}", "--journal-dir",
            str(work / "journal")]  # fmt: skip
    run = measure(f"rerun -> {target}", argv, env, capture=True)
    result = json.loads(run.stdout)
    assert run.returncode == 0 and result["copied"] == 0, result
    return (
        f"{run.label:<22} nothing copied  {run.wall:6.2f} s  "
        f"{args.objects / run.wall:7.0f} objects/s  {run.cpu / args.objects * 1000:5.2f} s "
        f"CPU/1,000  checks {result['checks']} ({result['checks'] / args.objects:.1f} per key)"
    )


if __name__ == "__main__":
    main()
