"""The same commands in-process and on a Dask cluster (2 worker processes) against SeaweedFS:
identical end states, catalogs and JSON summaries; a worker killed mid-restore and mid-sync.

One LocalCluster serves the module (``cluster``, tests/cli/conftest.py)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from backup_my_bucket.engine.cluster import DaskExecutor
from backup_my_bucket.engine.progress import NullProgress
from backup_my_bucket.engine.restore import Mode, run_restore
from backup_my_bucket.engine.snapshot import live_state
from backup_my_bucket.engine.sync import SyncOptions, sync
from backup_my_bucket.model import S3Url
from backup_my_bucket.storage.s3 import S3Store

from ..conftest import S3Server, is_data, unique_bucket
from ..engine.test_allocator import read_faults
from ..engine.test_truth import put_multipart
from ..samples import ATTRS, TAGS
from .conftest import bmb

pytestmark = pytest.mark.s3


MiB = 1024 * 1024
# folders beside files sharing their prefix, an object over 5 MiB, a multipart one, odd keys
LAYOUT = {
    "img0/a.txt": b"a",
    "img0/b/c.txt": b"c" * 100,
    "img0-1.txt": b"dash",
    "img0.idx": b"idx",
    "big.bin": bytes(range(256)) * (6 * MiB // 256),
    "sp ace/ü+%25.txt": "ü".encode(),
    "a//double": b"double",
}


async def _fill(store: S3Store, bucket: str) -> None:
    for key, body in LAYOUT.items():
        await store.put(bucket, key, body, attrs=ATTRS, tags=TAGS)
    await put_multipart(store, bucket, "multi.bin", bytes(12 * MiB))


async def _state(store: S3Store, bucket: str) -> dict[str, Any]:
    """Every version of every data key (size, ETag, delete marker) in order, and the live
    objects' attributes: what a run leaves behind, minus version ids and times."""
    versions: dict[str, list[tuple[int, str | None, bool]]] = {}
    async for v in _all_versions(store, bucket):
        versions.setdefault(v.key, []).append((v.size, v.etag, v.is_delete_marker))
    live = {}
    async for v in live_state(store, S3Url(bucket, ""), workers=8):
        if is_data(v.key):
            info = await store.head(bucket, v.key)
            live[v.key] = (info.size, info.etag, info.attrs.content_type)
    return {"versions": versions, "live": live}


async def _all_versions(store: S3Store, bucket: str) -> Any:
    from backup_my_bucket.storage.iterate import iter_versions

    async for v in iter_versions(store, bucket):
        if is_data(v.key):
            yield v


def _normal(text: str, names: dict[str, str]) -> Any:
    """A JSON summary with this run's bucket names, snapshot ids and times replaced."""
    for name, label in names.items():
        text = text.replace(name, label)
    text = re.sub(r"\d{8}T\d{6}Z-[0-9a-f]{6}", "<snapshot>", text)
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "<time>", text)
    text = re.sub(
        r'"(id|snapshot_id|seconds|duration[a-z_]*|elapsed[a-z_]*)": [^,}]+', r'"\1": 0', text
    )
    return [json.loads(line) for line in text.splitlines()]


