"""A Dask cluster against a server that throttles, and a cluster that loses its scheduler.

- The cluster shares one request rate per destination (engine/rate.py): behind a proxy that
  serves a partition's rate and answers 503 SlowDown above it, the shared limit falls below
  that rate and the cluster keeps it; once the partition grows the limit ramps back up and
  is lifted.
- The scheduler killed mid-restore and mid-sync: the command fails with a ClusterError
  (exit 1), what finished is kept, and a rerun completes to the exact end state.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import distributed
import psutil
import pytest

from backup_my_bucket.engine.cluster import DaskExecutor
from backup_my_bucket.engine.rate import STEP
from backup_my_bucket.engine.sync import SyncOptions, sync
from backup_my_bucket.engine.workers import run_pool
from backup_my_bucket.localserver import free_ports
from backup_my_bucket.model import S3Url
from backup_my_bucket.storage.s3 import S3Store

from ..conftest import S3Server, unique_bucket
from ..processes import family
from ..reliability.faultproxy import FaultProxy
from .conftest import bmb
from .test_executor_cli import _fill as _fill_layout
from .test_executor_cli import _live, _versions_beyond_one

pytestmark = pytest.mark.s3

WINDOW = 0.25
"""The shared limit's window in this test: a quarter of the default second, so the whole
episode (fall, hold, ramp) fits in a few seconds; the policy is the same."""
KEYS = 5000
BURST = 0.25
"""Seconds of requests the partition serves at once: with a second's worth, the cluster sent
1.3-1.8 times the partition's rate for a second at a time without a 503 (each worker's
items resuming together after a back-off), and the limit held above the partition."""
THROTTLED = 8.0
"""Seconds the proxy serves only the partition's rate: long enough for several cuts. The
first is 0.7 of what the cluster sent before the 503s, often still above the partition; each
takes at most half the limit, and the workers' own back-off can keep them under the
partition for seconds (the shared limit holding meanwhile: they do not use it) before 503s
come back. In 12 runs on a loaded machine the limit went below the partition 1.2-4.3 s after
the first 503s (before the limit held while unused: it grew meanwhile)."""


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
    before; 503 SlowDown above it) for 8 s, then any rate: the shared limit falls below the
    partition's rate, the cluster's copies keep every limit in force, then the limit ramps
    back up (and is lifted, when the sync lasts long enough), and the sync completes with the
    exact end state."""
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
                proxy.burst = BURST
                partition = proxy.limit = max(25.0, before / 4)
                throttled = time.monotonic()
                await asyncio.sleep(THROTTLED)
                proxy.limit = None
                lifted = time.monotonic()
                result = await run
                end = time.monotonic()
    finally:
        await executor.aclose()
    assert (result.copied, result.failed) == (KEYS, 0)
    assert await _live(s3_store, bak) == await _live(s3_store, src)

    (shared,) = executor.rates.values()
    history = [*shared.history, (end, None)]
    told = functools.partial(_told, copies, shared.history, origin=throttled)  # on failure
    limits = [limit for _, limit in history if limit is not None]
    assert history[0][1] is None and limits, "never limited"
    low = limits.index(min(limits))
    assert limits[low] < partition, told()  # the limit fell below the partition's rate
    assert limits[-1] > limits[low] * (1 + STEP) ** 3, told()  # then ramped back up
    # and was lifted once the partition had grown, or was still ramping when the sync ended
    # (a faster machine ends it sooner; the lift itself: tests/unit/test_rate.py)
    ramp = [limit for t, limit in history if t >= lifted + 1.0 and limit is not None]
    assert shared.limit is None or all(a < b for a, b in itertools.pairwise(ramp)), told()
    # the cluster kept every limit; after a cut, beyond the copies that had started before
    # it (the requests in flight of the unit on each worker thread: they may land later,
    # once their worker's back-off ends)
    started = shared.threads * options.workers
    for (_, before_it), (start, limit), (stop, _) in zip(
        history, history[1:], history[2:], strict=False
    ):
        if limit is not None and stop - start >= 0.5:
            cut = before_it is None or limit < before_it
            extra = started if cut else 10
            assert copies.rate(start, stop) <= 1.5 * limit + extra / (stop - start), told()
    late = (lifted - 1.5, lifted)
    # while limited the cluster sent about the partition's rate, and few 503s came back
    assert copies.rate(*late) < min(before / 2, 1.5 * partition), told()
    assert copies.rate(*late, throttled=True) < 0.1 * partition, told()
    after = max(copies.rate(t, t + 1.0) for t in _steps(lifted, end - 1.0))
    # and came back after: above the partition's rate, and well above its own while limited
    # (1.5x the partition failed once when a fast run ended while the limit still ramped)
    assert after > max(partition, 2 * copies.rate(*late)), (after, partition, told())
    with capsys.disabled():
        print(
            f"\n[figure] shared limit: {before:.0f} copies/s, then {copies.rate(*late):.0f}/s "
            f"sent ({copies.rate(*late, throttled=True):.0f}/s throttled) against a partition "
            f"of {partition:.0f}/s, {after:.0f}/s at best after; "
            f"{_limits(shared.history, throttled)}",
            file=sys.stderr,
        )


