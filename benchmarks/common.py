"""Shared pieces of the benchmarks: a local server, datasets, and measured subprocess runs.

Every benchmark runs our CLI and s5cmd as subprocesses against the same local SeaweedFS in
the same run, so the ratio is fair whatever the machine is doing; each child's CPU time and
peak RSS come from ``os.wait4`` (that child alone).
"""

from __future__ import annotations

import asyncio
import compileall
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import backup_my_bucket
from backup_my_bucket.localserver import LocalS3Server
from backup_my_bucket.storage.s3 import S3Config, S3Store

from .synthetic_s3 import flat_key, tree_key

T = TypeVar("T")
ACCESS_KEY = "bmbbenchaccess"
SECRET_KEY = "bmb-bench-secret"
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Run:
    label: str
    wall: float
    cpu: float
    max_rss_mb: float
    returncode: int
    stdout: bytes
    server_cpu: float = 0.0  # the local server's CPU seconds during the run (watch_server)

    def line(self, items: int, unit: str = "versions") -> str:
        rate = items / self.wall if self.wall else 0.0
        return (
            f"{self.label:<28} {self.wall:8.2f} s  {rate:10,.0f} {unit}/s  "
            f"cpu {self.cpu:7.2f} s ({1000 * self.cpu / max(items, 1):6.3f} s/1k)  "
            f"peak RSS {self.max_rss_mb:7.1f} MB{server_note(self.server_cpu)}"
        )


_watched: list[int] = []  # the PID of the local server whose CPU each run reports


def watch_server(server: LocalS3Server) -> None:
    """Report ``server``'s CPU time in every measured run from now on: on this machine the
    server shares the client's cores, so client CPU + server CPU over the cores bounds the
    wall time of any client (docs/performance.md, "The CPU budget")."""
    assert server.process is not None, "start the server first"
    _watched[:] = [server.process.pid]


def server_cpu_seconds() -> float:
    """The watched server's user + system CPU so far (0.0 when none is watched)."""
    if not _watched:
        return 0.0
    try:
        with open(f"/proc/{_watched[0]}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


QUIET_CORES = 0.05  # the watched server counts as settled below this CPU use
SETTLE_LIMIT = 30.0  # seconds to wait for it at most


def settle(window: float = 0.5) -> float:
    """Wait until the watched server is idle (its CPU use over ``window`` below
    :data:`QUIET_CORES`), at most :data:`SETTLE_LIMIT` s; the seconds waited.

    After a fill or a run SeaweedFS keeps working for seconds (its store compacts what was
    written), and that work lands in whichever run comes next: the first run after the fill
    paid 20-25 % more server CPU than the same run later. Every run starts from an idle server.
    """
    if not _watched:
        return 0.0
    start = time.perf_counter()
    while time.perf_counter() - start < SETTLE_LIMIT:
        before = server_cpu_seconds()
        time.sleep(window)
        if (server_cpu_seconds() - before) / window < QUIET_CORES:
            break
    return time.perf_counter() - start


def server_note(seconds: float) -> str:
    return f"  server cpu {seconds:6.2f} s" if seconds else ""


def variants(workers: int | None, botocore: bool = True) -> list[tuple[str, list[str]]]:
    """Our CLI as a row runs it: at the CLI defaults (``workers`` None: listings 32, copies
    adapted per endpoint) or ``--workers N``; and, with ``botocore``, the same with the fast
    path off (every request through botocore: what a run on AWS costs without it)."""
    base = ["--workers", str(workers)] if workers else []
    found = [("bmb", base)]
    if botocore:
        found.append(("bmb --no-fast-path", [*base, "--no-fast-path"]))
    return found


def settings_label(workers: int | None) -> str:
    return (
        f"--workers {workers}"
        if workers
        else "CLI defaults (listings 32, copies adapted 16-256 from 128)"
    )


def rotated(items: Sequence[T], turn: int) -> list[T]:
    """``items`` starting at ``turn`` (mod its length): each run order in turn goes first."""
    turn %= max(len(items), 1)
    return [*items[turn:], *items[:turn]]


def against_best_s5cmd(runs: Sequence[tuple[str, float, float, float]], where: str = "") -> None:
    """Print each of our runs against the best s5cmd run over the same items: runs are
    (label, wall seconds, CPU seconds, the server's CPU seconds); labels of s5cmd's start with
    "s5cmd". With the server's CPU known, also the CPU budget: (client + server CPU) / cores,
    the least wall time the pair could take on this machine."""
    best = min((r for r in runs if r[0].startswith("s5cmd")), key=lambda r: r[1])
    for label, wall, cpu, served in runs:
        if not label.startswith("s5cmd"):
            print(
                f"  {where}{label}: {best[1] / wall:.2f}x {best[0]}'s rate (the best s5cmd run); "
                f"CPU {cpu / max(best[2], 1e-9):.2f}x; load average now {os.getloadavg()[0]:.1f}",
                flush=True,
            )
            if served and best[3]:
                print(f"  {where}{budget_line((label, wall, cpu, served), best)}", flush=True)


def budget_line(
    ours: tuple[str, float, float, float], theirs: tuple[str, float, float, float]
) -> str:
    """The CPU budget of two runs, each (label, wall s, client CPU s, server CPU s): (client +
    server CPU) / cores, the least wall time each could take with the server on these cores."""
    cores = os.cpu_count() or 1
    return f"CPU budget (client + server) / {cores} cores: " + ", ".join(
        f"{label} {(cpu + served) / cores:.2f} s in {wall:.2f} s"
        for label, wall, cpu, served in (ours, theirs)
    )


def installed_env() -> dict[str, str]:
    """This environment, for a measured child that runs as a user's installed copy would:
    with the package's bytecode written (``pip install`` writes it; a source tree run under
    PYTHONDONTWRITEBYTECODE, as the development machine's shells set it, compiles every
    module it imports again in every process: ~0.1 s of CPU per command)."""
    if not compileall.compile_dir(Path(backup_my_bucket.__file__).parent, quiet=1):
        print("warning: the package's bytecode could not be written: each run compiles it")
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def server_env(endpoint_url: str) -> dict[str, str]:
    env = installed_env()
    env.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=endpoint_url,
    )
    return env


