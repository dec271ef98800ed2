"""Complete listings on a tree-walking server, and the audit that catches a short one.

The server here is the in-memory model of SeaweedFS's paging (MemoryStore(seaweedfs_paging=
True), checked against the real server in tests/contract/test_seaweedfs_model.py); the truth
is the same data in an AWS-semantics MemoryStore.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backup_my_bucket.clock import ManualClock
from backup_my_bucket.errors import IncompleteListing, UsageError
from backup_my_bucket.model import KeyHistory
from backup_my_bucket.storage.iterate import iter_versions
from backup_my_bucket.storage.listing import ListingOptions, ParallelListing, paging_for
from backup_my_bucket.storage.memory import MemoryStore
from backup_my_bucket.storage.paging import (
    MAX_CHAR,
    Paging,
    RiskKind,
    hazards,
    is_safe,
    lists_in_key_order,
    predecessor,
    risks,
)

from ..samples import stem_layout

Row = tuple[str, tuple[str, ...]]


def _row(history: KeyHistory) -> Row:
    return history.key, tuple(v.version_id for v in history.versions)


CLOCK = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))


async def _both(keys: list[str], *, versioned: bool = True, seed: int = 0) -> list[MemoryStore]:
    """The same writes (versions, overwrites, deletes) in an AWS store and the model; the
    clock then moves on a minute (the audit takes keys written as it starts for races)."""
    stores = [MemoryStore(CLOCK), MemoryStore(CLOCK, seaweedfs_paging=True)]
    rng = random.Random(seed)
    ops = []
    for key in keys:
        ops.append((key, True))
        if versioned and rng.random() < 0.3:
            ops.append((key, True))
        if rng.random() < 0.15:
            ops.append((key, False))
    for store in stores:
        await store.create_bucket("b")
        if versioned:
            await store.set_versioning("b", True)
        for key, put in ops:
            if put:
                await store.put("b", key, b"x")
            else:
                await store.delete("b", key)
    CLOCK.advance(timedelta(minutes=1))
    return stores


async def _list(store: MemoryStore, paging: Paging, page_size: int, **kw: object) -> list[Row]:
    options = ListingOptions(page_size=page_size, paging=paging, clock=CLOCK)
    listing = ParallelListing(store, "b", _row, options=options, **kw)  # type: ignore[arg-type]
    return [row async for row in listing.results()]


async def _drain(listing: ParallelListing[Row], into: list[Row]) -> None:
    """Take the rows of a listing that may end with an error."""
    async for row in listing.results():
        into.append(row)


# --- the pieces --------------------------------------------------------------------------------


def test_paging_from_the_server_name() -> None:
    assert paging_for("SeaweedFS 8000GB 4.48") is Paging.TREE
    assert paging_for("AmazonS3") is Paging.NAIVE
    assert paging_for("") is Paging.NAIVE


def test_hazards_are_directories_a_marker_skips() -> None:
    # a walk resuming at "img0-0050.jpg" starts the root at that name: directory "img0"
    # (keys "img0/…", after the marker) comes before it and is skipped; so is "img0-0050"
    assert hazards("img0-0050.jpg", "") == ["img0", "img0-0050"]
    assert hazards("img0/0050.jpg", "") == ["img0/0050"]  # '/' ends a component: no hazard
    assert hazards("a-b", "a-") == []  # under the prefix only
    assert hazards("zz", "a") == []
    assert is_safe("d0000/s08" + MAX_CHAR, "", ()) and not is_safe("a-b", "", ())
    assert is_safe("a-b", "", {"a"})


def test_predecessor_is_just_below() -> None:
    for bound in ["d0000/s09", "img1", "a/b.c", "x0", "k\u00e9"]:
        below = predecessor(bound)
        assert below < bound
        assert all(not below < key < bound for key in [bound[:-1] + "~", bound[:-1]])
    assert predecessor("x\0") == "x"


def test_risks_of_a_page_end() -> None:
    # a page ending inside directory img1/: img1 and its siblings img1-… may follow
    found = list(risks("img1/0298.jpg", "img0.idx", False, ""))
    assert [(r.kind, r.at, r.trapped) for r in found] == [
        (RiskKind.DIR, "img1", False),
        (RiskKind.POINT, "img1/0298", False),
    ]
    # listed up to img1 itself: the page never left img1's directory: trapped
    assert next(risks("img1/0298.jpg", "img1", False, "")).trapped
    # a never-versioned bucket has no ".versions": names walk in order, only directories matter
    assert list(risks("img1-0298.jpg", "", False, "", stems=False)) == []
    assert [r.at for r in risks("img1-0298.jpg", "", False, "")] == ["img1", "img1-0298"]


# --- whole listings -------------------------------------------------------------------------


@pytest.mark.parametrize("versioned", [True, False])
@pytest.mark.parametrize("page_size", [1000, 37, 2])
async def test_tree_paging_is_complete_where_naive_paging_loses(
    versioned: bool, page_size: int
) -> None:
    keys = stem_layout(per=12 if page_size == 2 else 40)
    truth, model = await _both(keys, versioned=versioned)
    want = await _list(truth, Paging.NAIVE, 1000)
    if page_size < 1000:  # the whole layout fits one page of 1,000
        naive: list[Row] = []
        options = ListingOptions(page_size=page_size, paging=Paging.NAIVE, clock=CLOCK)
        with pytest.raises(IncompleteListing):  # the audit does not let a short listing pass
            await _drain(ParallelListing(model, "b", _row, options=options), naive)
        assert len(naive) < len(want), "the model lost nothing: is it still SeaweedFS's?"
    for workers in (1, 8):
        assert await _list(model, Paging.TREE, page_size, workers=workers) == want


_KEY = st.text(alphabet=st.sampled_from(list("ab-. !+/\u00e9")), min_size=1, max_size=7).filter(
    lambda k: not k.startswith("/") and not k.endswith("/") and "//" not in k
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    keys=st.lists(_KEY, min_size=1, max_size=60, unique=True),
    versioned=st.booleans(),
    page_size=st.sampled_from([1, 2, 3, 7, 1000]),
    workers=st.sampled_from([1, 4]),
    cut=st.integers(0, 6),
    seed=st.integers(0, 3),
)
async def test_tree_paging_is_complete_on_any_layout(
    keys: list[str], versioned: bool, page_size: int, workers: int, cut: int, seed: int
) -> None:
    keys = [k for k in keys if not any(o.startswith(k + "/") for o in keys)]  # no file & dir
    truth, model = await _both(keys, versioned=versioned, seed=seed)
    prefix = keys[0][:cut] if seed % 2 else ""
    after = sorted(keys)[seed] if seed < len(keys) and seed == 3 else ""
    want = await _list(truth, Paging.NAIVE, 1000, prefix=prefix, after=after)
    got = await _list(model, Paging.TREE, page_size, prefix=prefix, after=after, workers=workers)
    assert got == want


async def test_iter_versions_is_complete_on_the_model() -> None:
    truth, model = await _both(stem_layout(per=8))
    want = [(v.key, v.version_id) async for v in iter_versions(truth, "b")]
    assert [(v.key, v.version_id) async for v in iter_versions(model, "b", page_size=3)] == want


# --- the audit ---------------------------------------------------------------------------------


async def test_audit_names_the_keys_a_naive_listing_lost() -> None:
    truth, model = await _both(stem_layout(per=20))
    want = {k for k, _ in await _list(truth, Paging.NAIVE, 1000)}
    live = {v.key async for v in iter_versions(truth, "b") if v.is_latest and v.etag}
    options = ListingOptions(37, Paging.NAIVE, clock=CLOCK)
    listing = ParallelListing(model, "b", _row, options=options)
    rows: list[Row] = []
    with pytest.raises(IncompleteListing) as caught:
        await _drain(listing, rows)
    seen = {key for key, _ in rows}
    lost = set(caught.value.keys)
    assert lost and lost == live - seen  # exactly the current keys the listing missed
    assert seen < want
    assert caught.value.exit_code == 1 and "incomplete listing" in caught.value.message
    assert listing.audit is not None and listing.audit.stats.keys == len(live)


async def test_a_seaweedfs_it_did_not_recognise_gets_a_paging_hint() -> None:
    """Behind a proxy that hides the ``Server`` header, SeaweedFS is paged as a key-order
    server and loses keys: the audit stops it, and its hint names --list-paging tree."""
    truth, model = await _both(stem_layout(per=20))

    async def proxied(bucket: str) -> str:
        return "nginx"

    model.server = proxied  # type: ignore[method-assign]
    listing = ParallelListing(model, "b", _row, options=ListingOptions(37, clock=CLOCK))
    with pytest.raises(IncompleteListing) as caught:
        await _drain(listing, [])
    assert listing.paging is Paging.NAIVE and "--list-paging tree" in (caught.value.hint or "")
    # told it is a tree-walking server, the listing pages it so and audits it even when asked
    # not to: complete, every key
    told = ListingOptions(37, Paging.TREE, audit=False, clock=CLOCK)
    listing = ParallelListing(model, "b", _row, options=told)
    rows: list[Row] = []
    await _drain(listing, rows)
    want = {key for key, _ in await _list(truth, Paging.NAIVE, 1000)}  # an AWS store's
    assert listing.audit is not None and {key for key, _ in rows} == want


@pytest.mark.parametrize(
    ("server", "ordered"),
    [("AmazonS3", True), ("MinIO", True), ("MinIO/RELEASE.2024", True), ("MemoryStore", True),
     ("nginx", False), ("", False), ("SeaweedFS 8000GB 4.48", False), ("cloudflare", False)],
)  # fmt: skip
def test_only_servers_known_to_list_in_key_order_split_listobjectsv2(
    server: str, ordered: bool
) -> None:
    assert lists_in_key_order(server) is ordered


async def test_a_past_moment_on_an_unknown_server_needs_the_paging_said() -> None:
    """The audit sees only keys live now: a key deleted since a past moment and lost by the
    paging of a server it cannot vouch for would be missed silently. Refused, unless the
    paging is given; a snapshot's just-ended second is not a past moment."""
    _, model = await _both(stem_layout(per=20))

    async def proxied(bucket: str) -> str:
        return "nginx"

    model.server = proxied  # type: ignore[method-assign]
    past = CLOCK.now() - timedelta(hours=1)
    listing = ParallelListing(model, "b", _row, options=ListingOptions(clock=CLOCK), cut=past)
    with pytest.raises(UsageError, match="past moment") as caught:
        await _drain(listing, [])
    assert "--list-paging" in (caught.value.hint or "")
    told = ListingOptions(paging=Paging.TREE, clock=CLOCK)
    rows: list[Row] = []
    await _drain(ParallelListing(model, "b", _row, options=told, cut=past), rows)
    assert rows  # told how to page, it lists
    recent = CLOCK.now() - timedelta(seconds=1)
    listing = ParallelListing(model, "b", _row, options=ListingOptions(37, clock=CLOCK), cut=recent)
    with pytest.raises(IncompleteListing):  # listed, then stopped by the audit as before
        await _drain(listing, [])


