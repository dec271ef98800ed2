"""The in-memory model of SeaweedFS's paging (MemoryStore(seaweedfs_paging=True)) answers
what SeaweedFS 4.48 answers, page for page, on the research note's minimal reproductions
(docs/design.md, "Paging a tree-walking server"): the same keys listed, the same keys lost.

If SeaweedFS fixes its paging, these tests fail on the server side first: then the model,
the TREE paging and docs/design.md are due for a look.
"""

from __future__ import annotations

import pytest

from backup_my_bucket.model import VersionPage
from backup_my_bucket.storage.memory import MemoryStore
from backup_my_bucket.storage.protocol import ObjectStore
from backup_my_bucket.storage.s3 import S3Store

from ..conftest import unique_bucket

pytestmark = pytest.mark.s3

IMG = [f"img{d}{sep}{i:04d}.jpg" for d in range(3) for sep in "-/" for i in range(30)] + [
    f"img{d}.idx" for d in range(3)
]


async def _fill(store: ObjectStore, bucket: str, keys: list[str], versioned: bool) -> None:
    await store.create_bucket(bucket)
    if versioned:
        await store.set_versioning(bucket, True)
    for key in keys:
        await store.put(bucket, key, b"x")


Page = tuple[list[str], list[str], bool, str | None]


def _shape(page: VersionPage) -> Page:
    return (
        [v.key for v in page.entries],
        page.common_prefixes,
        page.is_truncated,
        page.next_key_marker,
    )


async def _naive(store: ObjectStore, bucket: str, max_keys: int, **kw: str) -> list[Page]:
    """Page by the server's own markers (KeyMarker + VersionIdMarker), as most clients do."""
    pages: list[Page] = []
    key_marker = version_marker = ""
    while True:
        page = await store.list_versions_page(
            bucket, key_marker=key_marker, version_id_marker=version_marker, max_keys=max_keys, **kw
        )
        pages.append(_shape(page))
        if not page.is_truncated:
            return pages
        key_marker, version_marker = page.next_key_marker or "", page.next_version_id_marker or ""


def _listed(pages: list[Page]) -> list[str]:
    return [key for keys, _, _, _ in pages for key in keys]


@pytest.mark.parametrize(
    ("keys", "versioned", "max_keys", "listed"),
    [
        # 1: a directory "a" beside "a-…" and "a.x": walked first, it ends every page
        (
            ["a-0", "a-1", "a-2", "a.x", "a/0", "a/1", "a/2", "b"],
            True,
            1,
            ["a/0", "a/1", "a/2", "b"],
        ),
        # 2: no directory at all: the versioned "a" is "a.versions", walked after "a-1.versions"
        (["a", "a-1", "a-2", "b"], True, 1, ["a-1", "a-2", "b"]),
        (["a", "a-1", "a-2", "a.b", "a.z", "b"], True, 2, ["a-1", "a-2", "a.b", "a.z", "b"]),
        # the same stem, unversioned: a file "a" is walked first, nothing is lost
        (["a", "a-1", "a-2", "b"], False, 1, ["a", "a-1", "a-2", "b"]),
        # 3: the folder-plus-suffix layout, at a page size that cuts inside each directory
        (IMG, True, 25, None),
        (IMG, False, 40, None),
    ],
)
async def test_model_pages_like_the_server(
    s3_store: S3Store, keys: list[str], versioned: bool, max_keys: int, listed: list[str] | None
) -> None:
    model = MemoryStore(seaweedfs_paging=True)
    bucket = unique_bucket("model")
    await _fill(s3_store, bucket, keys, versioned)
    await _fill(model, bucket, keys, versioned)
    server_pages = await _naive(s3_store, bucket, max_keys)
    assert await _naive(model, bucket, max_keys) == server_pages
    if listed is not None:
        assert _listed(server_pages) == listed
    else:
        assert set(_listed(server_pages)) < set(keys), "the layout lost nothing: fixed server?"
    for delimiter_pages in (await _naive(s3_store, bucket, 2, delimiter="/"),):
        assert await _naive(model, bucket, 2, delimiter="/") == delimiter_pages


async def test_model_empty_page_for_a_marker_below_the_prefix(s3_store: S3Store) -> None:
    """4: SeaweedFS 4.48 answers KeyMarker < Prefix (another name between) with nothing."""
    model = MemoryStore(seaweedfs_paging=True)
    bucket = unique_bucket("model")
    for store in (s3_store, model):
        await _fill(store, bucket, ["a", "b", "img0", "img0-1", "img0/1"], True)
    for prefix, marker in (("b", "a"), ("img0-", "img0")):
        for store in (s3_store, model):
            page = await store.list_versions_page(bucket, prefix=prefix, key_marker=marker)
            assert (page.entries, page.is_truncated) == ([], False)


async def test_model_prefix_matches_the_versions_directory(s3_store: S3Store) -> None:
    """``Prefix=k.versions`` (or any prefix of that name) lists the key ``k``."""
    model = MemoryStore(seaweedfs_paging=True)
    bucket = unique_bucket("model")
    for store in (s3_store, model):
        await _fill(store, bucket, ["a", "a-1", "a.b", "b"], True)
        for prefix in ("a.versions", "a.v"):
            page = await store.list_versions_page(bucket, prefix=prefix)
            assert [v.key for v in page.entries] == ["a"]
    assert "seaweedfs" in (await s3_store.server(bucket)).lower()
    assert "seaweedfs" in (await model.server(bucket)).lower()
