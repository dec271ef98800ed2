"""Snapshot listing vs `s5cmd ls --all-versions`, same bucket, same run.

    python -m benchmarks.listing_bench --versions 100000 [--layouts tree,flat] [--workers 32]

Prints, per layout: versions listed per second for both, the ratio, client CPU seconds per
1,000 versions, and peak RSS. Figures are recorded in docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from backup_my_bucket.localserver import LocalS3Server

from .common import ACCESS_KEY, BIN, SECRET_KEY, fill, flat_keys, measure, server_env, tree_keys


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--versions", type=int, default=100_000, help="about this many versions")
    parser.add_argument("--layouts", default="tree,flat")
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each tool (best is kept)")
    args = parser.parse_args()
    keys_wanted = int(args.versions / 1.25)  # fill adds ~20% overwrites and ~5% delete markers
    with (
        tempfile.TemporaryDirectory(prefix="bmb-bench-") as work,
        LocalS3Server(Path(work) / "s3", access_key=ACCESS_KEY, secret_key=SECRET_KEY) as server,
    ):
        env = server_env(server)
        for layout in args.layouts.split(","):
            keys = tree_keys(keys_wanted) if layout == "tree" else flat_keys(keys_wanted)
            bucket = f"bench-{layout}"
            t0 = time.perf_counter()
            versions, live = asyncio.run(fill(server, bucket, keys))
            print(
                f"\n[{layout}] {len(keys):,} keys, {versions:,} versions (filled in {time.perf_counter() - t0:.0f} s)"
            )
            ours, theirs = [], []
            for i in range(args.repeat):
                catalog = Path(work) / f"catalog-{layout}-{i}"
                ours.append(
                    measure(
                        "backup-my-bucket snapshot",
                        [
                            str(BIN / "backup-my-bucket"),
                            "--json",
                            "--catalog",
                            str(catalog),
                            "--workers",
                            str(args.workers),
                            "snapshot",
                            "--backup",
                            f"s3://{bucket}",
                        ],
                        env,
                        capture=True,
                    )
                )
                theirs.append(
                    measure(
                        "s5cmd ls --all-versions",
                        [
                            str(BIN / "s5cmd"),
                            "--endpoint-url",
                            server.endpoint_url,
                            "ls",
                            "--all-versions",
                            f"s3://{bucket}/*",
                        ],
                        env,
                        capture=True,
                    )
                )
            best_ours = min(ours, key=lambda r: r.wall)
            best_theirs = min(theirs, key=lambda r: r.wall)
            snapshot = json.loads(best_ours.stdout)
            listed_by_s5cmd = len(best_theirs.stdout.splitlines())
            print(best_ours.line(versions))
            print(best_theirs.line(listed_by_s5cmd))
            if snapshot["keys"] != live or listed_by_s5cmd != versions:
                raise SystemExit(
                    f"wrong listing: snapshot has {snapshot['keys']} keys (expected {live}), "
                    f"s5cmd listed {listed_by_s5cmd} versions (expected {versions})"
                )
            ratio = (versions / best_ours.wall) / (listed_by_s5cmd / best_theirs.wall)
            print(
                f"ratio (ours/s5cmd, versions/s): {ratio:.2f}x; snapshot keys {snapshot['keys']:,}; "
                f"s5cmd lines {listed_by_s5cmd:,}; CPU per 1,000 versions "
                f"{1000 * best_ours.cpu / versions:.4f} s"
            )


if __name__ == "__main__":
    main()
