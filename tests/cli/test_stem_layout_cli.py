"""Every command on SeaweedFS with the layout any website has: folders beside files named like
the folder plus a suffix (``img0-0001.jpg``, ``img0.idx``, ``img0/0001.jpg``), at three depths,
the suffix byte ``-``, ``.``, ``!``, space and ``+``; an unversioned and a versioned source of
over 2,000 keys, the versioned one with history; page sizes 1,000 and 97.

SeaweedFS's own paging loses keys on this layout (docs/design.md, "Paging a tree-walking
server"); the listing pages around it, and the audit fails a command whose listing is short.
The truth comes from the writes (tests/stems.py) and, for what a command wrote, from
ListObjectsV2 (complete on SeaweedFS), never from the listing under test. The layout is
written once per session.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backup_my_bucket.engine.gc import run_gc
from backup_my_bucket.engine.retention import RetentionPolicy, SnapshotRef
from backup_my_bucket.errors import ExitCode, IncompleteListing
from backup_my_bucket.model import KeyHistory
from backup_my_bucket.storage.audit import MARGIN
from backup_my_bucket.storage.current import current_objects
from backup_my_bucket.storage.iterate import iter_versions
from backup_my_bucket.storage.listing import ListingOptions, ParallelListing
from backup_my_bucket.storage.paging import Paging
from backup_my_bucket.storage.s3 import S3Store
from backup_my_bucket.units import format_time

from ..conftest import is_data, unique_bucket
from ..stems import Scene, write_scene
from .conftest import bmb

pytestmark = [pytest.mark.s3, pytest.mark.usefixtures("cli_env")]

PER = 140  # 2,155 keys (stem_layout)


@dataclass(frozen=True)
class World:
    hist: str  # versioned, with history
    src: str  # unversioned
    history: Scene
    flat: Scene


@pytest.fixture(scope="session")
async def world(s3_store: S3Store) -> World:
    async def between() -> datetime:
        # phase 1 ended before this second did; phase 2 starts in a later one
        at = datetime.now(UTC).replace(microsecond=0)
        await asyncio.sleep((at.timestamp() + 1.2) - datetime.now(UTC).timestamp())
        return at

    async def now() -> datetime:
        return datetime.now(UTC)

    hist, src = unique_bucket("stem-hist"), unique_bucket("stem-src")
    history, flat = await asyncio.gather(
        write_scene(s3_store, hist, per=PER, versioned=True, between=between),
        write_scene(s3_store, src, per=PER, versioned=False, between=now),
    )
    assert len(flat.keys) >= 2000
    return World(hist, src, history, flat)


async def shown(store: S3Store, bucket: str) -> list[str]:
    """The bucket's current keys by ListObjectsV2: complete on SeaweedFS, in walk order."""
    keys: list[str] = []
    token: str | None = None
    while True:
        page = await store.list_objects_page(bucket, continuation_token=token)
        keys += [o.key for o in page.objects]
        if not page.is_truncated:
            return sorted(keys)
        token = page.next_token


async def read(store: S3Store, bucket: str, key: str, version_id: str | None = None) -> bytes:
    return b"".join([chunk async for chunk in store.get(bucket, key, version_id)])


