"""The completeness audit's own pass, alone: ListObjectsV2 over a bucket, as the audit of a
snapshot, sync or restore listing makes it (one sequence on SeaweedFS). Run by the benchmarks
as a subprocess, so its wall time, CPU and memory get a line of their own.

    python -m benchmarks.audit_alone BUCKET [PREFIX]     (endpoint and keys from AWS_* env)

Prints {"keys": n, "requests": n}.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from backup_my_bucket.storage.audit import Audit
from backup_my_bucket.storage.listing import paging_for
from backup_my_bucket.storage.paging import Paging
from backup_my_bucket.storage.s3 import S3Config, S3Store


async def main(bucket: str, prefix: str) -> None:
    config = S3Config(endpoint_url=os.environ.get("AWS_ENDPOINT_URL"), region="us-east-1")
    async with S3Store(config) as store:
        tree = paging_for(await store.server(bucket)) is Paging.TREE
        audit = Audit(store, bucket, prefix, tree=tree)
        await audit.run()
        print(json.dumps({"keys": audit.stats.keys, "requests": audit.stats.requests}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""))
