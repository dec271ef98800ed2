"""`backup-my-bucket sync` vs `s5cmd sync`, same data, same server, same run.

    python -m benchmarks.sync_bench --objects 10000 [--large 8 --large-size 32MiB] [--rounds 1]

Starts a local SeaweedFS, writes N small objects (and a few large ones) into source buckets,
then syncs each into fresh versioned buckets with both tools as subprocesses, and prints
objects/s (small) or MB/s (large), the ratio, client CPU seconds per 1,000 objects (that child
alone, from ``os.wait4``) and peak RSS. A second, no-change sync of ours is timed too.
Figures are recorded in docs/performance.md ("Sync").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from pathlib import Path

from backup_my_bucket.localserver import LocalS3Server
from backup_my_bucket.storage.iterate import iter_versions
from backup_my_bucket.storage.s3 import S3Config, S3Store
from backup_my_bucket.units import parse_size

from .common import ACCESS_KEY, BIN, SECRET_KEY, Run, audit_alone, measure, server_env


def line(run: Run, items: int, nbytes: int) -> str:
    return (
        f"{run.label:<24} {run.wall:8.2f} s  {items / run.wall:8,.0f} obj/s  "
        f"{nbytes / run.wall / 1e6:8.1f} MB/s  cpu {run.cpu:6.2f} s "
        f"({1000 * run.cpu / max(items, 1):6.3f} s/1k)  peak RSS {run.max_rss_mb:6.1f} MB"
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
    async with S3Store(config(server)) as store:
        return sum([1 async for v in iter_versions(store, bucket) if not v.is_delete_marker])


def compare(
    server: LocalS3Server, env: dict[str, str], src: str, label: str, items: int, nbytes: int,
    workers: int, round_no: int,
) -> tuple[Run, Run]:  # fmt: skip
    ours_dst, s5_dst = f"{label}-ours-{round_no}", f"{label}-s5-{round_no}"
    asyncio.run(make_versioned(server, ours_dst, s5_dst))
    url = server.endpoint_url
    ours = measure(
        f"bmb sync ({label})",
        [str(BIN / "backup-my-bucket"), "--endpoint-url", url, "--workers", str(workers),
         "--json", "sync", "--source", f"s3://{src}", "--backup", f"s3://{ours_dst}"],
        env,
    )  # fmt: skip
    s5 = measure(
        f"s5cmd sync ({label})",
        [str(BIN / "s5cmd"), "--endpoint-url", url, "sync", f"s3://{src}/*", f"s3://{s5_dst}/"],
        env,
    )
    again = measure(
        f"bmb no-change ({label})",
        [str(BIN / "backup-my-bucket"), "--endpoint-url", url, "--workers", str(workers),
         "--json", "sync", "--source", f"s3://{src}", "--backup", f"s3://{ours_dst}"],
        env,
    )  # fmt: skip
    for dst in (ours_dst, s5_dst):
        got = asyncio.run(count(server, dst))
        if got != items:
            raise RuntimeError(f"{dst} holds {got} objects, expected {items}")
    audit, requests = audit_alone(src, env)
    for run in (ours, s5, again, audit):
        print(line(run, items, nbytes))
    print(f"  (the audit's pass: {requests} requests; each sync runs one per side, beside it)")
    print(
        f"  ratio ours/s5cmd: {s5.wall / ours.wall:.2f}x   "
        f"CPU ours/s5cmd: {ours.cpu / max(s5.cpu, 1e-9):.2f}x",
        flush=True,
    )
    return ours, s5


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--objects", type=int, default=10_000, help="small objects")
    parser.add_argument("--size", default="1KiB", help="size of each small object")
    parser.add_argument("--large", type=int, default=8, help="large objects (0: none)")
    parser.add_argument("--large-size", default="32MiB")
    parser.add_argument("--workers", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    size, large_size = parse_size(args.size), parse_size(args.large_size)
    with (
        tempfile.TemporaryDirectory(prefix="bmb-sync-bench-") as work,
        LocalS3Server(Path(work) / "s3", access_key=ACCESS_KEY, secret_key=SECRET_KEY) as server,
    ):
        env = server_env(server.endpoint_url)
        asyncio.run(fill(server, "small", args.objects, size))
        if args.large:
            asyncio.run(fill(server, "large", args.large, large_size))
        print(
            f"{args.objects} x {args.size} small, {args.large} x {args.large_size} large, "
            f"workers {args.workers}, SeaweedFS at {server.endpoint_url}",
            flush=True,
        )
        for round_no in range(args.rounds):
            compare(server, env, "small", "small", args.objects, args.objects * size,
                    args.workers, round_no)  # fmt: skip
            if args.large:
                compare(server, env, "large", "large", args.large, args.large * large_size,
                        args.workers, round_no)  # fmt: skip


if __name__ == "__main__":
    main()
