"""Restore on the real server (SeaweedFS): snapshots of random histories, and --to a prefix.

Keys avoid SeaweedFS's paging deviation (docs/design.md): no key sorts between a directory
and its contents (no ``a-b`` beside ``a/``), and no key is both a file and a directory.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backup_my_bucket.engine.restore import Mode
from backup_my_bucket.model import S3Url
from backup_my_bucket.storage.s3 import S3Store

from .. import figures
from ..conftest import unique_bucket
from .restore_helpers import aiter_list, bucket_state, live, restore
from .test_restore_property import check_state, expected, write_history

pytestmark = pytest.mark.s3


@pytest.fixture(autouse=True, scope="module")
def _collect_garbage() -> Iterator[None]:
    """Hypothesis leaves cyclic garbage behind; collect it here rather than in the middle of a
    later test that measures its own allocations (test_transfer's bounded-memory test)."""
    yield
    gc.collect()


S3_KEYS = ["a", "b", "d/x", "d/y", "z"]
S3_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.sampled_from(S3_KEYS), st.integers(0, 3)),
        st.tuples(st.just("delete"), st.sampled_from(S3_KEYS), st.just(0)),
        st.tuples(st.just("snap"), st.just(""), st.just(0)),
    ),
    min_size=3,
    max_size=14,
)


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(ops=S3_OPS, backup_prefix=st.sampled_from(["", "bk/"]))
async def test_rollback_to_each_snapshot_on_seaweedfs(
    s3_store: S3Store, ops: list[tuple[str, str, int]], backup_prefix: str
) -> None:
    figures.history("restore")
    src, bk = unique_bucket("src"), unique_bucket("bk")
    for bucket in (src, bk):
        await s3_store.create_bucket(bucket)
    await s3_store.set_versioning(bk, True)
    source, backup = S3Url(src), S3Url(bk, backup_prefix)
    _, snaps = await write_history(s3_store, [*ops, ("snap", "", 0)], source, backup, None)
    for versions, model in reversed(snaps):  # newest first: the oldest ends the test
        result = await restore(s3_store, backup, source, aiter_list(versions))  # type: ignore[arg-type]
        assert result.failed == 0 and result.verified, result.failures
        await check_state(s3_store, src, expected(model))


async def test_safe_into_another_prefix_on_seaweedfs(s3_store: S3Store) -> None:
    bk, other = unique_bucket("bk"), unique_bucket("other")
    for bucket in (bk, other):
        await s3_store.create_bucket(bucket)
    await s3_store.set_versioning(bk, True)
    for key in ("a", "d/x", "d/y"):
        await s3_store.put(bk, key, key.encode())
    await s3_store.put(other, "r/d/x", b"keep")
    desired = await live(s3_store, bk)
    result = await restore(
        s3_store, S3Url(bk), S3Url(other, "r/"), aiter_list(desired), mode=Mode.SAFE
    )
    assert (result.copied, result.skipped, result.failed) == (2, 1, 0) and result.verified
    got = {k: v[0] for k, v in (await bucket_state(s3_store, other, "r/")).items()}
    assert got == {"a": b"a", "d/x": b"keep", "d/y": b"d/y"}
