"""A Dask cluster against a server that throttles, and a cluster that loses its scheduler.

- The cluster shares one request rate per destination (engine/rate.py): behind a proxy that
  serves a partition's rate and answers 503 SlowDown above it, the cluster's copy rate falls
  to that rate, 503s become rare, and once the partition grows the rate ramps back up.
- The scheduler killed mid-restore and mid-sync: the command fails with a ClusterError
  (exit 1), what finished is kept, and a rerun completes to the exact end state.
"""

from __future__ import annotations

import asyncio
import sys
import time

import pytest

from backup_my_bucket.engine.cluster import DaskExecutor
from backup_my_bucket.engine.rate import STEP
from backup_my_bucket.engine.sync import SyncOptions, sync
from backup_my_bucket.engine.workers import run_pool
from backup_my_bucket.model import S3Url
from backup_my_bucket.storage.s3 import S3Store

from ..conftest import S3Server, unique_bucket
from ..reliability.faultproxy import FaultProxy
from .test_executor_cli import _live

pytestmark = pytest.mark.s3

WINDOW = 0.25
"""The shared limit's window in this test: a quarter of the default second, so the whole
episode (fall, hold, ramp) fits in a few seconds; the policy is the same."""
KEYS = 2400


def _steps(start: float, end: float, step: float = 0.25) -> list[float]:
    return [start + i * step for i in range(max(1, int((end - start) / step) + 1))]


async def _fill(store: S3Store, bucket: str, keys: int) -> None:
    async for outcome in run_pool(
        range(keys), lambda i: store.put(bucket, f"r/{i:05d}", b"x"), workers=64
    ):
        assert outcome.ok


class _Copies:
    """The copy requests (PUT into ``bucket``) a proxy saw: when, and whether throttled."""

    def __init__(self, proxy: FaultProxy, bucket: str) -> None:
        self.proxy, self.bucket = proxy, bucket

    def times(self, throttled: bool | None = None) -> list[float]:
        stats = self.proxy.stats
        return [
            when
            for (when, slow), (method, path, _, _) in zip(stats.timeline, stats.log, strict=False)
            if method == "PUT" and path.startswith(f"/{self.bucket}/")
            and (throttled is None or slow == throttled)
        ]  # fmt: skip

    def rate(self, start: float, end: float, throttled: bool | None = None) -> float:
        return sum(start <= t < end for t in self.times(throttled)) / (end - start)


async def test_the_cluster_slows_down_together_on_503s_then_ramps_back(
    cluster: str, s3_server: S3Server, s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    """Behind a proxy that serves a partition's rate (a quarter of what the cluster sent
    before; 503 SlowDown above it) for 3 s, then any rate: the cluster's limit falls below
    the partition's rate, 503s become rare, then the limit ramps back up, and the sync
    completes with the exact end state."""
    src, bak = unique_bucket("rsrc"), unique_bucket("rbak")
    for bucket in (src, bak):
        await s3_store.create_bucket(bucket)
    await s3_store.set_versioning(bak, True)
    await _fill(s3_store, src, KEYS)
    executor = DaskExecutor("tcp://" + cluster.removeprefix("dask://"), window=WINDOW)
    await executor.open()
    try:
        with FaultProxy(s3_server.endpoint_url, rate=0.0) as proxy:
            copies = _Copies(proxy, bak)
            async with S3Store(s3_server.config(endpoint_url=proxy.url)) as store:
                options = SyncOptions(workers=16, executor=executor)
                run = asyncio.create_task(sync(store, S3Url(src), store, S3Url(bak), options))
                for _ in range(600):  # until copies are under way
                    if len(copies.times()) >= 200 or run.done():
                        break
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.5)
                now = time.monotonic()
                before = copies.rate(now - 0.5, now)
                partition = proxy.limit = max(25.0, before / 4)
                await asyncio.sleep(3.0)
                proxy.limit = None
                lifted = time.monotonic()
                result = await run
                end = time.monotonic()
    finally:
        await executor.aclose()
    assert (result.copied, result.failed) == (KEYS, 0)
    assert await _live(s3_store, bak) == await _live(s3_store, src)

    (shared,) = executor.rates.values()
    limits = [limit for limit in shared.history if limit is not None]
    assert shared.history[0] is None and limits, "never limited"
    low = limits.index(min(limits))
    assert limits[low] < partition  # it fell below the partition's rate
    assert limits[-1] > limits[low] * (1 + STEP) ** 3  # then ramped back up
    late = (lifted - 1.5, lifted)  # the limited phase's second half: the limit in force
    sent, slowed = copies.rate(*late), copies.rate(*late, throttled=True)
    assert sent < max(before / 2, 1.5 * partition)  # the cluster's rate fell...
    assert slowed <= 0.1 * sent  # ...and 503s became rare
    after = max(copies.rate(t, t + 1.0) for t in _steps(lifted, end - 1.0))
    assert after > 1.5 * partition  # it ramped back
    with capsys.disabled():
        print(
            f"\n[figure] shared limit: {before:.0f} copies/s, then {sent:.0f}/s sent "
            f"({slowed:.0f}/s throttled) against a partition of {partition:.0f}/s, "
            f"{after:.0f}/s at best after; limits "
            f"{[round(x) if x else x for x in shared.history]}",
            file=sys.stderr,
        )
