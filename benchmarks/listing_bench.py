"""Snapshot listing vs `s5cmd ls --all-versions`, same bucket, same run.

    python -m benchmarks.listing_bench --versions 100000 [--layouts tree,flat] [--workers 32]
    python -m benchmarks.listing_bench --server synthetic --versions 1000000

Prints, per layout: versions listed per second for both, the ratio, client CPU seconds per
1,000 versions, and peak RSS. The runs alternate (ours first, then s5cmd first) and the best
of each is kept.

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
import tempfile
import time
from pathlib import Path

from backup_my_bucket.localserver import LocalS3Server

from .common import (
    ACCESS_KEY,
    BIN,
    SECRET_KEY,
    Run,
    audit_alone,
    fill,
    flat_keys,
    measure,
    server_env,
    tree_keys,
)  # fmt: skip
from .synthetic_s3 import SyntheticBucket, SyntheticS3, flat_key, tree_key


def compare(
    endpoint: str, env: dict[str, str], bucket: str, versions: int, live: int,
    workers: int, repeat: int, work: Path,
) -> None:  # fmt: skip
    ours: list[Run] = []
    theirs: list[Run] = []
    time.sleep(1.2)  # a snapshot records the last second that ended: the fill's must have
    for i in range(repeat):
        snapshot = [
            str(BIN / "backup-my-bucket"), "--json", "--catalog", str(work / f"catalog-{bucket}-{i}"),
            "--workers", str(workers), "snapshot", "--backup", f"s3://{bucket}",
        ]  # fmt: skip
        ls = [str(BIN / "s5cmd"), "--endpoint-url", endpoint, "ls", "--all-versions",
              f"s3://{bucket}/*"]  # fmt: skip
        runs = [
            ("backup-my-bucket snapshot", snapshot, ours),
            ("s5cmd ls --all-versions", ls, theirs),
        ]
        for label, args, into in runs if i % 2 == 0 else runs[::-1]:
            into.append(measure(label, args, env, capture=True))
    best_ours = min(ours, key=lambda r: r.wall)
    best_theirs = min(theirs, key=lambda r: r.wall)
    keys = json.loads(best_ours.stdout)["keys"]
    listed_by_s5cmd = len(best_theirs.stdout.splitlines())
    print(best_ours.line(versions))
    print(best_theirs.line(listed_by_s5cmd))
    if keys != live or listed_by_s5cmd != versions:
        raise SystemExit(
            f"wrong listing: snapshot has {keys} keys (expected {live}), "
            f"s5cmd listed {listed_by_s5cmd} versions (expected {versions})"
        )
    audit, requests = audit_alone(bucket, env)
    print(f"{audit.line(versions)}  {requests} requests (inside every snapshot run above)")
    ratio = (versions / best_ours.wall) / (listed_by_s5cmd / best_theirs.wall)
    print(
        f"ratio (ours/s5cmd, versions/s): {ratio:.2f}x; CPU per 1,000 versions: ours "
        f"{1000 * best_ours.cpu / versions:.4f} s, s5cmd {1000 * best_theirs.cpu / versions:.4f} s; "
        f"all runs (wall s): ours {[round(r.wall, 1) for r in ours]}, "
        f"s5cmd {[round(r.wall, 1) for r in theirs]}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--versions", type=int, default=100_000, help="about this many versions")
    parser.add_argument("--layouts", default="tree,flat")
    parser.add_argument("--server", choices=["seaweedfs", "synthetic"], default="seaweedfs")
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each tool (best is kept)")
    args = parser.parse_args()
    keys_wanted = int(args.versions / 1.25)  # ~20% overwrites and ~5% delete markers
    layouts = args.layouts.split(",")
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
                        args.repeat, work)  # fmt: skip
            return
        server = stack.enter_context(
            LocalS3Server(work / "s3", access_key=ACCESS_KEY, secret_key=SECRET_KEY)
        )
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
            compare(server.endpoint_url, env, name, versions, live, args.workers, args.repeat, work)


if __name__ == "__main__":
    main()
