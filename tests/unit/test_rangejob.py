"""Listing ranges as jobs (storage/rangejob.py) without a cluster: a runner that pickles each
job and its result on the way (as Dask does) and runs it against the same store gives the
in-process listing's rows, on the model of SeaweedFS's paging (TREE) and on AWS semantics,
whatever the pages per job; a job run twice returns the same result."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backup_my_bucket.storage.audit import stable_hash
from backup_my_bucket.storage.listing import ListingOptions, ParallelListing
from backup_my_bucket.storage.memory import MemoryStore
from backup_my_bucket.storage.paging import Paging
from backup_my_bucket.storage.rangejob import RangeJob, RangeResult, list_range

from ..samples import stem_layout
from .test_paging import _KEY, CLOCK, Row, _both, _list, _row


class Pickled:
    """Runs each job against ``store`` as a worker would get it: pickled both ways; with
    ``twice``, runs it twice and checks both results are the same."""

    def __init__(self, store: MemoryStore, pages: int, *, twice: bool = False) -> None:
        self.store, self.pages, self.twice, self.jobs = store, pages, twice, 0

    async def run(self, job: RangeJob[Any]) -> RangeResult[Any]:
        self.jobs += 1
        sent: RangeJob[Any] = pickle.loads(pickle.dumps(job))
        result = await list_range(self.store, sent)
        if self.twice:
            again = await list_range(self.store, pickle.loads(pickle.dumps(job)))
            assert _fields(again) == _fields(result)
        back: RangeResult[Any] = pickle.loads(pickle.dumps(result))
        return back


def _fields(r: RangeResult[Any]) -> tuple[Any, ...]:
    return r.rows, r.state, r.carry, r.added, list(r.live), r.oldest, r.newest


async def _remote(
    store: MemoryStore, paging: Paging, page_size: int, runner: Pickled, **kw: Any
) -> list[Row]:
    options = ListingOptions(page_size=page_size, paging=paging, clock=CLOCK)
    listing = ParallelListing(store, "b", _row, options=options, remote=runner, **kw)
    rows = [row async for row in listing.results()]
    assert listing.audit is None or listing.audit._hash is stable_hash
    return rows


async def test_jobs_of_one_page_list_the_stem_layout_as_in_process() -> None:
    """Folders beside files sharing their prefix, pages of 2, a job per page: a key's
    versions continue from one job into the next (``carry``) and nothing is lost."""
    truth, model = await _both(stem_layout(per=12))
    want = await _list(truth, Paging.NAIVE, 1000)
    runner = Pickled(model, pages=1, twice=True)
    assert await _remote(model, Paging.TREE, 2, runner, workers=4) == want
    assert runner.jobs > len(want) // 2
    assert await _remote(truth, Paging.NAIVE, 2, Pickled(truth, pages=3), workers=4) == want


@pytest.mark.parametrize(("page_size", "workers", "pages"), [(2, 16, 3), (3, 16, 8), (2, 4, 8)])
async def test_ranges_a_job_adds_keep_their_key_order(
    page_size: int, workers: int, pages: int
) -> None:
    """A job of several pages that cuts ranges and then has TREE paging add more (a
    descent, a resume): each addition goes right after the range, before the earlier ones."""
    truth, model = await _both(stem_layout(per=12))
    want = await _list(truth, Paging.NAIVE, 1000)
    runner = Pickled(model, pages)
    assert await _remote(model, Paging.TREE, page_size, runner, workers=workers) == want


async def test_a_history_longer_than_a_job_is_carried_whole() -> None:
    """One key with more versions than a job lists: it comes out once, every version."""
    truth, _ = await _both(["a", "b", "c"])
    for _ in range(9):
        await truth.put("b", "b", b"again")
    want = await _list(truth, Paging.NAIVE, 1000)
    assert len(dict(want)["b"]) >= 10
    assert await _remote(truth, Paging.NAIVE, 2, Pickled(truth, pages=1)) == want


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    keys=st.lists(_KEY, min_size=1, max_size=40, unique=True),
    versioned=st.booleans(),
    page_size=st.sampled_from([1, 2, 3, 1000]),
    pages=st.sampled_from([1, 2, 8]),
    workers=st.sampled_from([1, 4, 16]),
    seed=st.integers(0, 3),
)
async def test_jobs_list_any_layout_as_in_process(
    keys: list[str], versioned: bool, page_size: int, pages: int, workers: int, seed: int
) -> None:
    keys = [k for k in keys if not any(o.startswith(k + "/") for o in keys)]  # no file & dir
    truth, model = await _both(keys, versioned=versioned, seed=seed)
    prefix = keys[0][:2] if seed % 2 else ""
    want = await _list(truth, Paging.NAIVE, 1000, prefix=prefix)
    runner = Pickled(model, pages)
    assert (
        await _remote(model, Paging.TREE, page_size, runner, prefix=prefix, workers=workers) == want
    )