def _told(copies: _Copies, history: list[tuple[float, float | None]], origin: float) -> str:
    """What a failed assertion shows: each limit taken and the copies sent (throttled) per
    quarter second, in seconds from ``origin`` (the moment the proxy began to throttle)."""
    times = copies.times()
    start, end = min(times, default=origin), max(times, default=origin)
    sent = ", ".join(
        f"{t - origin:+.2f}s {copies.rate(t, t + 0.25):.0f}"
        f"({copies.rate(t, t + 0.25, throttled=True):.0f})"
        for t in _steps(start, end)
    )
    return f"{_limits(history, origin)}; copies/s sent (throttled) {sent}"


def _limits(history: list[tuple[float, float | None]], origin: float) -> str:
    return "limits " + ", ".join(f"{t - origin:+.2f}s: {x and round(x)}" for t, x in history)


# --- a lost scheduler ------------------------------------------------------------------------


class _Processes:
    """``dask scheduler`` and ``dask worker`` as subprocesses, so the scheduler can die alone.
    Stopped by PID, each process and its descendants: SIGTERM, then SIGKILL after a grace."""

    def __init__(self, env: dict[str, str], workers: int = 2) -> None:
        self.address = f"127.0.0.1:{free_ports(1)[0]}"
        dask = str(Path(sys.executable).with_name("dask"))
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        env = {**os.environ, **env}
        self.scheduler = subprocess.Popen(
            [dask, "scheduler", "--port", self.address.rsplit(":", 1)[1],
             "--dashboard-address", ":0"],
            env=env, **quiet,  # type: ignore[call-overload]
        )  # fmt: skip
        self.workers = subprocess.Popen(
            [dask, "worker", f"tcp://{self.address}", "--nworkers", str(workers),
             "--nthreads", "1", "--no-dashboard"],
            env=env, **quiet,  # type: ignore[call-overload]
        )  # fmt: skip
        self._count = workers

    async def ready(self) -> None:
        """Once the scheduler listens and every worker has joined it."""
        for _ in range(100):
            try:
                async with distributed.Client(
                    f"tcp://{self.address}", asynchronous=True, timeout=1
                ) as client:
                    await client.wait_for_workers(self._count, timeout=30)
                    return
            except (OSError, TimeoutError):
                await asyncio.sleep(0.2)
        raise AssertionError("the Dask processes did not start")

    def kill_scheduler(self) -> None:
        os.kill(self.scheduler.pid, signal.SIGKILL)

    def stop(self) -> None:
        members = [p for parent in (self.workers, self.scheduler) for p in family(parent.pid)]
        for process in members:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.terminate()
        _, alive = psutil.wait_procs(members, timeout=1)
        for process in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        psutil.wait_procs(alive, timeout=5)
        for parent in (self.workers, self.scheduler):
            parent.wait(5)


SMALL = 300
MiB = 1024 * 1024


async def _keys(store: S3Store, bucket: str) -> set[str]:
    return set(await _live(store, bucket))


async def _same_objects(store: S3Store, copy: str, original: str) -> None:
    """The same keys and sizes, and ETags where SeaweedFS keeps them (its server-side copy
    of an object over 5 MiB gets a multipart ETag)."""
    copied, source = await _live(store, copy), await _live(store, original)
    assert {k: size for k, (size, _) in copied.items()} == {
        k: size for k, (size, _) in source.items()
    }
    assert all(copied[k] == source[k] for k, (size, _) in source.items() if size < 5 * MiB)