def rss_mb(pid: int | str = "self") -> tuple[float, float]:
    """A process's resident memory now and its peak so far (VmRSS, VmHWM of its own address
    space, after exec), in MB; zeros when it is gone."""
    found = {"VmRSS": 0.0, "VmHWM": 0.0}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                name, _, value = line.partition(":")
                if name in found:
                    found[name] = int(value.split()[0]) / 1024
    except OSError:
        pass
    return found["VmRSS"], found["VmHWM"]


def _peak_rss_mb(pid: int) -> float:
    return rss_mb(pid)[1]


def measure(label: str, args: Sequence[str], env: dict[str, str], capture: bool = False) -> Run:
    """Run a command, once the watched server is idle (:func:`settle`); return its wall time,
    own CPU time and own peak RSS.

    CPU comes from ``os.wait4`` (that child alone). Peak RSS is the child's VmHWM, polled:
    wait4's ``ru_maxrss`` would report the forked copy of this process from before exec.
    """
    settle()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        served = server_cpu_seconds()
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(args), env=env, stdout=out if capture else subprocess.DEVNULL, stderr=err
        )
        peak = 0.0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)  # reaps it, with its own rusage
            if pid:
                break
            peak = max(peak, _peak_rss_mb(proc.pid))
            time.sleep(0.02)
        wall = time.perf_counter() - start
        served = server_cpu_seconds() - served
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        if code != 0:
            err.seek(0)
            message = err.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"{label} failed ({code}): {message}")
        out.seek(0)
        stdout = out.read() if capture else b""
    return Run(label, wall, usage.ru_utime + usage.ru_stime, peak, code, stdout, served)


def audit_alone(bucket: str, env: dict[str, str], *, current: bool = False) -> tuple[Run, int]:
    """The listing audit's own ListObjectsV2 pass over ``bucket``, alone (it runs beside every
    audited listing), or with ``current`` that walk sorted as a restore reads its target: its
    run, and how many requests it made."""
    argv = [sys.executable, "-m", "benchmarks.audit_alone", *(["--current"] if current else []),
            bucket]  # fmt: skip
    name = "target listing alone (V2, sorted)" if current else "audit alone (ListObjectsV2)"
    run = measure(name, argv, env, capture=True)
    return run, int(json.loads(run.stdout)["requests"])


def tree_keys(n: int) -> list[str]:
    """A directory tree: 2 levels of directories, 100 files per leaf."""
    return [tree_key(i) for i in range(n)]


def flat_keys(n: int) -> list[str]:
    return [flat_key(i) for i in range(n)]


async def fill(
    server: LocalS3Server,
    bucket: str,
    keys: Sequence[str],
    *,
    overwrite: float = 0.2,
    delete: float = 0.05,
    size: int = 64,
    versioned: bool = True,
    concurrency: int = 64,
) -> tuple[int, int]:
    """Create a bucket with ``keys``, some overwritten and some deleted.

    Returns (versions written, keys live at the end).
    """
    config = S3Config(
        endpoint_url=server.endpoint_url,
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        max_pool_connections=concurrency + 8,
    )
    rng = random.Random(bucket)
    async with S3Store(config) as store:
        await store.create_bucket(bucket)
        if versioned:
            await store.set_versioning(bucket, True)
        sem = asyncio.Semaphore(concurrency)
        payload = os.urandom(size)
        versions = 0
        deleted = 0

        async def one(key: str) -> None:
            nonlocal versions, deleted
            async with sem:
                await store.put(bucket, key, payload)
                versions += 1
                if rng.random() < overwrite:
                    await store.put(bucket, key, payload[::-1])
                    versions += 1
                if rng.random() < delete:
                    await store.delete(bucket, key)
                    versions += 1
                    deleted += 1

        for start in range(0, len(keys), 5000):
            await asyncio.gather(*(one(k) for k in keys[start : start + 5000]))
        return versions, len(keys) - deleted


def self_peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
