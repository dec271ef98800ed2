"""The completeness audit's own pass, alone: ListObjectsV2 over a bucket, as the audit of a
snapshot or sync listing makes it (one sequence on SeaweedFS); with ``--current``, the same
walk sorted into key order, as a restore reads its target (storage/current.py). Run by the
benchmarks as a subprocess, so its wall time, CPU and memory get a line of their own.

    python -m benchmarks.audit_alone [--current] BUCKET [PREFIX]   (endpoint, keys: AWS_* env)

Prints {"keys": n, "requests": n}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os

from backup_my_bucket.storage.audit import Audit
from backup_my_bucket.storage.current import WalkStats, current_objects
from backup_my_bucket.storage.paging import Paging, paging_for
from backup_my_bucket.storage.s3 import S3Config, S3Store


async def main(bucket: str, prefix: str, current: bool) -> None:
    config = S3Config(endpoint_url=os.environ.get("AWS_ENDPOINT_URL"), region="us-east-1")
    async with S3Store(config) as store:
        if current:
            stats = WalkStats()
            async for _ in current_objects(store, bucket, prefix, stats=stats):
                pass
        else:
            tree = paging_for(await store.server(bucket)) is Paging.TREE
            audit = Audit(store, bucket, prefix, tree=tree)
            await audit.run()
            stats = audit.stats
        print(json.dumps({"keys": stats.keys, "requests": stats.requests}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--current", action="store_true", help="sorted, as a restore target")
    parser.add_argument("bucket")
    parser.add_argument("prefix", nargs="?", default="")
    args = parser.parse_args()
    asyncio.run(main(args.bucket, args.prefix, args.current))
