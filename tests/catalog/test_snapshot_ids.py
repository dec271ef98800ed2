"""A snapshot id names files: one with `/`, `..` or a NUL is refused from every source (a
manifest in a local or S3 catalog, the command line) before any path is built, and nothing is
ever written outside the catalog (or its index cache). A failed index download leaves no
`.part` file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backup_my_bucket.catalog import LocalCatalog, S3Catalog, resolve_id
from backup_my_bucket.catalog.index import check_snapshot_id
from backup_my_bucket.clock import ManualClock
from backup_my_bucket.errors import CatalogError, StorageError, UsageError
from backup_my_bucket.model import S3Url
from backup_my_bucket.storage.memory import MemoryStore

from ..cli.conftest import bmb
from .test_catalog import T0, make_meta

BAD = ["../escaped", "a/b", "x\x00y", "..", "a..b", "/abs", ".hidden", "", "a\\b", "a b"]


@pytest.mark.parametrize("bad", BAD)
def test_bad_ids_are_refused(bad: str) -> None:
    with pytest.raises(CatalogError):
        check_snapshot_id(bad, "test")
    with pytest.raises(UsageError):
        resolve_id(bad, [make_meta("20261126T100000Z-abc123", Path("/dev/null"), 0)])


def test_good_ids_pass() -> None:
    for good in ("20261126T100000Z-3f9a1c", "a", "v1.2_3-x"):
        assert check_snapshot_id(good, "test") == good


def _manifest(tmp_path: Path, snapshot_id: str) -> bytes:
    meta = make_meta("20261126T100000Z-abc123", tmp_path / "i.parquet", 1)
    data = json.loads(meta.dumps())
    data["id"] = snapshot_id
    return json.dumps(data).encode()


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("bad", ["../escaped", "a/b", "x\x00y", ".."])
async def test_planted_manifest_in_a_local_catalog(tmp_path: Path, bad: str) -> None:
    root = tmp_path / "catalog"
    (root / "snapshots").mkdir(parents=True)
    (root / "snapshots" / "planted.json").write_bytes(_manifest(tmp_path, bad))
    listing = await LocalCatalog(root, ManualClock(T0)).scan()  # a damaged snapshot, by name
    assert listing.snapshots == () and [d.id for d in listing.damaged] == ["planted"]
    assert "not a valid snapshot id" in listing.damaged[0].problem


@pytest.fixture
async def planted_s3(tmp_path: Path) -> tuple[MemoryStore, S3Catalog]:
    store = MemoryStore()
    await store.create_bucket("cat")
    catalog = S3Catalog(store, S3Url("cat", "c"), tmp_path / "area" / "cache", ManualClock(T0))
    return store, catalog


@pytest.mark.parametrize("bad", ["../escaped", "a/b", "x\x00y", ".."])
async def test_planted_manifest_in_an_s3_catalog_writes_nothing_outside(
    tmp_path: Path, planted_s3: tuple[MemoryStore, S3Catalog], bad: str
) -> None:
    store, catalog = planted_s3
    await store.put("cat", "c/snapshots/x.json", _manifest(tmp_path, bad))
    await store.put("cat", "c/index/escaped.parquet", b"not an index")
    before = _files(tmp_path)
    listing = await catalog.scan()  # listed as damaged (by its file name), never trusted
    assert listing.snapshots == () and [d.id for d in listing.damaged] == ["x"]
    assert "not a valid snapshot id" in listing.damaged[0].problem
    meta = make_meta("20261126T100000Z-abc123", tmp_path / "j.parquet", 1)
    object.__setattr__(meta, "id", bad)  # as if a manifest had slipped through
    with pytest.raises(CatalogError):
        await catalog.index_path(meta)
    with pytest.raises(CatalogError):
        await catalog.remove([bad])
    assert _files(tmp_path) - before == {tmp_path / "j.parquet"}  # nothing else, anywhere


class _BrokenGet(MemoryStore):
    async def get(self, *args: object, **kwargs: object):  # type: ignore[no-untyped-def, override]
        yield b"half an index"
        raise StorageError("connection dropped")


async def test_a_failed_index_download_leaves_no_part_file(tmp_path: Path) -> None:
    store = _BrokenGet()
    await store.create_bucket("cat")
    cache = tmp_path / "cache"
    catalog = S3Catalog(store, S3Url("cat", "c"), cache, ManualClock(T0))
    meta = make_meta("20261126T100000Z-abc123", tmp_path / "k.parquet", 1)
    with pytest.raises(StorageError):
        await catalog.index_path(meta)
    assert list(cache.iterdir()) == []


async def test_the_command_line_refuses_them(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    catalog = ["--catalog", str(tmp_path / "cat")]
    for bad in ("../escaped", "a/b"):
        code, _, err = await bmb(capsys, *catalog, "show", bad)
        assert code == 2 and "not a valid snapshot id" in err, err
