"""A bucket's current objects from ListObjectsV2, sorted into key order (storage/current.py).

The server here is the in-memory model of SeaweedFS (ListObjectsV2 in walk order, checked
against the real server in tests/contract/test_seaweedfs_model.py) and an AWS-semantics
MemoryStore; the truth is what HEAD-free bookkeeping of the writes says is current.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from backup_my_bucket.errors import AccessDenied
from backup_my_bucket.model import ObjectPage
from backup_my_bucket.storage import current
from backup_my_bucket.storage.current import WalkStats, current_objects
from backup_my_bucket.storage.memory import MemoryStore

from ..samples import stem_layout


async def _fill(store: MemoryStore, keys: list[str], *, versioned: bool, seed: int) -> set[str]:
    """Writes, overwrites and deletes in a random order; returns the keys left current."""
    await store.create_bucket("b")
    if versioned:
        await store.set_versioning("b", True)
    rng = random.Random(seed)
    live: set[str] = set()
    for key in rng.sample(keys, len(keys)):
        await store.put("b", key, key.encode())
        live.add(key)
        if rng.random() < 0.15:
            await store.delete("b", key)
            live.discard(key)
    return live


@pytest.mark.parametrize("seaweedfs", [True, False], ids=["seaweedfs", "aws"])
@pytest.mark.parametrize("versioned", [True, False], ids=["versioned", "unversioned"])
@pytest.mark.parametrize("page_size", [1000, 37])
async def test_every_current_key_once_in_key_order_across_spilled_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, seaweedfs: bool, versioned: bool,
    page_size: int,
) -> None:  # fmt: skip
    monkeypatch.setattr(current, "RUN_ROWS", 97)  # many runs, each in several chunks
    monkeypatch.setattr(current, "CHUNK_ROWS", 10)
    keys = [*stem_layout(per=60, groups=5), "a//b", "naïve key", "new\nline", "z" * 1024]
    store = MemoryStore(seaweedfs_paging=seaweedfs)
    live = await _fill(store, keys, versioned=versioned, seed=page_size)
    stats = WalkStats()
    listed = [
        obj
        async for obj in current_objects(
            store, "b", page_size=page_size, spill_dir=str(tmp_path), stats=stats
        )
    ]
    assert [o.key for o in listed] == sorted(live)
    assert all(o.size == len(o.key.encode()) for o in listed)
    assert stats.keys == len(live) and stats.requests >= len(live) // page_size
    assert list(tmp_path.iterdir()) == []  # the runs' scratch file is gone


async def test_a_prefix_and_a_skipped_folder() -> None:
    store = MemoryStore(seaweedfs_paging=True)
    await store.create_bucket("b")
    for key in ["d/a", "d/.bmb/x", "d.txt", "d-1", "d/b/c", "d/b-c", "e"]:
        await store.put("b", key, b"x")
    got = [o.key async for o in current_objects(store, "b", "d/", skip_prefix="d/.bmb/")]
    assert got == ["d/a", "d/b-c", "d/b/c"]


async def test_the_first_split_reads_its_depth_past_the_skipped_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A catalog's folder sorts before the data: the walk's first split must still cut the
    levels the data branches at, not only the root's (as the version listing's split)."""
    depths: list[int] = []
    split_keys = current.split_keys

    def recording(last_key: str, until: str | None, common: str = "", deepest: int = 0) -> object:
        depths.append(deepest)
        return split_keys(last_key, until, common, deepest)

    monkeypatch.setattr(current, "split_keys", recording)
    store = MemoryStore()
    await store.create_bucket("b")
    for key in [f".backup-my-bucket/c/{i:03d}" for i in range(60)] + [
        f"obj{i:05d}" for i in range(300)
    ]:
        await store.put("b", key, b"x")
    seen: list[str] = []
    await current.walk_objects(
        store, "b", "", lambda o: seen.append(o.key), skip_prefix=".backup-my-bucket/",
        page_size=100, concurrency=8,
    )  # fmt: skip
    assert sorted(seen) == [f"obj{i:05d}" for i in range(300)]
    assert depths and depths[0] >= len("obj000")


async def test_the_walk_order_is_not_key_order_on_seaweedfs() -> None:
    """What makes the sort necessary (and this test able to fail without it)."""
    store = MemoryStore(seaweedfs_paging=True)
    keys = ["img0-1.jpg", "img0.idx", "img0/1.jpg", "img0/2.jpg"]
    await store.create_bucket("b")
    for key in keys:
        await store.put("b", key, b"x")
    page = await store.list_objects_page("b")
    assert [o.key for o in page.objects] != sorted(keys)
    assert [o.key async for o in current_objects(store, "b")] == sorted(keys)


async def test_a_key_listed_twice_comes_out_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(current, "RUN_ROWS", 2)
    store = MemoryStore()
    await _fill(store, ["a", "b", "c"], versioned=False, seed=0)
    real = store.list_objects_page

    async def twice(bucket: str, **kw: object) -> ObjectPage:
        page = await real(bucket, **kw)  # type: ignore[arg-type]
        return ObjectPage(page.objects * 2, page.common_prefixes, page.is_truncated)

    monkeypatch.setattr(store, "list_objects_page", twice)
    assert [o.key async for o in current_objects(store, "b")] == ["a", "b", "c"]


async def test_an_error_ends_the_stream_before_any_row_and_leaves_no_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(current, "RUN_ROWS", 3)
    store = MemoryStore()
    await _fill(store, [f"k{i:03d}" for i in range(50)], versioned=False, seed=0)
    real = store.list_objects_page
    calls = 0

    async def failing(bucket: str, **kw: object) -> ObjectPage:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise AccessDenied("the server went away")
        return await real(bucket, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "list_objects_page", failing)
    rows: list[str] = []

    async def drain() -> None:
        async for obj in current_objects(store, "b", page_size=5, spill_dir=str(tmp_path)):
            rows.append(obj.key)

    with pytest.raises(AccessDenied, match="went away"):
        await drain()
    assert rows == [] and list(tmp_path.iterdir()) == []


async def test_a_killed_runs_scratch_file_is_swept(tmp_path: Path) -> None:
    """What a ``kill -9`` left (a dead process's run file) goes at the next listing."""
    stale = tmp_path / current.scratch_prefix("current").replace(f"-{os.getpid()}-", "-999999-")
    stale.write_bytes(b"left behind")
    store = MemoryStore()
    await _fill(store, ["a"], versioned=False, seed=0)
    assert [o.key async for o in current_objects(store, "b", spill_dir=str(tmp_path))] == ["a"]
    assert not stale.exists()
