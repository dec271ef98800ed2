"""A multipart upload open at T: the snapshot holds its key's index row for gc
(engine/cut.Holds, docs/design.md rule 26).

AWS stamps a completed upload with its initiation. Begun at or before T and completed after
the listing, its version reads as live at T from the stamps, while the index has the version
that really was; gc, which reads T's state from the stamps, would delete the index's. The
in-memory store stamps that way with ``stamp_at_initiation`` (SeaweedFS stamps completions).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from backup_my_bucket.catalog import LocalCatalog
from backup_my_bucket.catalog.index import SnapshotMeta
from backup_my_bucket.catalog.location import reserved_prefix
from backup_my_bucket.clock import SYSTEM_CLOCK, ManualClock
from backup_my_bucket.engine import cut
from backup_my_bucket.engine.backup import snapshot_after
from backup_my_bucket.engine.cut import server_now
from backup_my_bucket.engine.gc import gc_catalog
from backup_my_bucket.engine.gc_plan import IndexHolds, stale_upload_warnings
from backup_my_bucket.engine.retention import RetentionPolicy
from backup_my_bucket.engine.snapshot import ListedState, take_snapshot
from backup_my_bucket.engine.sync import SyncOptions, sync
from backup_my_bucket.errors import CorruptIndex, StorageError, UnsupportedFormat
from backup_my_bucket.model import KeyHistory, OpenUpload, S3Url, VersionPage
from backup_my_bucket.storage.iterate import iter_versions
from backup_my_bucket.storage.memory import MemoryStore
from backup_my_bucket.storage.protocol import ObjectStore

from ..conftest import BucketFactory, writes_settled

SERVER = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _warnings_anew(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees the warnings engine/cut.py gives once per process."""
    monkeypatch.setattr(cut, "_warned", set())


SECOND = timedelta(seconds=1)


async def aws_like(tmp_path: Path) -> tuple[MemoryStore, ManualClock, LocalCatalog]:
    clock = ManualClock(SERVER)
    store = MemoryStore(clock)
    store.stamp_at_initiation = True
    await store.create_bucket("bak")
    await store.set_versioning("bak", True)
    return store, clock, LocalCatalog(tmp_path / "cat", clock)


async def history(store: ObjectStore, bucket: str, key: str) -> KeyHistory:
    return KeyHistory(key, [v async for v in iter_versions(store, bucket, prefix=key)])


async def complete(store: ObjectStore, bucket: str, key: str, upload: str, data: bytes) -> str:
    part = await store.upload_part(bucket, key, upload, 1, data)
    return await store.complete_multipart(bucket, key, upload, [part])


async def published(
    store: MemoryStore, clock: ManualClock, catalog: LocalCatalog
) -> tuple[int, bool, SnapshotMeta]:
    """`backup`'s way (rule 8): a sync of ``src`` into ``bak`` that records its listing of
    ``bak``, published as the snapshot; what it copied, whether its recording was closed, and
    the snapshot."""
    with ListedState(clock) as listed:
        synced = await sync(
            store, S3Url("src"), store, S3Url("bak"), SyncOptions(), clock=clock, listed=listed
        )
        ended = await server_now(store, "bak", clock)
        meta = await snapshot_after(
            synced, listed, store, S3Url("bak"), catalog, clock, ended=ended
        )
    return synced.copied, listed.writer is None, meta


@pytest.mark.parametrize("folder", ["", "site"], ids=["bucket", "folder"])
async def test_gc_keeps_the_indexed_version_of_a_key_uploading_at_t(
    tmp_path: Path, folder: str
) -> None:
    store, clock, catalog = await aws_like(tmp_path)
    backup = S3Url("bak", folder)
    big = backup.key("big")
    old = await store.put("bak", big, b"old")
    clock.advance(10 * SECOND)
    upload = await store.create_multipart("bak", big)
    clock.advance(10 * SECOND)
    meta = await take_snapshot(store, backup, catalog, clock)
    new = await complete(store, "bak", big, upload, b"new")  # after the listing

    index = {v.key: v.version_id for v in (await catalog.open_index(meta)).rows()}
    assert index == {"big": old}
    assert meta.held == (("big", old),) and meta.format_version == "2.0"
    # What gc would otherwise go by: the stamps name the upload's version live at T.
    live = (await history(store, "bak", big)).live_at(meta.at)
    assert live is not None and live.version_id == new

    clock.advance(timedelta(minutes=1))
    await gc_catalog(store, catalog, backup, RetentionPolicy(keep_last=1), clock)
    assert [v.version_id for v in (await history(store, "bak", big)).versions] == [new, old]
    reloaded = {m.id: m for m in await catalog.list()}[meta.id]
    assert reloaded.held == meta.held


