"""Snapshot listing vs `s5cmd ls --all-versions`, same bucket, same run.

    python -m benchmarks.listing_bench --versions 100000 [--layouts tree,flat] [--workers N]
    python -m benchmarks.listing_bench --server synthetic --versions 1000000

Prints, per layout: versions listed per second by ours at the CLI defaults (``--workers N``
pins it instead), ours with the fast path off (botocore alone: ``--no-botocore`` skips it)
and s5cmd, each one's ratio to s5cmd, client CPU seconds per 1,000 versions, and peak RSS.
The runs take turns going first and the best of each is kept.

``--server seaweedfs`` (the default) fills a local SeaweedFS (~330 versioned PUTs/s here).
``--server synthetic`` serves a computed bucket (benchmarks/synthetic_s3.py) with no storage
behind it: it measures the clients alone, at a million versions and more, which is how the
memory figure is shown to stay flat. Figures are recorded in docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import time
from pathlib import Path

from backup_my_bucket.catalog.location import RESERVED
from backup_my_bucket.localserver import LocalS3Server

from .common import (
    ACCESS_KEY,
    BIN,
    SECRET_KEY,
    Run,
    audit_alone,
    budget_line,
    fill,
    flat_keys,
    measure,
    rotated,
    server_env,
    settings_label,
    tree_keys,
    variants,
    watch_server,
)  # fmt: skip
from .synthetic_s3 import SyntheticBucket, SyntheticS3, flat_key, tree_key


def compare(
    endpoint: str, env: dict[str, str], bucket: str, versions: int, live: int,
    workers: int | None, botocore: bool, repeat: int, work: Path,
) -> None:  # fmt: skip
    time.sleep(1.2)  # a snapshot records the last second that ended: the fill's must have
    tools: list[tuple[str, list[str]]] = [
        (f"{name} snapshot", [str(BIN / "backup-my-bucket"), *options, "--json"])
        for name, options in variants(workers, botocore)
    ]
    s5cmd = "s5cmd ls --all-versions"
    tools.append((s5cmd, [str(BIN / "s5cmd"), "--endpoint-url", endpoint, "ls",
                          "--all-versions", f"s3://{bucket}/*"]))  # fmt: skip
    runs: dict[str, list[Run]] = {label: [] for label, _ in tools}
    for i in range(repeat):
        for label, argv in rotated(tools, i):
            if label != s5cmd:
                # one catalog for the bucket: the bucket names it at the first snapshot
                argv = [*argv, "--catalog", str(work / f"catalog-{bucket}"),
                        "snapshot", "--backup", f"s3://{bucket}"]  # fmt: skip
            runs[label].append(measure(label, argv, env, capture=True))
    best = {label: min(found, key=lambda r: r.wall) for label, found in runs.items()}
    # s5cmd lists the bucket's reserved folder too (the record of its catalog, its history)
    lines = best[s5cmd].stdout.splitlines()
    listed_by_s5cmd = sum(1 for line in lines if f" {RESERVED}".encode() not in line)
    if listed_by_s5cmd != versions:
        raise SystemExit(f"wrong listing: s5cmd listed {listed_by_s5cmd}, expected {versions}")
    theirs = best[s5cmd]
    for label, run in best.items():
        if label != s5cmd and json.loads(run.stdout)["keys"] != live:
            raise SystemExit(f"wrong listing: {label} has {run.stdout!r}, expected {live} keys")
        print(run.line(versions))
    for label, run in best.items():
        if label == s5cmd:
            continue
        print(
            f"{label}: {theirs.wall / run.wall:.2f}x s5cmd's versions/s; CPU per 1,000 versions "
            f"{1000 * run.cpu / versions:.4f} s against {1000 * theirs.cpu / versions:.4f} s "
            f"({run.cpu / theirs.cpu:.2f}x); all runs (wall s): "
            f"{[round(r.wall, 2) for r in runs[label]]}",
            flush=True,
        )
        if run.server_cpu and theirs.server_cpu:
            mine = (label, run.wall, run.cpu, run.server_cpu)
            print(f"  {budget_line(mine, ('s5cmd', theirs.wall, theirs.cpu, theirs.server_cpu))}")
    audit, requests = audit_alone(bucket, env)
    print(f"{audit.line(versions)}  {requests} requests (inside every snapshot run above)")
    load = os.getloadavg()[0]
    print(f"s5cmd all runs (wall s): {[round(r.wall, 2) for r in runs[s5cmd]]}; "
          f"load average now {load:.1f}", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--versions", type=int, default=100_000, help="about this many versions")
    parser.add_argument("--layouts", default="tree,flat")
    parser.add_argument("--server", choices=["seaweedfs", "synthetic"], default="seaweedfs")
    parser.add_argument("--workers", type=int, help="ours with --workers N (default: CLI defaults)")
    parser.add_argument("--no-botocore", action="store_true", help="skip the --no-fast-path row")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each tool (best is kept)")
    args = parser.parse_args()
    keys_wanted = int(args.versions / 1.25)  # ~20% overwrites and ~5% delete markers
    layouts = args.layouts.split(",")
    load = os.getloadavg()
    print(f"ours: {settings_label(args.workers)}; load average {load[0]:.1f} {load[1]:.1f} "
          f"{load[2]:.1f}, {os.cpu_count()} cores", flush=True)  # fmt: skip
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bmb-bench-")))
        if args.server == "synthetic":
            buckets = {
                f"bench-{layout}": SyntheticBucket(
                    keys_wanted, tree_key if layout == "tree" else flat_key
                )
                for layout in layouts
            }
            synthetic = stack.enter_context(SyntheticS3(buckets))
            endpoint = synthetic.endpoint_url
            env = server_env(synthetic.endpoint_url)
            for name, bucket in buckets.items():
                print(f"\n[{name}, synthetic] {bucket.keys:,} keys, {bucket.versions:,} versions")
                compare(endpoint, env, name, bucket.versions, bucket.live, args.workers,
                        not args.no_botocore, args.repeat, work)  # fmt: skip
            return
        server = stack.enter_context(
            LocalS3Server(work / "s3", access_key=ACCESS_KEY, secret_key=SECRET_KEY)
        )
        watch_server(server)
        env = server_env(server.endpoint_url)
        for layout in layouts:
            keys = tree_keys(keys_wanted) if layout == "tree" else flat_keys(keys_wanted)
            name = f"bench-{layout}"
            t0 = time.perf_counter()
            versions, live = asyncio.run(fill(server, name, keys))
            print(
                f"\n[{name}, SeaweedFS] {len(keys):,} keys, {versions:,} versions "
                f"(filled in {time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
            compare(server.endpoint_url, env, name, versions, live, args.workers,
                    not args.no_botocore, args.repeat, work)  # fmt: skip


if __name__ == "__main__":
    main()
