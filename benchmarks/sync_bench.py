"""`backup-my-bucket sync` vs `s5cmd sync`, same data, same server, same run.

    python -m benchmarks.sync_bench --objects 10000 [--large 8 --large-size 32MiB] [--rounds 1]
    python -m benchmarks.sync_bench --server synthetic --objects 100000

Starts a local SeaweedFS, writes N small objects (and a few large ones) into source buckets,
then syncs each into fresh versioned buckets as subprocesses: ours at the CLI defaults
(``--workers N`` pins it instead), ours with the fast path off (``--no-fast-path``: botocore
alone; ``--no-botocore`` skips it), s5cmd at each ``--s5cmd-workers`` count, each tool in turn
first; prints objects/s (small) or MB/s (large), the ratio to the best s5cmd run, client CPU
seconds per 1,000 objects (that child alone, from ``os.wait4``) and peak RSS. A second,
no-change sync of ours is timed too.

``--server synthetic`` syncs a computed bucket (benchmarks/synthetic_s3.py) into an empty one
on an endpoint that answers every copy at once and stores nothing: the client's own ceiling
(s5cmd's sync lists with ListObjectsV2, which that endpoint does not serve).
Figures are recorded in docs/performance.md ("Sync").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
from pathlib import Path

from backup_my_bucket.catalog.location import RESERVED
from backup_my_bucket.localserver import LocalS3Server
from backup_my_bucket.storage.iterate import iter_versions
from backup_my_bucket.storage.s3 import S3Config, S3Store
from backup_my_bucket.units import parse_size

from .common import (
    ACCESS_KEY,
    BIN,
    SECRET_KEY,
    Run,
    against_best_s5cmd,
    audit_alone,
    measure,
    rotated,
    server_env,
    server_note,
    settings_label,
    variants,
    watch_server,
)  # fmt: skip
from .synthetic_s3 import SyntheticBucket, SyntheticS3, flat_key


def line(run: Run, items: int, nbytes: int) -> str:
    return (
        f"{run.label:<24} {run.wall:8.2f} s  {items / run.wall:8,.0f} obj/s  "
        f"{nbytes / run.wall / 1e6:8.1f} MB/s  cpu {run.cpu:6.2f} s "
        f"({1000 * run.cpu / max(items, 1):6.3f} s/1k)  peak RSS {run.max_rss_mb:6.1f} MB"
        f"{server_note(run.server_cpu)}"
    )


def config(server: LocalS3Server, pool: int = 72) -> S3Config:
    return S3Config(
        endpoint_url=server.endpoint_url,
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        max_pool_connections=pool,
    )


async def fill(server: LocalS3Server, bucket: str, count: int, size: int) -> None:
    """``count`` objects of ``size`` bytes in a tree (no ``a-b`` next to ``a/``: see design)."""
    async with S3Store(config(server)) as store:
        await store.create_bucket(bucket)
        payload = os.urandom(size)
        sem = asyncio.Semaphore(64)

        async def one(i: int) -> None:
            async with sem:
                await store.put(bucket, f"d{i // 1000:03d}/s{i % 10}/obj{i:07d}.bin", payload)

        for start in range(0, count, 2000):
            await asyncio.gather(*(one(i) for i in range(start, min(start + 2000, count))))


async def make_versioned(server: LocalS3Server, *buckets: str) -> None:
    async with S3Store(config(server)) as store:
        for bucket in buckets:
            await store.create_bucket(bucket)
            await store.set_versioning(bucket, True)


async def count(server: LocalS3Server, bucket: str) -> int:
    """The objects synced into ``bucket`` (not our records in its reserved folder)."""
    async with S3Store(config(server)) as store:
        return sum(
            [
                1
                async for v in iter_versions(store, bucket)
                if not v.is_delete_marker and not v.key.startswith(RESERVED)
            ]
        )


def compare(
    server: LocalS3Server, env: dict[str, str], src: str, label: str, items: int, nbytes: int,
    args: argparse.Namespace, round_no: int,
) -> None:  # fmt: skip
    url = server.endpoint_url
    tools = variants(args.workers, not args.no_botocore)
    tools += [(f"s5cmd {n}", ["--numworkers", n]) for n in args.s5cmd_workers.split(",")]
    runs: list[Run] = []
    for n, (tool, options) in enumerate(rotated(tools, round_no)):
        dst = f"{label}-{round_no}-{n}"
        asyncio.run(make_versioned(server, dst))
        if tool.startswith("s5cmd"):
            argv = [str(BIN / "s5cmd"), "--endpoint-url", url, *options, "sync",
                    f"s3://{src}/*", f"s3://{dst}/"]  # fmt: skip
        else:
            argv = [str(BIN / "backup-my-bucket"), "--endpoint-url", url, *options, "--json",
                    "sync", "--source", f"s3://{src}", "--backup", f"s3://{dst}"]  # fmt: skip
        runs.append(measure(f"{tool} ({label})", argv, env))
        if tool == "bmb":
            again = measure(f"bmb no-change ({label})", argv, env)
        got = asyncio.run(count(server, dst))
        if got != items:
            raise RuntimeError(f"{dst} holds {got} objects, expected {items}")
    audit, requests = audit_alone(src, env)
    for run in [*runs, again, audit]:
        print(line(run, items, nbytes))
    print(f"  (the ListObjectsV2 pass: {requests} requests; a sync reads an unversioned source "
          "with it, and runs one beside the backup's version listing as its audit)")  # fmt: skip
    against_best_s5cmd([(run.label, run.wall, run.cpu, run.server_cpu) for run in runs])


def ceiling(args: argparse.Namespace) -> None:
    """Ours against an endpoint that costs nothing: the client's own limit."""
    source = SyntheticBucket(args.objects, flat_key)
    with SyntheticS3({"ceiling-src": source, "ceiling-dst": SyntheticBucket(0, flat_key)}) as s3:
        env = server_env(s3.endpoint_url)
        for tool, options in variants(args.workers, not args.no_botocore):
            run = measure(
                f"{tool} (synthetic)",
                [str(BIN / "backup-my-bucket"), *options, "--json", "sync", "--source",
                 "s3://ceiling-src", "--backup", "s3://ceiling-dst"],
                env, capture=True,
            )  # fmt: skip
            copied = json.loads(run.stdout)["copied"]
            if copied != source.live:
                raise RuntimeError(f"{tool} copied {copied}, expected {source.live}")
            print(line(run, copied, copied * 64), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=int, default=10_000, help="small objects")
    parser.add_argument("--size", default="1KiB", help="size of each small object")
    parser.add_argument("--large", type=int, default=8, help="large objects (0: none)")
    parser.add_argument("--large-size", default="32MiB")
    parser.add_argument("--workers", type=int, help="ours with --workers N (default: CLI defaults)")
    parser.add_argument("--no-botocore", action="store_true", help="skip the --no-fast-path runs")
    parser.add_argument("--s5cmd-workers", default="128,256", help="s5cmd --numworkers (list)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--server", choices=["seaweedfs", "synthetic"], default="seaweedfs")
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"ours: {settings_label(args.workers)}; load average {load[0]:.1f} {load[1]:.1f} "
          f"{load[2]:.1f}, {os.cpu_count()} cores", flush=True)  # fmt: skip
    if args.server == "synthetic":
        ceiling(args)
        return
    size, large_size = parse_size(args.size), parse_size(args.large_size)
    with (
        tempfile.TemporaryDirectory(prefix="bmb-sync-bench-") as work,
        LocalS3Server(Path(work) / "s3", access_key=ACCESS_KEY, secret_key=SECRET_KEY) as server,
    ):
        env = server_env(server.endpoint_url)
        watch_server(server)
        asyncio.run(fill(server, "small", args.objects, size))
        if args.large:
            asyncio.run(fill(server, "large", args.large, large_size))
        print(
            f"{args.objects} x {args.size} small, {args.large} x {args.large_size} large, "
            f"SeaweedFS at {server.endpoint_url}",
            flush=True,
        )
        for round_no in range(args.rounds):
            compare(server, env, "small", "small", args.objects, args.objects * size, args,
                    round_no)  # fmt: skip
            if args.large:
                compare(server, env, "large", "large", args.large, args.large * large_size,
                        args, round_no)  # fmt: skip


if __name__ == "__main__":
    main()
