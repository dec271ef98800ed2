"""The parallel listing must return exactly what a sequential listing returns, in order."""

from __future__ import annotations

import itertools
import os
import random
import subprocess
import sys
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backup_my_bucket.model import KeyHistory, ObjectVersion, VersionPage
from backup_my_bucket.storage import listing, scratch
from backup_my_bucket.storage.listing import ListingOptions, ParallelListing
from backup_my_bucket.storage.memory import MemoryStore
from backup_my_bucket.storage.pager import branching_key, split_range
from backup_my_bucket.storage.paging import MAX_CHAR, fan_out, siblings, split_key, split_keys
from backup_my_bucket.storage.ranges import Unit


def test_split_key() -> None:
    assert split_key("f00999", None) == "f" + MAX_CHAR
    assert split_key("f00999", "f" + MAX_CHAR) == "f0" + MAX_CHAR
    assert split_key("a/b/c", "a/" + MAX_CHAR) == "a/b" + MAX_CHAR
    assert split_key("abc", "abd") is None or "abc" < split_key("abc", "abd") < "abd"  # type: ignore[operator]
    assert split_key("a" + MAX_CHAR, None) is None
    assert split_key("backup/f1", None, "backup/") == "backup/f" + MAX_CHAR


@given(
    st.lists(st.text(alphabet="ab/-\u00e9\U0001f600", min_size=1, max_size=4), min_size=1),
    st.text(alphabet="ab/-\u00e9", max_size=3),
)
def test_split_key_orders(keys: list[str], until_seed: str) -> None:
    for key in keys:
        until = key + until_seed + "z" if until_seed else None
        cut = split_key(key, until)
        if cut is not None:
            assert key < cut
            assert until is None or cut < until


def test_siblings_are_the_rest_of_a_run() -> None:
    M = MAX_CHAR
    assert siblings("d0000/s0" + M, None) == [f"d0000/s{c}{M}" for c in "123456789"]
    assert siblings("a" + M, None) == [c + M for c in "bcde"]  # GUESSES letters
    assert siblings("obj7" + M, "obj9" + M) == ["obj8" + M]  # below the upper bound only
    assert siblings("x" + M, None) == [c + M for c in "yz"]
    assert siblings("a7" + M, None) == ["a8" + M, "a9" + M]
    assert siblings("a-" + M, None) == []  # no run: no guess
    assert siblings("z" + M, None) == [] and siblings("Z9" + M, None) == []


def test_fan_out_spreads_the_spare_budget_over_the_shallowest_levels() -> None:
    M = MAX_CHAR
    cuts = split_keys("d0000/s08/f00004", None, "", 9)
    assert cuts[:2] == ["d" + M, "d0" + M]
    assert fan_out(cuts, None, len(cuts)) == cuts  # no spare budget: unchanged
    spread = fan_out(cuts, None, len(cuts) + 30)
    assert spread == sorted(spread, reverse=True) and len(cuts) < len(spread) <= len(cuts) + 30
    assert set(cuts) <= set(spread)
    assert "d0001" + M in spread and "d0000/s1" + M in spread and "d0000/s09" + M in spread
    assert "e" + M in spread and "i" + M not in spread  # at most GUESSES letters per level


