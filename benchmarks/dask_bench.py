"""A restore in-process vs through a Dask cluster on this machine, same data, same run.

    python -m benchmarks.dask_bench --objects 20000 [--unit-size 1024] [--rounds 2]
                                    [--dask-defaults]
    python -m benchmarks.dask_bench --plan-memory 10000000 [--unit-size 1024] [--local]

Starts an embedded SeaweedFS, writes N small objects into a versioned bucket, then starts a
real cluster as subprocesses (``dask scheduler`` and ``dask worker --nworkers 2 --nthreads 1``,
credentials in their own environment, the settings docs/scale.md recommends unless
``--dask-defaults``) and restores the bucket into fresh empty buckets,
alternating the in-process executor and the cluster (rounds). For each: wall time, CPU of
every process involved (this coordinator, and for the cluster its scheduler, nanny and
worker processes, from psutil) and CPU per object; for the cluster the units it ran and its
CPU overhead per unit and per object over the in-process run (docs/scale.md quotes these).

On 2 shared cores the cluster is not faster (its workers, scheduler and the server share
them): the figure that matters is the overhead, which must stay a small share of the
in-process CPU per object.

``--plan-memory KEYS``: the coordinator's peak RSS for a plan of KEYS copies spooled and
streamed through the cluster (units that send no request), against no server at all;
``--local``: the same stream in-process, without a Dask client, to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from backup_my_bucket.cli.settings import COPY_HIGH, COPY_LOW, COPY_START, DEFAULT_LIST_WORKERS
from backup_my_bucket.engine.actions import ActionKind
from backup_my_bucket.engine.cluster import UNIT_SIZE, DaskExecutor
from backup_my_bucket.engine.executor import IN_PROCESS, Executor, Job
from backup_my_bucket.engine.filters import KeyFilter
from backup_my_bucket.engine.pace import Pace
from backup_my_bucket.engine.restore import Action, Reason, run_restore
from backup_my_bucket.engine.restore_plan import Spool
from backup_my_bucket.engine.snapshot import live_state
from backup_my_bucket.errors import ClusterError
from backup_my_bucket.localserver import LocalS3Server, free_ports
from backup_my_bucket.model import S3Url
from backup_my_bucket.storage.s3 import S3Config, S3Store

from .common import ACCESS_KEY, BIN, SECRET_KEY, rss_mb, server_env, settings_label
from .synthetic_s3 import SyntheticS3

BACKUP = "bench-dask-backup"
IDLE_SECONDS = 5.0
DASK_SETTINGS = {
    # what docs/scale.md recommends for the cluster's processes (--dask-defaults: none of it).
    # Dask's sampling profiler walks every thread's stack every 10 ms: CPU per copy
    "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False",
    # the upkeep every process pays per second, busy or not (74 -> 11 ms of CPU per second
    # for a scheduler and 2 workers, idle): the event loop's health check (20 ms), the
    # system monitor's samples (500 ms), the nanny's look at its worker's memory (100 ms)
    "DASK_DISTRIBUTED__ADMIN__TICK__INTERVAL": "1s",
    "DASK_DISTRIBUTED__ADMIN__SYSTEM_MONITOR__INTERVAL": "5s",
    "DASK_DISTRIBUTED__WORKER__MEMORY__MONITOR_INTERVAL": "1s",
}


@dataclass(frozen=True)
class Result:
    label: str
    objects: int
    wall: float
    coordinator_cpu: float
    cluster_cpu: float
    units: int
    idle_cpu: float = 0.0  # what the cluster's processes burn doing nothing, over `wall`

    @property
    def cpu(self) -> float:
        return self.coordinator_cpu + self.cluster_cpu

    def line(self) -> str:
        return (
            f"{self.label:<12} {self.wall:7.2f} s {self.objects / self.wall:8,.0f} obj/s  "
            f"cpu {self.cpu:6.2f} s = coordinator {self.coordinator_cpu:6.2f} + cluster "
            f"{self.cluster_cpu:6.2f}  ({1e3 * self.cpu / self.objects:.3f} ms/object"
            + (f", {self.units} units, idle share {self.idle_cpu:.2f} s" if self.units else "")
            + ")"
        )


def _cpu(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


class Cluster:
    """``dask scheduler`` and ``dask worker`` as subprocesses of this one."""

    def __init__(self, env: dict[str, str], workers: int, *, defaults: bool = False) -> None:
        env = env if defaults else {**env, **DASK_SETTINGS}
        port = free_ports(1)[0]
        self.address = f"tcp://127.0.0.1:{port}"
        dask = str(BIN / "dask")
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        self.scheduler = subprocess.Popen(
            [dask, "scheduler", "--port", str(port), "--dashboard-address", ":0"],
            env=env,
            **quiet,  # type: ignore[arg-type]
        )
        self.worker = subprocess.Popen(
            [dask, "worker", self.address, "--nworkers", str(workers), "--nthreads", "1",
             "--no-dashboard"],
            env=env,
            **quiet,  # type: ignore[arg-type]
        )  # fmt: skip

    def processes(self, role: str = "all") -> list[psutil.Process]:
        """The scheduler's process, the workers' (the `dask worker` parent, its nannies and
        their worker processes), or all of them."""
        found = []
        pids = {"scheduler": [self.scheduler.pid], "workers": [self.worker.pid]}
        for pid in pids.get(role, [self.scheduler.pid, self.worker.pid]):
            process = psutil.Process(pid)
            found += [process, *process.children(recursive=True)]
        return found

    def stop(self) -> None:
        for proc in (self.worker, self.scheduler):  # by PID: ours alone
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def seed(store: S3Store, objects: int) -> None:
    await store.create_bucket(BACKUP)
    await store.set_versioning(BACKUP, True)
    sem = asyncio.Semaphore(64)

    async def one(i: int) -> None:
        async with sem:
            await store.put(BACKUP, f"d{i // 1000:03d}/obj{i:07d}", f"object {i} ".encode() * 10)

    await asyncio.gather(*(one(i) for i in range(objects)))
    await asyncio.sleep(1.1)


async def restore(
    store: S3Store, executor: Executor, target: str, workers: int | None, prefix: str = ""
) -> tuple[float, float, int]:
    """A restore of the backup into ``target``: at the CLI's defaults (``workers`` None:
    listings 32, copies adapted from 128, each unit on the cluster at the pace of the moment)
    or ``workers`` requests at once for both."""
    await store.create_bucket(target)
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    copies: int | Pace = workers or Pace(
        COPY_START, COPY_LOW, COPY_HIGH, throttles=lambda: store.throttled
    )
    result = await run_restore(
        backup_store=store,
        backup=S3Url(BACKUP, ""),
        desired=live_state(
            store, S3Url(BACKUP, ""), workers=workers or DEFAULT_LIST_WORKERS, within=prefix
        ),
        target_store=store,
        target=S3Url(target, ""),
        point="bench",
        filters=KeyFilter(prefix=prefix),
        workers=workers or DEFAULT_LIST_WORKERS,
        copy_workers=copies,
        executor=executor,
    )
    if not result.verified or result.failed:
        raise RuntimeError(f"restore into {target} failed: {result.failures[:3]}")
    return time.perf_counter() - start_wall, time.process_time() - start_cpu, result.copied


async def bench(args: argparse.Namespace, endpoint: str) -> list[Result]:
    env = server_env(endpoint)
    config = S3Config(endpoint_url=endpoint, region="us-east-1", access_key=ACCESS_KEY,
                      secret_key=SECRET_KEY,
                      max_pool_connections=(args.workers or COPY_HIGH) + 16)  # fmt: skip
    results: list[Result] = []
    async with S3Store(config) as store:
        await seed(store, args.objects)
        cluster_of = connected(env, args.dask_workers, args.unit_size, args.dask_defaults)
        async with cluster_of as (cluster, executor):
            # a warm-up restore on each side: imports, connections and the first allocations
            # are not per-restore costs (in-process went unwarmed before: its first round
            # measured 0.314 ms per object against 0.268 ms in its second)
            for side, name in ((executor, "bench-dask-warm"), (IN_PROCESS, "bench-local-warm")):
                await restore(store, side, name, args.workers, prefix="d000/")
            before = _cpu(cluster.processes())
            await asyncio.sleep(IDLE_SECONDS)
            idle = (_cpu(cluster.processes()) - before) / IDLE_SECONDS
            print(f"cluster idle (heartbeats, event loops): {1e3 * idle:.0f} ms CPU per second")
            print(f"requests at once: {settings_label(args.workers)}")
            for round_ in range(args.rounds):
                order = [IN_PROCESS, executor] if round_ % 2 == 0 else [executor, IN_PROCESS]
                for chosen in order:
                    label = "in-process" if chosen is IN_PROCESS else "dask"
                    units_before = executor.units
                    before = _cpu(cluster.processes()) if chosen is executor else 0.0
                    scheduler_before = _cpu(cluster.processes("scheduler"))
                    target = f"bench-dask-{label}-{round_}"
                    wall, cpu, copied = await restore(store, chosen, target, args.workers)
                    after = _cpu(cluster.processes()) if chosen is executor else 0.0
                    results.append(
                        Result(label, copied, wall, cpu, after - before,
                               executor.units - units_before, idle * wall if after else 0.0)
                    )  # fmt: skip
                    print(results[-1].line(), flush=True)
                    if chosen is executor:
                        scheduler = _cpu(cluster.processes("scheduler")) - scheduler_before
                        print(
                            f"{'':12} of which the scheduler {scheduler:.2f} s, the worker "
                            f"processes {after - before - scheduler:.2f} s",
                            flush=True,
                        )
    return results


def report(results: list[Result]) -> None:
    local = [r for r in results if r.label == "in-process"]
    remote = [r for r in results if r.label == "dask"]
    per_object_local = sum(r.cpu for r in local) / sum(r.objects for r in local)
    per_object_dask = sum(r.cpu for r in remote) / sum(r.objects for r in remote)
    units = sum(r.units for r in remote)
    objects = sum(r.objects for r in remote)
    busy = per_object_dask - sum(r.idle_cpu for r in remote) / objects
    print(f"in-process CPU per object: {1e3 * per_object_local:.3f} ms")
    print(f"cluster CPU per object:    {1e3 * per_object_dask:.3f} ms (all processes)")
    for name, value in (("all of it", per_object_dask), ("idle share deducted", busy)):
        overhead = value - per_object_local
        print(
            f"cluster overhead ({name}): {1e3 * overhead:+.3f} ms per object "
            f"({100 * overhead / per_object_local:+.1f} % of in-process), "
            f"{1e3 * overhead * objects / max(units, 1):+.1f} ms per unit"
        )
    # each round runs both sides back to back: its own ratio is the least exposed to the
    # machine's speed drifting over the run (it swings by more than the overhead here)
    pairs = zip(results[::2], results[1::2], strict=True)  # a round: one run of each side
    rounds = [(a, b) if a.label == "in-process" else (b, a) for a, b in pairs]
    each = [100 * (d.cpu / d.objects) / (mine.cpu / mine.objects) - 100 for mine, d in rounds]
    if each:
        print(
            "overhead round by round (all included): "
            + ", ".join(f"{x:+.1f} %" for x in each)
            + f" (median {statistics.median(each):+.1f} %)"
        )


@dataclass(frozen=True)
class Nothing:
    """A unit that sends no request: what the coordinator does for a plan, alone. Defined in
    ``__main__`` when run with -m, so Dask ships it by value to workers that lack this file."""

    async def __call__(self, stores: object, action: Action) -> str:
        return action.etag or ""


def _memory(label: str, started: float, items: int | None = None) -> None:
    now, peak = rss_mb()
    elapsed = time.perf_counter() - started
    rate = f", {items:,} items ({items / elapsed:,.0f}/s)" if items is not None else ""
    print(f"{elapsed:6.0f} s {label}{rate}: RSS {now:.0f} MB, peak {peak:.0f} MB", flush=True)


async def plan_memory(keys: int, unit_size: int, dask_workers: int, local: bool) -> None:
    """Coordinator peak RSS for a ``keys``-copy plan: spooled (engine/restore_plan.Spool), then
    streamed from the spool through the Dask executor (or in-process, ``local``: what the
    coordinator holds without a Dask client) and tallied as restore does, each item a no-op
    (no server: the synthetic endpoint named is never contacted). Prints this process's
    resident memory (VmRSS) and peak (VmHWM) before the client connects, after, after
    spooling and every 30 s while streaming."""
    started = time.perf_counter()
    _memory("before connecting", started)
    with SyntheticS3({}) as synthetic:
        env = server_env(synthetic.endpoint_url)
        config = S3Config(endpoint_url=synthetic.endpoint_url, access_key=ACCESS_KEY,
                          secret_key=SECRET_KEY)  # fmt: skip
        store = S3Store(config)  # never opened: only its configuration travels
        async with contextlib.AsyncExitStack() as stack:
            executor: Executor = IN_PROCESS
            if not local:
                _, executor = await stack.enter_async_context(
                    connected(env, dask_workers, unit_size)
                )
                _memory("Dask client connected", started)
            spool = Spool()
            for i in range(keys):
                spool.write(
                    Action(
                        ActionKind.COPY,
                        f"d{i // 5000:05d}/s{i % 50:02d}/obj{i:09d}",
                        Reason.MISSING,
                        f"v{i:012d}",
                        1024,
                        f"{i:032x}",
                        "STANDARD",
                    )
                )
            _memory(f"spooled {keys:,} actions", started)
            done = nbytes = 0
            streamed = time.perf_counter()
            todo = spool.read(lambda a: a.kind is ActionKind.COPY)
            shown = time.monotonic()
            async for outcome in executor.map(todo, Job(Nothing(), (store,), 32)):
                done += outcome.error is None
                nbytes += outcome.item.size
                if time.monotonic() - shown >= 30:
                    _memory("streaming", streamed, done)
                    shown = time.monotonic()
            spool.close()
            where = "in-process" if local else "through the cluster"
            _memory(f"ran {done:,} no-op items {where}", streamed, done)
            if isinstance(executor, DaskExecutor):
                print(f"{executor.units:,} units of {unit_size}", flush=True)


@contextlib.asynccontextmanager
async def connected(
    env: dict[str, str], workers: int, unit_size: int, defaults: bool = False
) -> AsyncIterator[tuple[Cluster, DaskExecutor]]:
    """A cluster of ``workers`` processes and an executor connected to it; both stopped after,
    whatever the client did."""
    cluster = Cluster(env, workers, defaults=defaults)
    executor = DaskExecutor(cluster.address, unit_size=unit_size)
    try:
        for _ in range(50):  # the scheduler takes a moment to listen
            try:
                await executor.open()
                break
            except ClusterError:
                await asyncio.sleep(0.2)
        assert executor._client is not None
        await executor._client.wait_for_workers(workers)
        yield cluster, executor
    finally:
        try:
            await executor.aclose()
        finally:
            cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=5000)
    parser.add_argument("--unit-size", type=int, default=UNIT_SIZE)
    parser.add_argument(
        "--workers", type=int,
        help="requests at once, in-process and per unit (default: the CLI's defaults)",
    )  # fmt: skip
    parser.add_argument("--dask-workers", type=int, default=2, help="worker processes")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--dask-defaults", action="store_true",
        help="run the cluster with Dask's default settings, not those docs/scale.md recommends",
    )  # fmt: skip
    parser.add_argument(
        "--plan-memory", type=int, metavar="KEYS",
        help="instead: the coordinator's peak RSS for a plan of KEYS copies (no server)",
    )  # fmt: skip
    parser.add_argument(
        "--local", action="store_true",
        help="with --plan-memory: stream the plan in-process (no Dask client) to compare",
    )  # fmt: skip
    args = parser.parse_args()
    if args.plan_memory:
        plan = plan_memory(args.plan_memory, args.unit_size, args.dask_workers, args.local)
        asyncio.run(plan)
        sys.stdout.flush()
        os._exit(0)
    with tempfile.TemporaryDirectory() as tmp:
        server = LocalS3Server(Path(tmp), access_key=ACCESS_KEY, secret_key=SECRET_KEY)
        server.start()
        try:
            report(asyncio.run(bench(args, server.endpoint_url)))
        finally:
            server.stop()
    sys.stdout.flush()
    os._exit(0)  # the cluster's clients leave threads behind; everything was stopped


if __name__ == "__main__":
    main()
