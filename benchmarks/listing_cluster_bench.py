"""A snapshot's listing in-process vs with its ranges on a Dask cluster, same bucket, same run.

    python -m benchmarks.listing_cluster_bench --versions 200000 [--rounds 2] [--no-audit]

Serves a computed bucket (benchmarks/synthetic_s3.py: no storage, pages in key order; in a
process of its own) and
lists its state at now (``state_at``, audited, as ``bmb snapshot`` does), alternating the
in-process listing and the cluster's (``dask scheduler`` and ``dask worker --nworkers 2
--nthreads 1`` as subprocesses, benchmarks/dask_bench.py). For each: wall time, this
coordinator's CPU per 1,000 versions (what a billion-version listing costs the one machine
that must run it) and, for the cluster, its processes' CPU. On 2 shared cores the cluster is
not faster (its workers, scheduler and the server share them): the figure is the
coordinator's share (docs/scale.md).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import sys
import time
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event

from backup_my_bucket.clock import SYSTEM_CLOCK
from backup_my_bucket.engine.snapshot import state_at
from backup_my_bucket.model import S3Url
from backup_my_bucket.storage.listing import ListingOptions
from backup_my_bucket.storage.rangejob import RangeRunner
from backup_my_bucket.storage.s3 import S3Config, S3Store

from .common import ACCESS_KEY, SECRET_KEY, server_env
from .dask_bench import UNIT_SIZE, _cpu, connected
from .synthetic_s3 import SyntheticBucket, SyntheticS3, tree_key

BUCKET = "bench-tree"


async def _list(
    store: S3Store, ranges: RangeRunner | None, audit: bool
) -> tuple[float, float, int]:
    """Wall seconds, this process's CPU seconds, rows."""
    wall, cpu = time.perf_counter(), time.process_time()
    rows = 0
    at = SYSTEM_CLOCK.now()
    listing = ListingOptions(audit=audit)
    async for _ in state_at(
        store, S3Url(BUCKET, ""), at, workers=16, ranges=ranges, listing=listing
    ):
        rows += 1
    return time.perf_counter() - wall, time.process_time() - cpu, rows


def _serve(bucket: SyntheticBucket, port: Connection, stop: Event) -> None:
    """The synthetic server in a process of its own: its CPU is not the coordinator's."""
    with SyntheticS3({BUCKET: bucket}) as server:
        port.send(server.endpoint_url)
        stop.wait()


async def bench(args: argparse.Namespace) -> None:
    bucket = SyntheticBucket(args.versions * 4 // 5, tree_key)
    fork = multiprocessing.get_context("fork")
    ours, theirs = fork.Pipe()
    stop = fork.Event()
    server = fork.Process(target=_serve, args=(bucket, theirs, stop), daemon=True)
    server.start()
    try:
        await _compare(args, bucket, ours.recv())
    finally:
        stop.set()
        server.join(10)


async def _compare(args: argparse.Namespace, bucket: SyntheticBucket, endpoint: str) -> None:
    config = S3Config(endpoint_url=endpoint, region="us-east-1",
                      access_key=ACCESS_KEY, secret_key=SECRET_KEY)  # fmt: skip
    env = server_env(endpoint)
    print(f"[{BUCKET}, synthetic] {bucket.keys:,} keys, {bucket.versions:,} versions")
    async with S3Store(config) as store, connected(env, 2, UNIT_SIZE) as (cluster, executor):
        ranges = executor.ranges(store)
        await _list(store, ranges, args.audit)  # warm-up: imports and connections on the workers
        for round_ in range(args.rounds):
            for remote in [False, True] if round_ % 2 == 0 else [True, False]:
                before = _cpu(cluster.processes())
                wall, cpu, rows = await _list(store, ranges if remote else None, args.audit)
                others = _cpu(cluster.processes()) - before
                label = "cluster" if remote else "in-process"
                per_k = 1e3 * cpu / bucket.versions
                print(
                    f"{label:11} {wall:6.2f} s  {bucket.versions / wall:9,.0f} versions/s  "
                    f"coordinator cpu {cpu:5.2f} s ({per_k:.4f} s/1k)  cluster cpu "
                    f"{others:5.2f} s  {rows:,} rows",
                    flush=True,
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--no-audit", dest="audit", action="store_false",
        help="without the audit (its ListObjectsV2 pass runs on the coordinator)",
    )  # fmt: skip
    asyncio.run(bench(parser.parse_args()))
    sys.stdout.flush()
    os._exit(0)  # the cluster's clients leave threads behind; everything was stopped


if __name__ == "__main__":
    main()