def test_a_first_page_split_reaches_the_data_past_a_folder_listed_before_it() -> None:
    """The catalog's folder sorts first in a backup bucket: a first page that begins with it
    must still cut as many levels as its other keys branch at, not only the root's."""
    stamp = datetime(2026, 1, 1, tzinfo=UTC)
    last = "obj00000998"

    def page(keys: list[str]) -> VersionPage:
        return VersionPage([ObjectVersion(k, "v", stamp) for k in keys], [], is_truncated=True)

    def prefixes(branch_key: str) -> set[str]:
        unit: Unit[None] = Unit(after=last, until=None, prefix="", wire=last)
        return {u.prefix for u in split_range(unit, branch_key, last, 31, tree=True)}

    data = [f"obj{i:08d}" for i in range(999)]
    first = page([".backup-my-bucket/location.json", *data])
    assert branching_key(first, last, None) == "obj00000499"
    deep = prefixes(branching_key(first, last, None))
    assert {"obj00001", "obj0001", "obj001"} <= deep  # siblings at the levels the data has
    assert max(map(len, prefixes(first.entries[0].key))) <= 1  # the first key's: root only
    # a catalog that fills most of the page (a year of snapshots): left out as skipped
    catalog = [f".backup-my-bucket/catalog/index/{i:04d}.parquet" for i in range(800)]
    crowded = page([*catalog, *data[:200]])
    assert branching_key(crowded, "obj00000199", ".backup-my-bucket/") == "obj00000100"
    # entries past the last key the range took (a page trusted only below a risk): left out
    assert branching_key(page([*data, "obj5", "obj6", "obj7"]), last, None) == "obj00000499"
    assert branching_key(page(catalog), "z", ".backup-my-bucket/") == catalog[0]  # none else


