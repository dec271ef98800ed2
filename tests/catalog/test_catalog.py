"""Catalogs: atomic publish, id resolution, corrupt indexes, format versions, the lock."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backup_my_bucket.catalog import (
    Catalog,
    LocalCatalog,
    LockInfo,
    S3Catalog,
    resolve_id,
)
from backup_my_bucket.catalog.index import IndexWriter, SnapshotMeta
from backup_my_bucket.clock import ManualClock
from backup_my_bucket.errors import (
    CorruptIndex,
    ExitCode,
    Locked,
    SnapshotNotFound,
    UnsupportedFormat,
    UsageError,
)
from backup_my_bucket.model import ObjectVersion, S3Url
from backup_my_bucket.storage.memory import MemoryStore
from backup_my_bucket.storage.protocol import ObjectStore
from backup_my_bucket.storage.scratch import pid_alive

from ..conftest import BucketFactory, unique_bucket

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def write_index(path: Path, snapshot_id: str, n: int) -> tuple[str, int]:
    writer = IndexWriter(path, snapshot_id)
    for i in range(n):
        writer.add(ObjectVersion(f"k/{i:06d}", f"v{i}", T0, size=i, etag=f"e{i}"))
    return writer.close()


def make_meta(snapshot_id: str, path: Path, n: int, at: datetime = T0) -> SnapshotMeta:
    sha, size = write_index(path, snapshot_id, n)
    return SnapshotMeta(
        id=snapshot_id, at=at, created=at, backup="s3://b", source=None, keys=n,
        total_bytes=sum(range(n)), index_sha256=sha, index_size=size,
    )  # fmt: skip


@pytest.fixture(params=["local", "memory", pytest.param("s3", marks=pytest.mark.s3)])
def make_catalog(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Callable[[], Awaitable[Catalog]]:
    """A catalog on local disk, and one in a bucket: in memory and on SeaweedFS."""
    store: ObjectStore | None = (
        request.getfixturevalue("s3_store")
        if request.param == "s3"
        else MemoryStore()
        if request.param == "memory"
        else None
    )

    async def make() -> Catalog:
        clock = ManualClock(T0)
        if store is None:
            return LocalCatalog(tmp_path / "catalog", clock)
        bucket = unique_bucket("cat")
        await store.create_bucket(bucket)
        return S3Catalog(store, S3Url(bucket, "bmb/catalog"), tmp_path / "cache", clock)

    return make


async def test_publish_list_resolve_remove(
    make_catalog: Callable[[], Awaitable[Catalog]], tmp_path: Path
) -> None:
    catalog = await make_catalog()
    metas = []
    for i, n in enumerate([3, 70_000, 0]):
        path = tmp_path / f"s{i}.parquet"
        metas.append(make_meta(f"2026112{i}T100000Z-abc{i}", path, n, T0 + timedelta(days=i)))
        await catalog.publish(metas[-1], path)
    listed = await catalog.list()
    assert [m.id for m in listed] == [m.id for m in metas]
    assert await catalog.resolve("latest") == metas[2]
    assert await catalog.resolve("20261121") == metas[1]
    reader = await catalog.open_index(metas[1])
    assert sum(1 for _ in reader.rows()) == 70_000
    under = [v.key for v in reader.rows("k/06999")]
    assert under == [f"k/06999{d}" for d in range(10)]
    assert [v.key for v in reader.rows("k/069999")] == ["k/069999"]
    assert list(reader.rows("zzz")) == []
    await catalog.remove([metas[0].id])
    assert [m.id for m in await catalog.list()] == [metas[1].id, metas[2].id]


def test_resolve_id_errors() -> None:
    metas = [
        SnapshotMeta(
            id=i,
            at=T0,
            created=T0,
            backup="s3://b",
            source=None,
            keys=0,
            total_bytes=0,
            index_sha256="",
            index_size=0,
        )
        for i in ["20261126T1-aa", "20261126T1-ab", "20261127T1-cc"]
    ]
    with pytest.raises(UsageError, match="ambiguous"):
        resolve_id("20261126", metas)
    with pytest.raises(SnapshotNotFound) as info:
        resolve_id("2025", metas)
    assert info.value.exit_code == ExitCode.NOT_FOUND
    assert resolve_id("20261126T1-ab", metas).id == "20261126T1-ab"
    with pytest.raises(SnapshotNotFound):
        resolve_id("latest", [])


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete", "garbage"])
async def test_damaged_index_is_refused_naming_the_file(tmp_path: Path, damage: str) -> None:
    catalog = LocalCatalog(tmp_path / "c", ManualClock(T0))
    meta = make_meta("s1", tmp_path / "s1.parquet", 1000)
    await catalog.publish(meta, tmp_path / "s1.parquet")
    index = await catalog.index_path(meta)
    raw = index.read_bytes()
    if damage == "truncate":
        index.write_bytes(raw[: len(raw) // 2])
    elif damage == "flip":
        index.write_bytes(raw[:100] + bytes([raw[100] ^ 1]) + raw[101:])
    elif damage == "delete":
        index.unlink()
    else:
        index.write_bytes(b"x" * len(raw))
    with pytest.raises(CorruptIndex) as info:
        await catalog.open_index(meta)
    assert str(index) in info.value.message and info.value.hint


@pytest.mark.parametrize(
    "damage", ["newer-format", "truncated", "not-json", "no-index", "short-index"]
)
async def test_a_damaged_snapshot_affects_only_itself(
    make_catalog: Callable[[], Awaitable[Catalog]], tmp_path: Path, damage: str
) -> None:
    """One bad manifest or index: listed as damaged, the others listed and readable."""
    catalog = await make_catalog()
    metas = []
    for i in range(3):
        path = tmp_path / f"s{i}.parquet"
        metas.append(make_meta(f"2026112{i}T100000Z-abc{i}", path, 5, T0 + timedelta(days=i)))
        await catalog.publish(metas[-1], path)
    bad = metas[1]
    raw = bad.dumps()
    if damage == "newer-format":
        data = json.loads(raw)
        data["format_version"] = "4.0"
        await _write(catalog, f"snapshots/{bad.id}.json", json.dumps(data).encode())
    elif damage == "truncated":
        await _write(catalog, f"snapshots/{bad.id}.json", raw[: len(raw) // 2])
    elif damage == "not-json":
        await _write(catalog, f"snapshots/{bad.id}.json", b"[1, 2]")
    elif damage == "no-index":
        await _delete(catalog, f"index/{bad.id}.parquet")
    else:
        index = (tmp_path / "s1.parquet").read_bytes()
        await _write(catalog, f"index/{bad.id}.parquet", index[:100])
    listing = await catalog.scan()
    assert [d.id for d in listing.damaged] == [bad.id]
    problem = listing.damaged[0].problem
    expected = {"newer-format": "newer", "truncated": "unreadable", "not-json": "unreadable",
                "no-index": "missing", "short-index": "100 bytes"}[damage]  # fmt: skip
    assert expected in problem
    assert [m.id for m in listing.healthy] == [metas[0].id, metas[2].id]
    manifest_ok = damage in ("no-index", "short-index")
    assert (bad.id in {m.id for m in listing.snapshots}) is manifest_ok  # gc still knows its T
    for other in (metas[0], metas[2]):  # every other snapshot resolves and reads
        reader = await catalog.open_index(await catalog.resolve(other.id))
        assert sum(1 for _ in reader.rows()) == 5
    with pytest.raises(CorruptIndex, match=bad.id if not manifest_ok else "index"):
        await catalog.open_index(await catalog.resolve(bad.id))
    assert (await catalog.resolve("latest")).id == metas[2].id
    await catalog.remove([bad.id])  # the way out: drop it
    assert (await catalog.scan()).damaged == ()


async def _write(catalog: Catalog, name: str, data: bytes) -> None:
    if isinstance(catalog, LocalCatalog):
        (catalog.root / name).write_bytes(data)
    else:
        assert isinstance(catalog, S3Catalog)
        await catalog.store.put(catalog.url.bucket, catalog._key(name), data)


async def _delete(catalog: Catalog, name: str) -> None:
    if isinstance(catalog, LocalCatalog):
        (catalog.root / name).unlink()
    else:
        assert isinstance(catalog, S3Catalog)
        await catalog.store.delete(catalog.url.bucket, catalog._key(name))


async def test_no_half_written_snapshot_is_listed(tmp_path: Path) -> None:
    catalog = LocalCatalog(tmp_path / "c", ManualClock(T0))
    meta = make_meta("s1", tmp_path / "s1.parquet", 10)
    (tmp_path / "c" / "index").mkdir(parents=True)
    (tmp_path / "c" / "index" / "s1.parquet").write_bytes(b"partial")  # crash before the manifest
    assert await catalog.list() == []
    await catalog.publish(meta, tmp_path / "s1.parquet")
    assert [m.id for m in await catalog.list()] == ["s1"]


async def test_leftovers_of_killed_runs_are_found_and_swept(
    make_catalog: Callable[[], Awaitable[Catalog]], tmp_path: Path
) -> None:
    catalog = await make_catalog()
    for name in ("s1", "s2", "s3"):
        meta = make_meta(name, tmp_path / f"{name}.parquet", 3)
        await catalog.publish(meta, tmp_path / f"{name}.parquet")
    assert await catalog.leftovers() == ()
    # a remove killed between the manifest and the index
    if isinstance(catalog, LocalCatalog):
        (catalog.root / "snapshots" / "s2.json").unlink()
        (catalog.root / "index" / ".s4.parquet.ab12.tmp").write_bytes(b"half an index")
        (catalog.root / "snapshots" / ".s4.json.cd34.tmp").write_bytes(b"{")
        expected = ("index/.s4.parquet.ab12.tmp", "index/s2.parquet", "snapshots/.s4.json.cd34.tmp")
    else:
        assert isinstance(catalog, S3Catalog)
        await catalog.store.delete(catalog.url.bucket, catalog._key("snapshots", "s2.json"))
        expected = ("index/s2.parquet",)
    assert [m.id for m in await catalog.list()] == ["s1", "s3"]
    assert await catalog.leftovers() == expected
    await catalog.sweep(expected)
    assert await catalog.leftovers() == ()
    assert [m.id for m in await catalog.list()] == ["s1", "s3"]
    for meta in await catalog.list():  # the published snapshots are untouched
        assert sum(1 for _ in (await catalog.open_index(meta)).rows()) == 3


async def test_lock_excludes_and_expires(make_catalog: Callable[[], Awaitable[Catalog]]) -> None:
    catalog = await make_catalog()
    clock = catalog.clock
    assert isinstance(clock, ManualClock)
    async with catalog.lock("gc"):
        with pytest.raises(Locked) as info:
            async with catalog.lock("snapshot"):
                pass
        assert info.value.exit_code == ExitCode.LOCKED and "gc" in info.value.message
    async with catalog.lock("snapshot"):  # released: free again
        pass
    stale = catalog.lock("gc")
    await stale.__aenter__()  # a holder that dies without releasing
    try:
        clock.advance(timedelta(hours=1))
        async with catalog.lock("gc"):  # the stale lock expired
            pass
    finally:
        # its renewer task and suspended hold() must not outlive the test: left to the gc,
        # they ran at the event loop's shutdown, after the session's S3 store was closed,
        # and that late release built a botocore client nothing closed ("Unclosed client
        # session" at exit)
        await stale.__aexit__(None, None, None)


def foreign_lock(
    purpose: str = "snapshot", *, pid: int | None, host: str | None = None, hours: int = 1
) -> bytes:
    """A lock.json as another process (``pid`` on ``host``, default this host) left it."""
    host = socket.gethostname() if host is None else host
    return LockInfo(
        "foreign", purpose, f"{host}:{pid}", T0, T0 + timedelta(hours=hours), host, pid
    ).dumps()


def dead_pid() -> int:
    """The pid of a process that ran on this host and has ended (and was reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


@pytest.mark.skipif(os.name != "posix", reason="process liveness is probed on POSIX only")
async def test_local_lock_of_a_dead_holder_is_taken_over(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A killed snapshot/gc on this host leaves lock.json; the next run must not wait 10 min."""
    catalog = LocalCatalog(tmp_path / "c", ManualClock(T0))
    catalog.root.mkdir()
    lock = catalog.root / "lock.json"
    pid = dead_pid()
    lock.write_bytes(foreign_lock(pid=pid))
    with caplog.at_level(logging.WARNING, "backup_my_bucket.catalog"):
        async with catalog.lock("gc"):
            held = json.loads(lock.read_bytes())
            assert (held["purpose"], held["pid"]) == ("gc", os.getpid())
            assert held["host"] == socket.gethostname()
    assert not lock.exists()  # released as usual
    assert f":{pid}" in caplog.text and "no longer running" in caplog.text


@pytest.mark.skipif(os.name != "posix", reason="process liveness is probed on POSIX only")
async def test_local_lock_of_a_live_holder_still_excludes(tmp_path: Path) -> None:
    catalog = LocalCatalog(tmp_path / "c", ManualClock(T0))
    catalog.root.mkdir()
    lock = catalog.root / "lock.json"
    # another holder in this very process, then one in a running child process
    lock.write_bytes(foreign_lock(pid=os.getpid()))
    with pytest.raises(Locked) as info:
        async with catalog.lock("gc"):
            pass
    assert info.value.exit_code == ExitCode.LOCKED and "snapshot" in info.value.message
    child = sleeper()
    try:
        lock.write_bytes(foreign_lock(pid=child.pid))
        with pytest.raises(Locked):
            async with catalog.lock("gc"):
                pass
        child.kill()  # killed but not reaped yet: a zombie holds nothing
        for _ in range(100):
            if not pid_alive(child.pid):
                break
            await asyncio.sleep(0.05)
        async with catalog.lock("gc"):
            pass
    finally:
        child.kill()
        child.wait()


@pytest.mark.parametrize(
    "holder",
    [
        pytest.param({"host": "another-host.example"}, id="dead-pid-on-another-host"),
        pytest.param({"pid": None}, id="no-pid-older-lock"),
    ],
)
async def test_local_lock_without_proof_of_death_waits_for_its_ttl(
    tmp_path: Path, holder: dict[str, object]
) -> None:
    clock = ManualClock(T0)
    catalog = LocalCatalog(tmp_path / "c", clock)
    catalog.root.mkdir()
    fields: dict[str, object] = {"pid": dead_pid(), **holder}
    (catalog.root / "lock.json").write_bytes(foreign_lock(**fields))  # type: ignore[arg-type]
    with pytest.raises(Locked):
        async with catalog.lock("gc"):
            pass
    clock.advance(timedelta(hours=2))  # the TTL rule still applies
    async with catalog.lock("gc"):
        pass


@pytest.mark.s3
async def test_s3_lock_of_a_dead_holder_keeps_the_ttl_rule(
    s3_store: ObjectStore, tmp_path: Path
) -> None:
    """A shared S3 catalog cannot tell that a pid is dead on *its* host: TTL only."""
    bucket = unique_bucket("cat")
    await s3_store.create_bucket(bucket)
    clock = ManualClock(T0)
    catalog = S3Catalog(s3_store, S3Url(bucket, "cat"), tmp_path / "cache", clock)
    await s3_store.put(bucket, "cat/lock.json", foreign_lock(pid=dead_pid()))
    with pytest.raises(Locked):
        async with catalog.lock("gc"):
            pass
    clock.advance(timedelta(hours=2))
    async with catalog.lock("gc"):
        pass


async def test_unreadable_local_lock_is_replaced(tmp_path: Path) -> None:
    catalog = LocalCatalog(tmp_path / "c", ManualClock(T0))
    catalog.root.mkdir()
    (catalog.root / "lock.json").write_bytes(b"")  # e.g. a crash of an older version mid-write
    async with catalog.lock("gc"):
        assert json.loads((catalog.root / "lock.json").read_bytes())["purpose"] == "gc"
    assert sorted(p.name for p in catalog.root.iterdir()) == ["index", "snapshots"]  # no tmp


async def test_readonly_catalog_directory(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        target = Path("/proc/bmb-catalog")  # not writable even for root
    else:
        target = tmp_path / "ro"
        target.mkdir(mode=0o500)
    catalog = LocalCatalog(target, ManualClock(T0))
    meta = make_meta("s1", tmp_path / "s1.parquet", 1)
    from backup_my_bucket.errors import CatalogError

    with pytest.raises(CatalogError) as info:
        await catalog.publish(meta, tmp_path / "s1.parquet")
    assert str(target) in info.value.message


async def test_s3_catalog_survives_in_its_bucket(
    store: ObjectStore, make_bucket: BucketFactory, tmp_path: Path
) -> None:
    bucket = await make_bucket()
    clock = ManualClock(T0)
    first = S3Catalog(store, S3Url(bucket, "cat"), tmp_path / "cache1", clock)
    meta = make_meta("s1", tmp_path / "s1.parquet", 500)
    await first.publish(meta, tmp_path / "s1.parquet")
    # another control machine, empty cache: the catalog is all it needs
    second = S3Catalog(store, S3Url(bucket, "cat/"), tmp_path / "cache2", clock)
    assert [m.id for m in await second.list()] == ["s1"]
    assert sum(1 for _ in (await second.open_index(meta)).rows()) == 500


@pytest.mark.parametrize("n", [0, 5, 6, 13, 25])
def test_an_index_is_written_in_chunks_and_row_groups(
    n: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows become Arrow arrays a chunk at a time; row groups still hold ROW_GROUP rows each
    (the last one fewer), and the rows read back in order, every field intact."""
    import pyarrow.parquet as pq

    from backup_my_bucket.catalog import index

    monkeypatch.setattr(index, "CHUNK", 2)
    monkeypatch.setattr(index, "ROW_GROUP", 6)
    path = tmp_path / "i.parquet"
    written = [
        ObjectVersion(f"k/{i:03d}", f"v{i}", T0 + timedelta(seconds=i), size=i,
                      etag=None if i % 4 else f"e{i}")
        for i in range(n)
    ]  # fmt: skip
    writer = IndexWriter(path, "s")
    for version in written:
        writer.add(version)
    sha, size = writer.close()
    layout = pq.ParquetFile(path).metadata
    groups = [layout.row_group(g).num_rows for g in range(layout.num_row_groups)]
    assert groups == [6] * (n // 6) + ([n % 6] if n % 6 else [])
    meta = SnapshotMeta(
        id="s", at=T0, created=T0, backup="s3://b", source=None, keys=n,
        total_bytes=sum(range(n)), index_sha256=sha, index_size=size,
    )  # fmt: skip
    assert list(index.IndexReader(path, meta).rows()) == written


@pytest.mark.parametrize(("written", "refused"), [("1.9", False), ("2.0", True)])
def test_an_index_newer_than_1_x_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, written: str, refused: bool
) -> None:
    """Manifests go to 2.0 when they hold versions; the index format stays 1.x, and an index
    claiming 2.0 is not one this tool can read."""
    from backup_my_bucket.catalog import index

    monkeypatch.setattr(index, "FORMAT_VERSION", written)
    path = tmp_path / "i.parquet"
    writer = IndexWriter(path, "s")
    writer.add(ObjectVersion("k", "v", T0, size=1, etag="e"))
    sha, size = writer.close()
    meta = SnapshotMeta(
        id="s", at=T0, created=T0, backup="s3://b", source=None, keys=1, total_bytes=1,
        index_sha256=sha, index_size=size,
    )  # fmt: skip
    if refused:
        with pytest.raises(
            UnsupportedFormat, match=r"format 2\.0, newer than this tool reads \(1\.x\)"
        ):
            index.IndexReader(path, meta)
    else:
        assert [v.key for v in index.IndexReader(path, meta).rows()] == ["k"]