async def _scenario(
    s3_store: S3Store, capsys: pytest.CaptureFixture[str], *executor: str
) -> dict[str, Any]:
    """backup, change, sync, restore in every mode, gc, verify; every JSON summary and the
    end state of every bucket involved."""
    src, bak = unique_bucket("xsrc"), unique_bucket("xbak")
    targets = {mode: unique_bucket(f"x{mode.value[:4]}") for mode in Mode}
    names = {src: "<src>", bak: "<bak>"} | {t: f"<{m.value}>" for m, t in targets.items()}
    for bucket in (src, bak, *targets.values()):
        await s3_store.create_bucket(bucket)
    for bucket in (bak, targets[Mode.ROLLBACK]):
        await s3_store.set_versioning(bucket, True)
    await _fill(s3_store, src)
    for target in targets.values():  # something to overwrite, something extra to delete
        await s3_store.put(target, "img0.idx", b"stale")
        await s3_store.put(target, "img0/extra", b"extra")
    summaries: dict[str, Any] = {}

    async def run(label: str, *args: str) -> None:
        code, out, err = await bmb(capsys, *executor, "--json", *args)
        assert code == 0, f"{label}: {err}"
        summaries[label] = _normal(out, names)

    urls = ["--source", f"s3://{src}", "--backup", f"s3://{bak}"]
    await asyncio.sleep(1.05)
    await run("backup", "backup", *urls)
    code, out, _ = await bmb(capsys, "--json", "snapshots", "--backup", f"s3://{bak}")
    assert code == 0
    snapshot = json.loads(out.splitlines()[0])["id"]
    await asyncio.sleep(1.05)
    await s3_store.put(src, "img0-1.txt", b"changed")
    await s3_store.delete(src, "img0/a.txt")
    await s3_store.put(src, "img0/new", b"new")
    await asyncio.sleep(1.05)  # copies strictly newer than their sources, whatever the speed
    await run("sync", "sync", *urls)
    await run("backup again", "backup", *urls)
    for mode, target in targets.items():
        restore = ["restore", snapshot, "--backup", f"s3://{bak}", "--to", f"s3://{target}"]
        await run(f"restore {mode.value}", *restore, "--mode", mode.value, "--yes")
    await run("gc", "gc", "--backup", f"s3://{bak}", "--keep-last", "1")
    code, out, _ = await bmb(capsys, "--json", "snapshots", "--backup", f"s3://{bak}")
    latest = json.loads(out.splitlines()[-1])["id"]
    await run("verify", "verify", latest, "--backup", f"s3://{bak}", "--read-data", "100")
    await run("catalog", "snapshots", "--backup", f"s3://{bak}")
    states = {label: await _state(s3_store, b) for b, label in names.items()}
    return {"summaries": summaries, "states": states}