async def test_the_listing_splits_from_the_data_not_the_skipped_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The listing hands the split the page's branching key, skipped folder left out."""
    seen: list[str] = []

    def recording(unit: Unit[object], branch_key: str, *args: object, **kw: object) -> object:
        seen.append(branch_key)
        return split_range(unit, branch_key, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(listing, "split_range", recording)
    store = MemoryStore()
    keys = [f"obj{i:05d}" for i in range(300)]
    await _fill(store, "b", keys)
    for i in range(60):  # one version each: the first page of 100 has data after them
        await store.put("b", f".backup-my-bucket/c/{i:03d}", b"x")
    run = ParallelListing(
        store, "b", _key, workers=8, skip_prefix=".backup-my-bucket/",
        options=ListingOptions(page_size=100),
    )  # fmt: skip
    assert [k async for k, _ in run.results()] == keys
    assert seen and seen[0].startswith("obj")


@given(
    st.text(alphabet="ab09yzAZ/-.", min_size=1, max_size=8),
    st.one_of(st.none(), st.text(alphabet="ab09yzAZ/-.", min_size=1, max_size=8)),
    st.integers(min_value=1, max_value=40),
)
def test_fan_out_ranges_keep_every_key_under_their_prefix(
    last_key: str, until: str | None, budget: int
) -> None:
    """Each range (cut, next larger cut] holds only keys under the larger cut's stem, the
    prefix the listing gives that unit: no key can fall outside every unit's prefix."""
    if until is not None and not last_key < until:
        return
    cuts = fan_out(split_keys(last_key, until, "", len(last_key)), until, budget)
    assert cuts == sorted(set(cuts), reverse=True)
    assert all(last_key < c and (until is None or c < until) for c in cuts)
    alphabet = "ab09yzAZ/-.\x00"
    probes = {last_key[:i] + ch + tail for i in range(len(last_key) + 1) for ch in alphabet
              for tail in ("", "0", "z/")}  # fmt: skip
    for upper, lower in itertools.pairwise(cuts):
        stem = upper[: -len(MAX_CHAR)]
        for key in probes:
            if lower < key <= upper:
                assert key.startswith(stem), (key, lower, upper)


def _key(history: KeyHistory) -> tuple[str, str]:
    return (history.key, history.versions[0].version_id)


async def _fill(store: MemoryStore, bucket: str, keys: list[str]) -> None:
    """Keys with one to three versions, the same on every run (``hash()`` of a string is
    seeded per process: a failure must replay)."""
    await store.create_bucket(bucket)
    await store.set_versioning(bucket, True)
    for key in keys:
        stable = zlib.crc32(key.encode())
        await store.put(bucket, key, b"x")
        if stable % 3 == 0:
            await store.put(bucket, key, b"y")
        if stable % 5 == 0:
            await store.delete(bucket, key)


@pytest.mark.parametrize("layout", ["flat", "tree", "unicode"])
@pytest.mark.parametrize("workers", [1, 4, 32])
async def test_parallel_equals_sequential(
    layout: str, workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listing, "BUFFER_ROWS", 7)  # exercise spilling on small data
    monkeypatch.setattr(listing, "MIN_SPILL", 3)
    rng = random.Random(layout)
    if layout == "flat":
        keys = [f"f{i:05d}" for i in range(900)]
    elif layout == "tree":
        keys = [f"d{i}/s{j}/f{k}" for i in range(6) for j in range(5) for k in range(30)]
    else:
        keys = [
            "".join(rng.choice("ab/ -\u00e9\u4e2d\U0001f600") for _ in range(6)) for _ in range(500)
        ]
    keys = sorted(set(keys))
    store = MemoryStore()
    await _fill(store, "b", keys)
    sequential = ParallelListing(
        store, "b", _key, workers=1, options=ListingOptions(page_size=10_000)
    )
    expected = [r async for r in sequential.results()]
    parallel = ParallelListing(
        store, "b", _key, workers=workers, options=ListingOptions(page_size=13)
    )
    got = [r async for r in parallel.results()]
    assert got == expected
    assert [k for k, _ in got] == keys
    # each unit lists with its trie node's Prefix, so no page reads into a neighbour's range
    assert parallel.stats.versions == sequential.stats.versions
    if workers > 1:
        assert parallel.stats.units > 1


async def test_prefix_and_skip_prefix() -> None:
    store = MemoryStore()
    await _fill(store, "b", ["a/1", "a/2", "b/1", "b/cat/x", "b/2", "c"])
    got = ParallelListing(
        store, "b", _key, prefix="b/", skip_prefix="b/cat/", options=ListingOptions(page_size=1)
    )
    assert [k async for k, _ in got.results()] == ["b/1", "b/2"]


async def test_reduce_may_drop_keys() -> None:
    store = MemoryStore()
    await _fill(store, "b", [f"k{i}" for i in range(50)])
    only_even = ParallelListing(
        store,
        "b",
        lambda h: h.key if int(h.key[1:]) % 2 == 0 else None,
        options=ListingOptions(page_size=3),
        workers=8,
    )
    assert [k async for k in only_even.results()] == sorted(f"k{i}" for i in range(0, 50, 2))


async def test_a_listing_that_stops_early_leaves_no_spill_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(listing, "BUFFER_ROWS", 7)
    monkeypatch.setattr(listing, "MIN_SPILL", 3)
    store = MemoryStore()
    await _fill(store, "b", [f"f{i:05d}" for i in range(900)])
    spills = tmp_path / "spill"
    spills.mkdir()
    options = ListingOptions(page_size=13)
    stopped = ParallelListing(store, "b", _key, workers=16, options=options, spill_dir=str(spills))
    results = stopped.results()
    async for _ in results:
        if stopped.stats.spilled_rows and len(list(spills.iterdir())) > 2:
            break  # the consumer stops while units ahead hold spilled rows
    assert len(list(spills.iterdir())) > 2
    await results.aclose()
    assert list(spills.iterdir()) == []


def test_scratch_of_dead_processes_is_swept(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    mine = scratch.scratch_prefix("list")
    theirs = mine.replace(f"-{os.getpid()}-", f"-{int(dead.stdout)}-")
    other_host = "bmb-list-00000000-" + dead.stdout.strip() + "-x"
    for name in (mine + "a", theirs + "b", other_host):
        (tmp_path / name).write_bytes(b"rows")
    (tmp_path / (theirs + "dir")).mkdir()
    (tmp_path / (theirs + "dir") / "index.parquet").write_bytes(b"x")
    swept = scratch.sweep_stale("list", str(tmp_path))
    assert sorted(p.name for p in swept) == sorted([theirs + "b", theirs + "dir"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine + "a", other_host])