async def test_the_audits_margin_for_races_is_on_the_servers_clock() -> None:
    """This machine's clock ten minutes behind the server's: on it, every key the listing
    lost would look written "as the listing started" and be excused as a race."""
    _, model = await _both(stem_layout(per=20))
    behind = ManualClock(CLOCK.now() - timedelta(minutes=10))
    listing = ParallelListing(
        model, "b", _row, options=ListingOptions(37, Paging.NAIVE, clock=behind)
    )
    with pytest.raises(IncompleteListing):
        await _drain(listing, [])
    model.denied.add(("b", "server_time"))  # no HeadBucket: the listing runs, on this clock
    listing = ParallelListing(
        model, "b", _row, options=ListingOptions(37, Paging.NAIVE, clock=behind)
    )
    await _drain(listing, [])


async def test_audit_runs_on_the_tree_server_even_when_turned_off() -> None:
    truth, model = await _both(stem_layout(per=5))
    for store, runs in ((model, True), (truth, False)):
        before = store.calls.get("list_objects", 0)
        options = ListingOptions(audit=False, clock=CLOCK)
        listing = ParallelListing(store, "b", _row, options=options)
        assert [r async for r in listing.results()]
        assert (listing.audit is not None) is runs
        assert (store.calls.get("list_objects", 0) > before) is runs


async def test_audit_takes_concurrent_writes_for_what_they_are() -> None:
    """Keys written or deleted while the listing runs are not a short listing."""
    _, model = await _both([f"k{i:03d}" for i in range(60)])
    original = model.list_versions_page
    pages = 0

    async def meanwhile(bucket: str, **kw: object) -> object:
        nonlocal pages
        pages += 1
        if pages == 2:  # after the listing passed them: one key new, one deleted
            await model.put("b", "a-new", b"x")
            await model.delete("b", "k001")
        return await original(bucket, **kw)  # type: ignore[arg-type]

    model.list_versions_page = meanwhile  # type: ignore[method-assign]
    options = ListingOptions(page_size=5, clock=CLOCK)
    listing = ParallelListing(model, "b", _row, options=options, workers=1)
    rows = [k async for k, _ in listing.results()]
    assert "a-new" not in rows and "k001" in rows  # listed before the writes: no failure
