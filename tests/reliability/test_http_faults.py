"""With 5 % of HTTP requests failing at the wire (503 SlowDown, 500 InternalError, connection
reset, or added latency, injected by :mod:`.faultproxy`), the CLI's sync, snapshot, restore and
gc end, after reruns where a user would rerun, in exactly the state of a fault-free run."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backup_my_bucket.model import ObjectVersion
from backup_my_bucket.storage.iterate import iter_objects, iter_versions
from backup_my_bucket.storage.s3 import S3Store

from .. import figures
from ..cli.conftest import bmb
from ..conftest import S3Server, is_data, unique_bucket
from .faultproxy import FaultProxy

pytestmark = pytest.mark.s3

MAX_RUNS = 6  # the first run and at most five reruns
RATE = 0.05
SEED = 8
COMMANDS = ("sync", "snapshot", "restore", "snapshots", "gc", "verify")


@pytest.fixture
def proxy(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    with FaultProxy(s3_server.endpoint_url, rate=RATE, seed=SEED) as fault_proxy:
        for name, value in s3_server.env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("AWS_ENDPOINT_URL", fault_proxy.url)
        yield fault_proxy


async def fill(store: S3Store, bucket: str, items: dict[str, bytes]) -> None:
    gate = asyncio.Semaphore(64)

    async def put(key: str, data: bytes) -> None:
        async with gate:
            await store.put(bucket, key, data)

    await asyncio.gather(*(put(key, data) for key, data in items.items()))


async def current(store: S3Store, bucket: str) -> dict[str, str | None]:
    return {o.key: o.etag async for o in iter_objects(store, bucket) if is_data(o.key)}


async def versions(store: S3Store, bucket: str) -> list[ObjectVersion]:
    return [v async for v in iter_versions(store, bucket) if is_data(v.key)]


class Runner:
    """Runs a CLI command through the proxy, rerunning it while it fails, as a user would."""

    def __init__(self, capsys: pytest.CaptureFixture[str], proxy: FaultProxy) -> None:
        self.capsys = capsys
        self.proxy = proxy
        self.reruns: dict[str, int] = {}
        self.seconds: dict[str, float] = {}

    async def __call__(self, *args: str) -> str:
        command = next(a for a in args if a in COMMANDS)
        errors = []
        started = time.monotonic()
        for attempt in range(MAX_RUNS):
            code, out, err = await bmb(
                self.capsys, "--endpoint-url", self.proxy.url, "--json", "--workers", "16", *args
            )
            if code == 0:
                self.reruns[command] = self.reruns.get(command, 0) + attempt
                elapsed = time.monotonic() - started
                self.seconds[command] = round(self.seconds.get(command, 0) + elapsed, 1)
                return out
            errors.append(f"exit {code}: {err.strip()[-500:]}")
        raise AssertionError(f"{command}: no clean run in {MAX_RUNS}:\n" + "\n".join(errors))


@pytest.mark.parametrize(
    ("keys", "changed_keys"),
    [
        pytest.param(2000, 100, marks=pytest.mark.slow, id="2000-keys"),  # ~65 s
        pytest.param(300, 20, id="300-keys"),  # the default run's share, ~12 s
    ],
)
async def test_cli_converges_under_http_faults(
    keys: int,
    changed_keys: int,
    proxy: FaultProxy,
    s3_store: S3Store,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    src, bak, dst = unique_bucket("hf-src"), unique_bucket("hf-bak"), unique_bucket("hf-dst")
    for bucket in (src, bak, dst):
        await s3_store.create_bucket(bucket)
    await s3_store.set_versioning(bak, True)
    await fill(s3_store, src, {f"d{i % 40:02d}/k{i:05d}": f"v{i}".encode() for i in range(keys)})
    original = await current(s3_store, src)
    assert len(original) == keys
    run = Runner(capsys, proxy)
    catalog = ["--catalog", str(tmp_path / "catalog")]  # global option: goes first

    # sync: the backup's current state is the source
    await run("sync", "--source", f"s3://{src}", "--backup", f"s3://{bak}")
    synced = await current(s3_store, bak)
    figures.objects(original, synced, what="sync under HTTP faults")
    assert synced == original
    assert len(await versions(s3_store, bak)) == keys  # no duplicate copies from reruns

    # snapshot, then rollback-restore it into a fresh bucket
    await asyncio.sleep(1.1)  # S3 times are whole seconds: the snapshot must follow the sync
    first = json.loads(
        await run(*catalog, "snapshot", "--backup", f"s3://{bak}", "--source", f"s3://{src}")
    )
    assert first["keys"] == keys
    await run(
        *catalog, "restore", first["id"], "--to", f"s3://{dst}", "--mode", "rollback",
        "--journal-dir", str(tmp_path / "journal"),
    )  # fmt: skip
    restored = await current(s3_store, dst)
    figures.objects(original, restored, what="restore under HTTP faults")
    assert restored == original

    # change the source, back it up again, snapshot, and gc down to the newest snapshot
    names = sorted(original)
    await fill(s3_store, src, {key: b"changed " + key.encode() for key in names[:changed_keys]})
    for key in names[changed_keys : 2 * changed_keys]:
        await s3_store.delete(src, key)
    changed = await current(s3_store, src)
    await run("sync", "--source", f"s3://{src}", "--backup", f"s3://{bak}")
    synced = await current(s3_store, bak)
    figures.objects(changed, synced, what="sync under HTTP faults")
    assert synced == changed
    await asyncio.sleep(1.1)
    second = json.loads(
        await run(*catalog, "snapshot", "--backup", f"s3://{bak}", "--source", f"s3://{src}")
    )
    assert second["keys"] == keys - changed_keys
    before = await versions(s3_store, bak)
    assert len(before) == keys + 2 * changed_keys  # + the overwrites, + the delete markers
    await run(*catalog, "gc", "--backup", f"s3://{bak}", "--keep-last", "1")

    # the first snapshot's own versions (old contents of changed and deleted keys) are gone;
    # every current version and delete marker is still there; the kept snapshot verifies
    after = await versions(s3_store, bak)
    figures.objects(
        {(v.key, v.version_id): v.etag for v in before if v.is_latest},
        {(v.key, v.version_id): v.etag for v in after},
        what="gc under HTTP faults (current versions and delete markers)",
    )
    assert sorted(after, key=lambda v: v.key) == sorted(
        (v for v in before if v.is_latest), key=lambda v: v.key
    )
    out = await run(*catalog, "snapshots", "--backup", f"s3://{bak}")
    assert [json.loads(line)["id"] for line in out.splitlines()] == [second["id"]]
    await run(*catalog, "verify", second["id"], "--backup", f"s3://{bak}")
    assert await current(s3_store, bak) == changed

    stats = proxy.stats
    print(f"\nfaults injected: {stats.faults} of {stats.requests} requests "
          f"{dict(stats.injected)}; reruns: {run.reruns}; seconds: {run.seconds}")  # fmt: skip
    assert stats.faults > 0.03 * stats.requests  # the faults were really there
    figures.record(
        "faults", layer="http", requests=stats.requests, kinds=dict(stats.injected),
        reruns=sum(run.reruns.values()),
    )  # fmt: skip