class CompletesAfterListing(MemoryStore):
    """Completes one upload right after the first page of the backup's (``bak``) version listing: a
    snapshot must have listed the open uploads before that (rule 26), or it holds nothing."""

    pending: tuple[str, str] | None = None

    async def list_versions_page(self, bucket: str, **kw: Any) -> VersionPage:
        page = await super().list_versions_page(bucket, **kw)
        if self.pending is not None and bucket == "bak":
            key, upload = self.pending
            self.pending = None
            await complete(self, bucket, key, upload, b"new")
        return page


@pytest.mark.parametrize("recorded", [False, True], ids=["snapshot", "backup-listing"])
async def test_the_uploads_are_listed_before_the_listing(tmp_path: Path, recorded: bool) -> None:
    clock = ManualClock(SERVER)
    store = CompletesAfterListing(clock)
    store.stamp_at_initiation = True
    await store.create_bucket("bak")
    await store.set_versioning("bak", True)
    catalog = LocalCatalog(tmp_path / "cat", clock)
    await store.create_bucket("src")
    await store.put("src", "k", b"k")
    await sync(store, S3Url("src"), store, S3Url("bak"), SyncOptions(), clock=clock)
    old = (await history(store, "bak", "k")).versions[0].version_id
    clock.advance(5 * SECOND)
    store.pending = ("k", await store.create_multipart("bak", "k"))
    clock.advance(5 * SECOND)
    if recorded:
        copied, closed, meta = await published(store, clock, catalog)
        assert copied == 0 and closed  # published, then stopped
    else:
        meta = await take_snapshot(store, S3Url("bak"), catalog, clock)
    assert store.pending is None and meta.held == (("k", old),)
    clock.advance(timedelta(minutes=1))
    await gc_catalog(store, catalog, S3Url("bak"), RetentionPolicy(keep_last=1), clock)
    assert old in {v.version_id for v in (await history(store, "bak", "k")).versions}


async def test_an_upload_begun_inside_ts_second_is_held(tmp_path: Path) -> None:
    """ListMultipartUploads gives milliseconds; the object is stamped with the whole second,
    so an upload begun at T + 0.5 s lands at T."""
    store, clock, catalog = await aws_like(tmp_path)
    old = await store.put("bak", "k", b"old")
    clock.advance(timedelta(seconds=10, milliseconds=500))
    upload = await store.create_multipart("bak", "k")
    clock.advance(timedelta(milliseconds=700))  # the server's second after it has begun
    meta = await take_snapshot(store, S3Url("bak"), catalog, clock)
    assert meta.at == SERVER + 10 * SECOND
    assert (await store.open_uploads("bak"))[0].initiated.microsecond == 500_000
    await complete(store, "bak", "k", upload, b"new")
    assert (await history(store, "bak", "k")).versions[0].last_modified == meta.at
    assert meta.held == (("k", old),)