@pytest.mark.parametrize(("source", "page"), [("src", 1000), ("hist", 97)])
async def test_backup_copies_every_key(
    world: World,
    s3_store: S3Store,
    source: str,
    page: int,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bucket = world.src if source == "src" else world.hist
    truth = (world.flat if source == "src" else world.history).now
    backup = unique_bucket("stem-bak")
    await s3_store.create_bucket(backup)
    await s3_store.set_versioning(backup, True)
    code, out, err = await bmb(
        capsys, "--json", "--list-page-size", str(page), "backup", "--source", f"s3://{bucket}", "--backup", f"s3://{backup}",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert result["sync"]["copied"] == len(truth) and result["sync"]["failed"] == 0
    assert result["snapshot"]["keys"] == len(truth)
    assert [k for k in await shown(s3_store, backup) if is_data(k)] == sorted(truth)
    for key in sorted(truth)[::97]:
        assert await read(s3_store, backup, key) == truth[key]


async def test_snapshot_now_and_at_indexes_every_key_and_verify_checks_all(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backup = ["--backup", f"s3://{world.hist}"]
    at = ["--at", format_time(world.history.at)]
    for options, truth in (
        (["--list-page-size", "97", "snapshot", *at], world.history.then),
        (["snapshot"], world.history.now),
    ):
        code, out, err = await bmb(capsys, "--json", *options, *backup)
        assert code == 0, err
        meta = json.loads(out)
        assert meta["keys"] == len(truth)
        code, out, err = await bmb(capsys, "--json", "ls", meta["id"], *backup)
        assert [json.loads(line)["key"] for line in out.splitlines()] == sorted(truth)
        code, out, err = await bmb(capsys, "--json", "verify", meta["id"], *backup)
        assert code == 0, err
        checked = json.loads(out)
        assert (checked["checked"], checked["missing"], checked["mismatched"]) == (
            len(truth),
            0,
            0,
        )


async def test_restore_into_a_fresh_bucket_brings_every_key_back(
    world: World, s3_store: S3Store, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = unique_bucket("stem-fresh")  # unversioned, as restore targets usually are
    await s3_store.create_bucket(target)
    truth = world.history.then
    code, out, err = await bmb(
        capsys, "--json", "--list-page-size", "97", "restore", "--at", format_time(world.history.at), "--backup", f"s3://{world.hist}",
        "--to", f"s3://{target}",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert (result["copied"], result["failed"], result["verified"]) == (len(truth), 0, True)
    assert await shown(s3_store, target) == sorted(truth)
    for key in sorted(truth)[::89]:
        assert await read(s3_store, target, key) == truth[key]


async def test_rollback_into_a_populated_target_ends_exactly_at_the_point(
    world: World, s3_store: S3Store, capsys: pytest.CaptureFixture[str]
) -> None:
    """The target's own listing (ListObjectsV2, sorted) must see every key it holds, those
    beside folders included: an extra key it missed would stay and pass verification."""
    target = unique_bucket("stem-roll")
    await s3_store.create_bucket(target)
    await s3_store.set_versioning(target, True)
    truth = world.history.then
    extras = {
        f"{base}img{g}{sep}{tail}": b"extra"
        for base in ("", "img0/deep/", "img0/deep/img1/deeper/")
        for g in (0, 3)
        for sep, tail in (("-", "9999.jpg"), (".", "idx2"), ("/", "9999.jpg"), (" ", "x"))
    }
    changed = {key: b"changed" for key in sorted(truth)[::53]}
    writes = {**truth, **changed, **extras}
    gate = asyncio.Semaphore(64)

    async def put(key: str, body: bytes) -> None:
        async with gate:
            await s3_store.put(target, key, body)

    await asyncio.gather(*(put(k, b) for k, b in writes.items()))
    code, out, err = await bmb(
        capsys, "--json", "--list-page-size", "97", "restore", "--at", format_time(world.history.at), "--backup", f"s3://{world.hist}",
        "--to", f"s3://{target}", "--mode", "rollback", "--yes",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert (result["copied"], result["deleted"], result["failed"], result["verified"]) == (
        len(changed), len(extras), 0, True,
    )  # fmt: skip
    assert await shown(s3_store, target) == sorted(truth)
    for key in changed:
        assert await read(s3_store, target, key) == truth[key]


async def test_gc_deletes_exactly_the_versions_the_model_says(
    world: World, s3_store: S3Store
) -> None:
    """With a snapshot at the scene's instant, gc may delete only the versions live at no
    point (the scene's "middle" ones): nothing any other test of this layout reads."""
    before = {(v.key, v.version_id) async for v in iter_versions(s3_store, world.hist)}

    async def gc(paging: Paging | None, dry_run: bool) -> set[tuple[str, str]]:
        planned: set[tuple[str, str]] = set()

        async def nothing(_: object) -> None:
            return None

        result = await run_gc(
            s3_store, world.hist, "", [SnapshotRef("s", world.history.at)],
            RetentionPolicy(keep_last=1), datetime.now(UTC), remove_snapshots=nothing,
            dry_run=dry_run, workers=8, on_planned=lambda v: planned.add((v.key, v.version_id)),
            listing=ListingOptions(page_size=97, paging=paging),
        )  # fmt: skip
        assert result.versions_deleted == len(planned) or not dry_run
        return planned

    # gc's own listing has no audit: paged by the server's markers, it misses versions
    assert await gc(Paging.NAIVE, dry_run=True) < world.history.middle
    assert await gc(None, dry_run=True) == world.history.middle
    await gc(None, dry_run=False)
    after = {(v.key, v.version_id) async for v in iter_versions(s3_store, world.hist)}
    assert after == before - world.history.middle


async def test_the_audit_fails_a_short_listing(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Forced to page by SeaweedFS's own markers, the listings lose keys: exit 1, named."""
    naive = ["--list-paging", "naive", "--list-page-size", "97"]

    async def published() -> list[str]:
        code, out, err = await bmb(capsys, "--json", "snapshots", "--backup", f"s3://{world.hist}")
        assert code == 0, err
        return [json.loads(line)["id"] for line in out.splitlines()]

    before = await published()
    code, _, err = await bmb(
        capsys, *naive, "sync", "--dry-run", "--source", f"s3://{world.src}",
        "--backup", f"s3://{world.hist}",
    )  # fmt: skip
    # the unversioned source is read with ListObjectsV2 (complete); the backup's versions
    # are not
    assert code == ExitCode.FAILURE
    assert "incomplete listing" in err and f"s3://{world.hist}/" in err
    named = [k for k in world.history.keys if repr(k) in err]
    assert named, err
    code, _, err = await bmb(capsys, *naive, "snapshot", "--backup", f"s3://{world.hist}")
    assert code == ExitCode.FAILURE and "incomplete listing" in err
    assert await published() == before, "a snapshot was published from a short listing"


async def test_an_unrecognised_seaweedfs_is_stopped_by_the_audit(
    world: World, s3_store: S3Store
) -> None:
    """Behind a proxy that hides its ``Server`` header (nginx's default), SeaweedFS is paged by
    its own markers and loses keys (here 874 of 1,992 live keys). Its ListObjectsV2, split by
    key as on a key-order server, lost the same keys, and the audit let the listing pass,
    short, exit 0. On a server not known to list in key order, ListObjectsV2 now goes in one
    sequence by its continuation token: complete, so the audit stops the listing, and every
    ListObjectsV2 reading (a restore's target, an unversioned source) is complete. Told
    ``tree``, the version listing is complete too."""
    proxied = S3Store(s3_store.config)
    proxied._server = "nginx"  # what the first answer's header would have said
    await asyncio.sleep(MARGIN.total_seconds() + 1)  # no key written "as the listing began"
    try:
        live = set(await shown(s3_store, world.hist))
        listing = ParallelListing(proxied, world.hist, _key, options=ListingOptions(97))
        seen: list[str] = []

        async def consume() -> None:
            async for key in listing.results():
                seen.append(key)

        with pytest.raises(IncompleteListing) as caught:
            await consume()
        assert listing.paging is Paging.NAIVE and "--list-paging tree" in (caught.value.hint or "")
        assert set(seen) < live and set(caught.value.keys) <= live
        assert set(caught.value.keys) == live - set(seen)  # every key it lost, named

        for bucket in (world.hist, world.src):
            found = [o.key async for o in current_objects(proxied, bucket, page_size=97)]
            assert found == await shown(s3_store, bucket)  # complete, in key order

        told = ListingOptions(page_size=97, paging=Paging.TREE, audit=False)
        listing = ParallelListing(proxied, world.hist, _key, options=told)
        assert [key async for key in listing.results()] == sorted(live)
        assert listing.audit is not None  # told it is a tree, it audits anyway
    finally:
        await proxied.close()


def _key(history: KeyHistory) -> str | None:
    current = history.current
    return None if current is None else current.key
