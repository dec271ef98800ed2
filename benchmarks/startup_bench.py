"""Whole-process start-up: `bmb --help`, `bmb snapshots`, and a no-op `bmb backup`.

    python -m benchmarks.startup_bench [--keys 1000] [--runs 5] [--bmb PATH] [--vs PATH]

Each command runs ``--runs`` times as a process of its own (after one untimed warm-up run,
which also writes the ``.pyc`` files pip writes at install: PYTHONDONTWRITEBYTECODE is
dropped from the children's environment, else a source tree is compiled again in every run,
~0.1 s of CPU), its start-up and set-up included; the wall time is a monotonic clock read
around the child, its CPU the child's own (``os.wait4``). Printed: min, median and max of each (quote the
median). The no-op backup syncs a bucket of ``--keys`` small objects that is already backed
up (a listing of each side, nothing to copy), then takes its snapshot (a listing of the backup
bucket, the Parquet index, the catalog entry): what a scheduled backup of an unchanged bucket
costs. ``snapshots`` lists the backup's catalog, which lives in its bucket (one store
opened). The server is a local SeaweedFS. ``--vs PATH`` times a second CLI (an
older build: the "before" figure) in the same run, the two taking turns run by run.
Figures are in docs/performance.md ("Start-up").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from backup_my_bucket.localserver import LocalS3Server

from .common import ACCESS_KEY, BIN, SECRET_KEY, fill, server_env


def timed(args: Sequence[str], env: dict[str, str]) -> tuple[float, float]:
    """One run: (wall seconds, CPU seconds of that child). Fails on a non-zero exit."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        pid = os.posix_spawn(
            args[0], list(args), env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_DUP2, err.fileno(), 2),
            ],
        )  # fmt: skip
        _, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - start
        if (code := os.waitstatus_to_exitcode(status)) != 0:
            err.seek(0)
            message = err.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"{' '.join(args)} failed ({code}): {message}")
    return wall, usage.ru_utime + usage.ru_stime


def spread(values: Sequence[float]) -> str:
    return (
        f"min {min(values):6.3f}  median {statistics.median(values):6.3f}  max {max(values):6.3f}"
    )


def bench(label: str, clis: dict[str, list[str]], args: list[str], env: dict[str, str],
          runs: int) -> None:  # fmt: skip
    walls: dict[str, list[float]] = {name: [] for name in clis}
    cpus: dict[str, list[float]] = {name: [] for name in clis}
    for cli in clis.values():
        timed([*cli, *args], env)  # warm-up: file caches, .pyc files
    for _ in range(runs):
        for name, cli in clis.items():  # in turn, run by run
            wall, cpu = timed([*cli, *args], env)
            walls[name].append(wall)
            cpus[name].append(cpu)
    for name in clis:
        print(f"{label + name:<40} wall s: {spread(walls[name])}   cpu s: {spread(cpus[name])}",
              flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keys", type=int, default=1000, help="objects in the source bucket")
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each command")
    parser.add_argument("--bmb", default=str(BIN / "bmb"), help="the CLI to time")
    parser.add_argument("--vs", help="another CLI to time in the same runs (e.g. an older build)")
    parser.add_argument(
        "--option", action="append", default=[], help="a global option for every run (repeat)"
    )
    args = parser.parse_args()
    bmb = [args.bmb, *args.option]
    clis = {"": bmb, **({" (vs)": [args.vs, *args.option]} if args.vs else {})}
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} cores")
    with (
        tempfile.TemporaryDirectory(prefix="bmb-startup-") as work,
        LocalS3Server(access_key=ACCESS_KEY, secret_key=SECRET_KEY) as server,
    ):
        env = server_env(server.endpoint_url)
        # (server_env dropped PYTHONDONTWRITEBYTECODE: the warm-up writes --vs's bytecode)
        env.update(XDG_DATA_HOME=str(Path(work) / "data"), XDG_CACHE_HOME=str(Path(work) / "c"))
        env.update(XDG_CONFIG_HOME=str(Path(work) / "config"))
        asyncio.run(fill(server, "source", [f"d{i // 100:02d}/f{i:05d}.bin" for i in range(args.keys)],
                         overwrite=0, delete=0, versioned=False))  # fmt: skip
        asyncio.run(fill(server, "backup", [], versioned=True))
        buckets = ["--source", "s3://source", "--backup", "s3://backup"]
        timed([*bmb, "backup", *buckets], env)  # the first backup copies everything
        bench("bmb --help", clis, ["--help"], env, args.runs)
        bench("bmb snapshots", clis, ["snapshots", "--backup", "s3://backup"], env, args.runs)
        bench(f"bmb backup (no-op, {args.keys:,} keys)", clis, ["backup", *buckets], env,
              args.runs)  # fmt: skip
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", file=sys.stderr)


if __name__ == "__main__":
    main()