async def test_a_backup_whose_uploads_cannot_be_listed_still_syncs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Recording the sync's listing is a saving: an error listing the uploads costs it,
    not the sync (the snapshot then lists afresh, and fails on its own if it must)."""
    store, clock, _ = await aws_like(tmp_path)
    await store.create_bucket("src")
    await store.put("src", "k", b"k")

    async def broken(bucket: str, prefix: str = "", **kw: Any) -> list[OpenUpload]:
        raise StorageError("ListBucketMultipartUploads on s3://bak failed: InternalError: x")

    store.open_uploads = broken  # type: ignore[method-assign]
    with ListedState(clock) as listed, caplog.at_level(logging.WARNING):
        synced = await sync(
            store, S3Url("src"), store, S3Url("bak"), SyncOptions(), clock=clock, listed=listed
        )
        assert synced.copied == 1 and listed.writer is None and not listed.complete
    assert "not recorded" in caplog.text


async def test_only_uploads_begun_by_t_in_the_folder_are_held(tmp_path: Path) -> None:
    store, clock, catalog = await aws_like(tmp_path)
    folder = S3Url("bak", "site")
    for key in ("site/a", "site/late", "elsewhere/a"):
        await store.put("bak", key, b"1")
    clock.advance(5 * SECOND)
    await store.create_multipart("bak", "site/a")
    await store.create_multipart("bak", "elsewhere/a")  # outside the folder
    await store.create_multipart("bak", reserved_prefix(folder) + "catalog/index/x.parquet")
    clock.advance(5 * SECOND)
    await store.create_multipart("bak", "site/late")  # in T's next second: stamped after T
    meta = await take_snapshot(store, folder, catalog, clock)
    assert [key for key, _ in meta.held] == ["a"]  # relative, as the index's keys


async def test_a_role_that_cannot_list_uploads_holds_its_whole_index_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store, clock, catalog = await aws_like(tmp_path)
    await store.put("bak", "k", b"1")
    await store.create_multipart("bak", "k")
    clock.advance(5 * SECOND)
    store.denied.add(("bak", "list_uploads"))
    with caplog.at_level(logging.WARNING):
        meta = await take_snapshot(store, S3Url("bak"), catalog, clock)
    assert meta.held == () and meta.keys == 1
    assert meta.holds_index and meta.format_version == "3.0"
    assert "s3:ListBucketMultipartUploads" in caplog.text and "every version" in caplog.text
    reloaded = {m.id: m for m in await catalog.list()}[meta.id]
    assert reloaded.holds_index


@pytest.mark.parametrize("folder", ["", "site"], ids=["bucket", "folder"])
async def test_gc_keeps_the_indexed_version_when_the_uploads_could_not_be_listed(
    tmp_path: Path, folder: str
) -> None:
    """Without the permission any key may have an upload open at T: the snapshot holds its
    whole index, and gc keeps what the index names (the stamps name the upload's version)
    while the snapshot is kept, and collects it once the snapshot is gone."""
    store, clock, catalog = await aws_like(tmp_path)
    store.denied.add(("bak", "list_uploads"))
    backup = S3Url("bak", folder)
    big, small = backup.key("big"), backup.key("small")
    old = await store.put("bak", big, b"old")
    replaced = await store.put("bak", small, b"1")
    clock.advance(10 * SECOND)
    await store.put("bak", small, b"2")
    upload = await store.create_multipart("bak", big)
    clock.advance(10 * SECOND)
    meta = await take_snapshot(store, backup, catalog, clock)
    new = await complete(store, "bak", big, upload, b"new")  # after the listing
    live = (await history(store, "bak", big)).live_at(meta.at)
    assert live is not None and live.version_id == new  # what the stamps say
    assert meta.holds_index and meta.held == ()

    clock.advance(timedelta(minutes=1))
    result = await gc_catalog(store, catalog, backup, RetentionPolicy(keep_last=1), clock)
    assert [v.version_id for v in (await history(store, "bak", big)).versions] == [new, old]
    assert replaced not in {v.version_id for v in (await history(store, "bak", small)).versions}
    assert result.versions_deleted == 1  # what no kept point needs still goes
    index = await catalog.open_index(meta)
    assert {v.key: v.version_id for v in index.rows()}["big"] == old  # restorable as it was

    clock.advance(10 * SECOND)
    await store.put("bak", big, b"newer")
    clock.advance(10 * SECOND)
    store.denied.discard(("bak", "list_uploads"))
    later = await take_snapshot(store, backup, catalog, clock)  # listed its uploads: none
    assert not later.holds_index
    clock.advance(timedelta(minutes=1))
    await gc_catalog(store, catalog, backup, RetentionPolicy(keep_last=1), clock)
    assert old not in {v.version_id for v in (await history(store, "bak", big)).versions}


async def test_gc_stops_on_a_damaged_index_a_kept_snapshot_holds_whole(tmp_path: Path) -> None:
    """gc cannot tell what such a snapshot holds without its index: it stops before it
    removes or deletes anything."""
    store, clock, catalog = await aws_like(tmp_path)
    store.denied.add(("bak", "list_uploads"))
    old = await store.put("bak", "k", b"old")
    clock.advance(5 * SECOND)
    await store.put("bak", "k", b"new")
    clock.advance(5 * SECOND)
    first = await take_snapshot(store, S3Url("bak"), catalog, clock)
    clock.advance(5 * SECOND)
    second = await take_snapshot(store, S3Url("bak"), catalog, clock)
    path = await catalog.index_path(second)
    damaged = path.read_bytes()
    path.write_bytes(damaged[:-1] + bytes([damaged[-1] ^ 1]))  # the same size, another sum
    clock.advance(timedelta(minutes=1))
    with pytest.raises(CorruptIndex, match="checksum"):
        await gc_catalog(store, catalog, S3Url("bak"), RetentionPolicy(keep_last=1), clock)
    assert {m.id for m in await catalog.list()} == {first.id, second.id}  # nothing removed
    assert old in {v.version_id for v in (await history(store, "bak", "k")).versions}


async def test_the_sync_listing_a_backup_publishes_holds_too(tmp_path: Path) -> None:
    """`backup` publishes a no-op sync's listing as the snapshot (rule 8): it holds the same."""
    store, clock, catalog = await aws_like(tmp_path)
    await store.create_bucket("src")
    await store.put("src", "k", b"k")
    await sync(store, S3Url("src"), store, S3Url("bak"), SyncOptions(), clock=clock)
    copied = (await history(store, "bak", "k")).versions[0].version_id
    await store.create_multipart("bak", "k")
    clock.advance(3 * SECOND)
    copied_now, _, meta = await published(store, clock, catalog)
    assert copied_now == 0
    assert meta.held == (("k", copied),)


def test_a_manifest_with_holds_is_format_2_or_3_and_round_trips() -> None:
    plain = SnapshotMeta("s1", SERVER, SERVER, "s3://bak", None, 1, 3, "0" * 64, 10)
    assert plain.format_version == "1.0" and "held" not in plain.to_json()
    held = SnapshotMeta(
        "s2", SERVER, SERVER, "s3://bak", None, 1, 3, "0" * 64, 10, held=(("a b\n", "v1"),)
    )
    data = json.loads(held.dumps())
    assert data["format_version"] == "2.0"
    assert data["held"] == [{"key": "a b\n", "version_id": "v1"}]
    assert SnapshotMeta.from_json(data, "m") == held
    with pytest.raises(UnsupportedFormat):
        SnapshotMeta.from_json({**data, "format_version": "4.0"}, "m")
    whole = SnapshotMeta(
        "s3", SERVER, SERVER, "s3://bak", None, 1, 3, "0" * 64, 10, holds_index=True
    )
    data = json.loads(whole.dumps())
    assert data["format_version"] == "3.0" and data["holds_index"] is True  # 2.x readers refuse
    assert SnapshotMeta.from_json(data, "m") == whole


async def test_a_snapshot_holds_an_open_upload_on_the_server(
    store: ObjectStore, make_bucket: BucketFactory, tmp_path: Path
) -> None:
    """ListMultipartUploads through the real request path (SeaweedFS stamps completions, so
    there the hold only costs a kept version)."""
    bucket = await make_bucket()
    indexed = await store.put(bucket, "dir/a b ü", b"x" * 100)
    await store.put(bucket, "dir/other", b"y")
    upload = await store.create_multipart(bucket, "dir/a b ü")
    await writes_settled(store, bucket)
    clock = store.clock if isinstance(store, MemoryStore) else SYSTEM_CLOCK
    try:
        meta = await take_snapshot(store, S3Url(bucket), LocalCatalog(tmp_path / "c", clock), clock)
    finally:
        await store.abort_multipart(bucket, "dir/a b ü", upload)
    assert meta.held == (("dir/a b ü", indexed),) and meta.keys == 2


async def test_gc_warns_of_uploads_a_killed_run_left_open(tmp_path: Path) -> None:
    """A sync killed during a multipart copy leaves its upload open: billed, and held by
    every snapshot. gc names it (it cannot tell who began it, so it aborts nothing), and
    apart from it an index upload a killed run left in the catalog's folder."""
    store, clock, catalog = await aws_like(tmp_path)
    backup = S3Url("bak", "site")
    await store.put("bak", "site/k", b"1")
    left = await store.create_multipart("bak", "site/left behind")
    await store.create_multipart("bak", "elsewhere/not ours")
    index = reserved_prefix(backup) + "catalog/index/big.parquet"
    await store.create_multipart("bak", index)
    clock.advance(timedelta(days=2))
    await store.create_multipart("bak", "site/running")
    clock.advance(5 * SECOND)
    await take_snapshot(store, backup, catalog, clock)
    result = await gc_catalog(store, catalog, backup, RetentionPolicy(keep_last=1), clock)
    warning, catalog_warning = [w for w in result.warnings if "multipart" in w]
    assert warning.startswith("1 multipart upload in s3://bak/site/ open for more than a day")
    assert "'site/left behind' since 2026-03-01" in warning
    reserved = S3Url("bak", reserved_prefix(backup))
    assert catalog_warning.startswith(
        f"1 multipart upload of the catalog in {reserved} open for more than a day"
    )
    assert f"{index!r} since 2026-03-01" in catalog_warning
    still_open = {u.key: u.upload_id for u in await store.open_uploads("bak", "site/")}
    assert still_open["site/left behind"] == left and index in still_open  # both kept


def test_the_catalogs_uploads_of_a_bucket_root_backup_are_named_by_their_folder() -> None:
    backup, now = S3Url("bak"), datetime(2026, 3, 5, tzinfo=UTC)
    old = now - timedelta(days=3)
    uploads = [
        OpenUpload(reserved_prefix(backup) + "catalog/index/x.parquet", "u1", old),
        OpenUpload(reserved_prefix(backup) + "catalog/index/y.parquet", "u2", now),  # running
    ]
    [warning] = stale_upload_warnings(uploads, backup, now, reserved=reserved_prefix(backup))
    assert warning.startswith(
        f"1 multipart upload of the catalog in s3://bak/{reserved_prefix(backup)} open for"
    )


@pytest.mark.parametrize("dry_run", [False, True], ids=["gc", "dry-run"])
async def test_gc_that_cannot_list_uploads_collects_and_warns(
    tmp_path: Path, dry_run: bool
) -> None:
    """The uploads gc lists are only for its warning: without the permission it collects
    exactly as before and says it could not look."""
    store, clock, catalog = await aws_like(tmp_path)
    old = await store.put("bak", "k", b"old")
    clock.advance(5 * SECOND)
    await store.put("bak", "k", b"new")
    clock.advance(5 * SECOND)
    await take_snapshot(store, S3Url("bak"), catalog, clock)
    store.denied.add(("bak", "list_uploads"))
    result = await gc_catalog(
        store, catalog, S3Url("bak"), RetentionPolicy(keep_last=1), clock, dry_run=dry_run
    )
    assert result.versions_deleted == 1
    assert (old in {v.version_id for v in (await history(store, "bak", "k")).versions}) is dry_run
    assert any("could not list the open uploads of s3://bak" in w for w in result.warnings)


async def test_a_server_without_upload_listing_holds_its_whole_index_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store, clock, catalog = await aws_like(tmp_path)
    await store.put("bak", "k", b"1")

    async def not_implemented(bucket: str, prefix: str = "", **kw: Any) -> list[OpenUpload]:
        raise StorageError("ListBucketMultipartUploads on s3://bak failed: NotImplemented: no")

    store.open_uploads = not_implemented  # type: ignore[method-assign]
    clock.advance(5 * SECOND)
    with caplog.at_level(logging.WARNING):
        meta = await take_snapshot(store, S3Url("bak"), catalog, clock)
    assert meta.held == () and meta.holds_index and "cannot be listed" in caplog.text

    async def failing(bucket: str, prefix: str = "", **kw: Any) -> list[OpenUpload]:
        raise StorageError("ListBucketMultipartUploads on s3://bak failed: InternalError: boom")

    store.open_uploads = failing  # type: ignore[method-assign]
    with pytest.raises(StorageError, match="InternalError"):  # to retry, not to ignore
        await take_snapshot(store, S3Url("bak"), catalog, clock)


def test_whole_indexes_are_read_beside_the_listing_in_key_order() -> None:
    """Each index is read one row at a time as gc's listing goes by: rows of keys the
    listing does not ask for are passed over, and a key asked out of order is a bug."""
    first = iter([("a", "1"), ("b", "2"), ("d", "4")])
    second = iter([("b", "2b"), ("c", "3"), ("e", "5")])
    holds = IndexHolds([first, second])
    assert holds.at("b") == {"2", "2b"}  # "a" passed over
    assert holds.at("c") == {"3"}
    assert holds.at("cc") == frozenset()
    assert holds.at("e") == {"5"}  # "d" passed over
    assert holds.at("f") == frozenset() and next(first, None) is None
    with pytest.raises(AssertionError, match="out of order"):
        holds.at("a")


async def test_the_listing_a_backup_publishes_holds_its_whole_index_without_the_permission(
    tmp_path: Path,
) -> None:
    """`backup` publishes a no-op sync's listing as the snapshot (rule 8): it holds the same."""
    store, clock, catalog = await aws_like(tmp_path)
    await store.create_bucket("src")
    await store.put("src", "k", b"k")
    await sync(store, S3Url("src"), store, S3Url("bak"), SyncOptions(), clock=clock)
    store.denied.add(("bak", "list_uploads"))
    clock.advance(3 * SECOND)
    copied_now, closed, meta = await published(store, clock, catalog)
    assert copied_now == 0 and closed  # the listing was published
    assert meta.holds_index and meta.format_version == "3.0"


@pytest.mark.parametrize("dry_run", [False, True], ids=["gc", "dry-run"])
async def test_two_kept_snapshots_that_hold_their_indexes_keep_both_versions(
    tmp_path: Path, dry_run: bool
) -> None:
    """Each kept whole-index snapshot keeps what it names; a dry run plans the same."""
    store, clock, catalog = await aws_like(tmp_path)
    store.denied.add(("bak", "list_uploads"))
    first_v = await store.put("bak", "big", b"1")
    clock.advance(10 * SECOND)
    first_up = await store.create_multipart("bak", "big")
    clock.advance(10 * SECOND)
    first = await take_snapshot(store, S3Url("bak"), catalog, clock)
    second_v = await complete(store, "bak", "big", first_up, b"2")  # stamped by T1
    clock.advance(10 * SECOND)
    second_up = await store.create_multipart("bak", "big")
    clock.advance(10 * SECOND)
    second = await take_snapshot(store, S3Url("bak"), catalog, clock)
    newest = await complete(store, "bak", "big", second_up, b"3")  # stamped by T2
    clock.advance(10 * SECOND)
    await store.put("bak", "gone", b"x")
    await store.delete("bak", "gone")  # its version: needed by no kept point
    index = {m.id: {v.key: v.version_id for v in (await catalog.open_index(m)).rows()}
             for m in (first, second)}  # fmt: skip
    assert index == {first.id: {"big": first_v}, second.id: {"big": second_v}}
    clock.advance(timedelta(minutes=1))
    planned: list[str] = []
    result = await gc_catalog(
        store, catalog, S3Url("bak"), RetentionPolicy(keep_last=2), clock, dry_run=dry_run,
        on_planned=lambda v: planned.append(v.key),
    )  # fmt: skip
    assert result.versions_deleted == 1 and planned == (["gone"] if dry_run else [])
    kept = [v.version_id for v in (await history(store, "bak", "big")).versions]
    assert kept == [newest, second_v, first_v]


def test_a_manifest_that_holds_rows_and_its_index_is_format_3_and_strict() -> None:
    both = SnapshotMeta(
        "s4", SERVER, SERVER, "s3://bak", None, 1, 3, "0" * 64, 10,
        held=(("k", "v1"),), holds_index=True,
    )  # fmt: skip
    data = json.loads(both.dumps())
    assert data["format_version"] == "3.0"
    assert SnapshotMeta.from_json(data, "m") == both
    for damaged in ({**data, "holds_index": "true"}, {k: v for k, v in data.items()
                                                      if k != "holds_index"}):  # fmt: skip
        with pytest.raises(CorruptIndex, match="malformed"):  # never read as "holds nothing"
            SnapshotMeta.from_json(damaged, "m")


def test_an_index_out_of_key_order_is_refused_where_gc_reads_it(tmp_path: Path) -> None:
    """gc matches index rows to its listing by key order: an index out of order (written by
    another tool, with a matching checksum) stops it instead of skipping rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from backup_my_bucket.catalog.index import IndexReader, file_sha256, schema

    path = tmp_path / "s.parquet"
    when = datetime(2026, 1, 1, tzinfo=UTC)
    rows = {
        "key": ["a", "c", "b"],
        "version_id": ["1", "2", "3"],
        "size": [1, 1, 1],
        "etag": ["e", "e", "e"],
        "last_modified": [when] * 3,
        "storage_class": [None] * 3,
    }
    table = pa.table(rows, schema=schema().with_metadata({"bmb.format": "1.0"}))
    pq.write_table(table, str(path))
    meta = SnapshotMeta(
        "s5", SERVER, SERVER, "s3://bak", None, 3, 3, file_sha256(path), path.stat().st_size
    )
    reader = IndexReader(path, meta)
    with pytest.raises(CorruptIndex, match="out of key order"):
        list(reader.refs())