async def test_the_same_commands_give_the_same_results_on_a_cluster(
    cli_env: None, cluster: str, s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    local = await _scenario(s3_store, capsys)
    remote = await _scenario(s3_store, capsys, "--executor", cluster)
    for label, summary in local["summaries"].items():
        assert remote["summaries"][label] == summary, label
    assert remote["states"] == local["states"]
    executor = DaskExecutor("tcp://" + cluster.removeprefix("dask://"))
    await executor.open()
    try:
        assert all(units > 0 for units in await _units_per_worker(executor))  # both worked
    finally:
        await executor.aclose()
    assert local["summaries"]["restore rollback"][0]["copied"] > 0  # work was done at all
    assert local["summaries"]["gc"][0]["versions_deleted"] > 0


def _units_run() -> int:
    from backup_my_bucket.engine import cluster_worker

    return cluster_worker.units_run


async def _units_per_worker(executor: DaskExecutor) -> list[int]:
    assert executor._client is not None
    return sorted((await executor._client.run(_units_run)).values())


class _KillAfter(NullProgress):
    """Progress that SIGKILLs one worker process once ``after`` copies are done."""

    def __init__(self, pid: int, after: int) -> None:
        self.pid, self.after, self.done, self.killed = pid, after, 0, False
        self.copying = False

    def start(self, description: str, *args: Any, **kwargs: Any) -> None:
        self.copying = description in ("sync", "restore: copying")  # not planning

    def advance(self, items: int = 1, nbytes: int = 0) -> None:
        self.done += items * self.copying
        if self.done >= self.after and not self.killed:
            os.kill(self.pid, signal.SIGKILL)
            self.killed = True


KEYS = 160
UNIT = 4


async def _killing_executor(cluster: str) -> tuple[DaskExecutor, int]:
    executor = DaskExecutor("tcp://" + cluster.removeprefix("dask://"), unit_size=UNIT)
    await executor.open()
    assert executor._client is not None
    await executor._client.wait_for_workers(2)
    pids = await executor._client.run(os.getpid)
    return executor, sorted(pids.values())[0]


async def _versions_beyond_one(store: S3Store, bucket: str) -> int:
    counts: dict[str, int] = {}
    async for v in _all_versions(store, bucket):
        counts[v.key] = counts.get(v.key, 0) + 1
    return sum(n - 1 for n in counts.values())


async def _live(store: S3Store, bucket: str) -> dict[str, tuple[int, str | None]]:
    return {
        v.key: (v.size, v.etag)
        async for v in live_state(store, S3Url(bucket, ""), workers=8)
        if is_data(v.key)
    }


IN_FLIGHT = 4  # units the executor keeps in flight: two per worker thread (conftest's cluster)


async def test_a_worker_killed_mid_sync_and_mid_restore(
    cluster: str, s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command completes with the exact end state; the units the killed worker held run
    again elsewhere, so copies they had made land twice in a versioned bucket: at most the
    units in flight when it died, which the executor keeps at two per worker thread (4 in
    this cluster of 2 single-thread workers), each UNIT copies; the figure is printed
    (docs/scale.md)."""
    src, bak, dst = unique_bucket("ksrc"), unique_bucket("kbak"), unique_bucket("kdst")
    for bucket in (src, bak, dst):
        await s3_store.create_bucket(bucket)
    for bucket in (bak, dst):
        await s3_store.set_versioning(bucket, True)
    await asyncio.gather(*(s3_store.put(src, f"k/{i:04d}", b"x" * i) for i in range(KEYS)))
    await asyncio.sleep(1.05)

    executor, pid = await _killing_executor(cluster)
    try:
        killer = _KillAfter(pid, KEYS // 4)
        options = SyncOptions(workers=4, executor=executor)
        result = await sync(s3_store, S3Url(src, ""), s3_store, S3Url(bak, ""), options, killer)
        assert killer.killed
        assert (result.copied, result.failed) == (KEYS, 0)
        assert await _live(s3_store, bak) == await _live(s3_store, src)
        twice_sync = await _versions_beyond_one(s3_store, bak)
        assert twice_sync <= IN_FLIGHT * UNIT

        await executor._client.wait_for_workers(2)  # type: ignore[union-attr]
        pid = sorted((await executor._client.run(os.getpid)).values())[0]  # type: ignore[union-attr]
        killer = _KillAfter(pid, KEYS // 4)
        restored = await run_restore(
            backup_store=s3_store,
            backup=S3Url(bak, ""),
            desired=live_state(s3_store, S3Url(bak, ""), workers=8),
            target_store=s3_store,
            target=S3Url(dst, ""),
            point="kill-test",
            mode=Mode.SAFE,
            workers=4,
            progress=killer,
            executor=executor,
        )
        assert killer.killed
        assert (restored.copied, restored.failed, restored.verified) == (KEYS, 0, True), (
            restored.failures[:3]
        )
        assert await _live(s3_store, dst) == await _live(s3_store, src)
        twice_restore = await _versions_beyond_one(s3_store, dst)
        assert twice_restore <= IN_FLIGHT * UNIT
        with capsys.disabled():
            print(
                f"\n[figure] worker killed: sync copied {twice_sync}, restore copied "
                f"{twice_restore} of {KEYS} versions twice (units of {UNIT}; "
                f"{executor.retried} units resubmitted)",
                file=sys.stderr,
            )
        await executor._client.wait_for_workers(2)  # type: ignore[union-attr]  # restarted
    finally:
        await executor.aclose()


async def test_without_dask_the_flag_names_the_extra(
    cli_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # an import of it fails
    monkeypatch.delitem(sys.modules, "backup_my_bucket.engine.cluster")
    urls = ["--source", "s3://nowhere-src", "--backup", "s3://nowhere-bak"]
    code, _, err = await bmb(capsys, "--executor", "dask://127.0.0.1:8786", "sync", *urls)
    assert code == 1
    assert "needs dask[distributed], which is not installed" in err
    assert "pip install 'backup-my-bucket[dask]'" in err


@pytest.mark.parametrize("value", ["spark://h:1", "dask://host", "dask://:8786", "dask://h:0"])
async def test_a_wrong_executor_is_a_usage_error(
    value: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = await bmb(
        capsys, "--executor", value, "sync", "--source", "s3://a", "--backup", "s3://b"
    )
    assert code == 2
    assert f"not an executor: {value!r}" in err and "dask://HOST:PORT" in err
    monkeypatch.setenv("BMB_EXECUTOR", value)
    code, _, err = await bmb(capsys, "sync", "--source", "s3://a", "--backup", "s3://b")
    assert (code, "(from the environment: BMB_EXECUTOR)" in err) == (2, True)
    monkeypatch.delenv("BMB_EXECUTOR")
    config = tmp_path / "bmb.toml"
    config.write_text(f'executor = "{value}"\n')
    code, _, err = await bmb(
        capsys, "--config", str(config), "sync", "--source", "s3://a", "--backup", "s3://b"
    )
    assert (code, "(from the config file)" in err) == (2, True)


async def test_workers_of_another_version_are_refused(
    cli_env: None, cluster: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Units are pickled by reference to this code: a worker running other code would fail
    each unit in its own way, or worse. The executor refuses before the first unit, even
    when the version string is the same (two checkouts of one version: the code's digest)."""
    from backup_my_bucket import __version__
    from backup_my_bucket.engine import cluster_worker

    monkeypatch.setattr(cluster_worker, "source_digest", lambda package: "0ther")  # here only
    urls = ["--source", "s3://nowhere-src", "--backup", "s3://nowhere-bak"]
    code, _, err = await bmb(capsys, "--executor", cluster, "sync", *urls)
    assert code == 1
    assert re.search(r"[12] worker\(s\) of the Dask cluster at tcp://", err)  # 1: a restart
    assert f"backup-my-bucket {__version__}+" in err  # the workers' real digest
    assert f"this is {__version__}+0ther" in err
    assert "install the same build of backup-my-bucket" in err


def test_a_unit_carries_no_credentials(s3_server: S3Server, s3_store: S3Store) -> None:
    """What travels to a worker: the store's configuration without its keys."""
    import pickle

    from backup_my_bucket.engine.cluster import portable
    from backup_my_bucket.engine.cluster_worker import Packed, Unit
    from backup_my_bucket.engine.executor import DeleteKey
    from backup_my_bucket.engine.rate import Share

    assert s3_store.config.secret_key == s3_server.secret_key  # the coordinator has them
    config = portable(s3_store)
    assert (config.access_key, config.secret_key) == (None, None)
    assert config.endpoint_url == s3_store.config.endpoint_url
    unit = Unit(DeleteKey(S3Url("b", "")), (config,), Packed.of([]), 4, 3, Share("k", 0, 9), 1)
    payload = pickle.dumps(unit)
    assert s3_server.secret_key.encode() not in payload
    assert s3_server.access_key.encode() not in payload


async def test_an_in_memory_store_cannot_go_to_a_cluster(cluster: str) -> None:
    from backup_my_bucket.engine.executor import DeleteKey, Job
    from backup_my_bucket.errors import UsageError
    from backup_my_bucket.storage.memory import MemoryStore

    executor = DaskExecutor("tcp://" + cluster.removeprefix("dask://"))
    await executor.open()
    try:
        with pytest.raises(UsageError, match="S3 endpoints only"):
            async for _ in executor.map(["k"], Job(DeleteKey(S3Url("b", "")), (MemoryStore(),), 1)):
                pass
    finally:
        await executor.aclose()


async def test_the_dask_setting_is_the_callers_again_after_the_executor(
    cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dask.config

    from backup_my_bucket.engine import cluster as cluster_module
    from backup_my_bucket.errors import ClusterError

    name = "distributed.admin.low-level-log-length"
    with dask.config.set({name: 12_345}):  # a library user's own setting
        executor = DaskExecutor("tcp://" + cluster.removeprefix("dask://"))
        await executor.open()
        try:
            assert dask.config.get(name) == cluster_module.MESSAGE_LOG
        finally:
            await executor.aclose()
        assert dask.config.get(name) == 12_345

        monkeypatch.setattr(cluster_module, "CONNECT_SECONDS", 0.5)
        with pytest.raises(ClusterError, match="cannot reach"):
            await DaskExecutor("tcp://127.0.0.1:9").open()  # nothing listens there
        assert dask.config.get(name) == 12_345


async def test_the_workers_socket_reads_reuse_memory(cluster: str) -> None:
    """Dask's nanny starts each worker with MALLOC_TRIM_THRESHOLD_=65536, which froze glibc's
    mmap threshold below asyncio's 256 KiB reads: two page faults and ~0.05 ms of CPU per
    copy (docs/scale.md). The executor raises the thresholds on every worker it uses."""
    executor = DaskExecutor("tcp://" + cluster.removeprefix("dask://"))
    await executor.open()
    try:
        assert executor._client is not None
        environ = await executor._client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_")
        faults = await executor._client.run(read_faults)
    finally:
        await executor.aclose()
    assert set(environ.values()) == {"65536"} and len(faults) == 2
    assert all(per_read < 0.1 for per_read in faults.values()), faults