async def _killed_mid_copy(
    processes: _Processes,
    store: S3Store,
    target: str,
    capsys: pytest.CaptureFixture[str],
    *args: str,
) -> tuple[int, str, str]:
    """``bmb --executor dask://… ARGS``, its scheduler SIGKILLed once a quarter of the copies
    reached ``target``; the command's exit code and output."""
    run = asyncio.create_task(bmb(capsys, "--executor", f"dask://{processes.address}", *args))
    for _ in range(1200):
        page = await store.list_objects_page(target)
        if len(page.objects) >= SMALL // 4 or run.done():
            break
        await asyncio.sleep(0.05)
    assert not run.done(), "the command ended before the scheduler could be killed"
    processes.kill_scheduler()
    return await asyncio.wait_for(run, 120)


async def test_a_lost_scheduler_fails_the_command_and_a_rerun_completes(
    cli_env: None,
    s3_server: S3Server,
    s3_store: S3Store,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The scheduler SIGKILLed mid-restore, then (a new cluster) mid-sync: exit 1 with the
    ClusterError, no success printed; the restore's journal holds only copies that are in
    the target; a rerun in-process completes to the exact end state, copying only what is
    missing (a copy is never made twice in the versioned targets)."""
    from backup_my_bucket.engine import cluster as module

    monkeypatch.setattr(module, "UNIT_SIZE", 8)  # many units: some finish before the kill
    src, bak = unique_bucket("lsrc"), unique_bucket("lbak")
    dst, mirror = unique_bucket("ldst"), unique_bucket("lmir")
    for bucket in (src, bak, dst, mirror):
        await s3_store.create_bucket(bucket)
    for bucket in (bak, dst, mirror):
        await s3_store.set_versioning(bucket, True)
    await _fill_layout(s3_store, src)
    await _fill(s3_store, src, SMALL)
    await asyncio.sleep(1.05)
    code, _, err = await bmb(capsys, "backup", "--source", f"s3://{src}", "--backup", f"s3://{bak}")
    assert code == 0, err
    everything = await _keys(s3_store, src)
    journals = tmp_path / "journals"
    restore = ["--json", "restore", "latest", "--backup", f"s3://{bak}", "--to", f"s3://{dst}",
               "--journal-dir", str(journals), "--yes"]  # fmt: skip

    processes = _Processes(s3_server.env())
    try:
        await processes.ready()
        code, out, err = await _killed_mid_copy(processes, s3_store, dst, capsys, *restore)
    finally:
        processes.stop()
    assert code == 1, err
    assert "lost the Dask scheduler" in err and "rerun the command" in err
    assert '"copied"' not in out  # no summary: nothing claims success
    present = await _keys(s3_store, dst)
    (journal,) = journals.glob("restore-*.jsonl")
    recorded = {
        json.loads(line)["key"] for line in journal.read_text().splitlines() if '"op"' in line
    }
    assert recorded and recorded <= present < everything  # what finished, and only that

    code, out, err = await bmb(capsys, *restore)  # in-process
    assert code == 0, err
    summary = json.loads(out.splitlines()[-1])
    assert (summary["copied"], summary["failed"], summary["verified"]) == (
        len(everything - present),
        0,
        True,
    )
    await _same_objects(s3_store, dst, src)
    assert await _versions_beyond_one(s3_store, dst) == 0

    processes = _Processes(s3_server.env())  # a new cluster: the sync half
    try:
        await processes.ready()
        sync_args = ["--json", "sync", "--source", f"s3://{src}", "--backup", f"s3://{mirror}"]
        code, out, err = await _killed_mid_copy(processes, s3_store, mirror, capsys, *sync_args)
    finally:
        processes.stop()
    assert code == 1, err
    assert "lost the Dask scheduler" in err and '"copied"' not in out
    present = await _keys(s3_store, mirror)
    assert present < everything
    code, out, err = await bmb(capsys, *sync_args)
    assert code == 0, err
    assert json.loads(out.splitlines()[-1])["copied"] == len(everything - present)
    await _same_objects(s3_store, mirror, src)
    assert await _versions_beyond_one(s3_store, mirror) == 0
