"""The prefix rule: a prefix is a folder, keys are joined and cut only at its `/`."""

from __future__ import annotations

import pytest

from backup_my_bucket.engine.filters import KeyFilter, refuse_overlap
from backup_my_bucket.errors import UsageError
from backup_my_bucket.model import S3Url, folder, in_folder

NEIGHBOURS = ["p", "p2/x", "p-x", "pa.txt", "p/", "o/p/x", "P/x"]
"""Keys that share the folder p/'s spelling but are not its content (p/ is the folder)."""


@pytest.mark.parametrize(
    ("given", "expected"),
    [("", ""), ("p", "p/"), ("p/", "p/"), ("a//b", "a//b/"), ("/", "/"), (" p ", " p /")],
)
def test_a_prefix_is_a_folder_and_is_otherwise_kept_as_written(given: str, expected: str) -> None:
    assert folder(given) == expected
    assert S3Url("b", given).prefix == expected
    assert S3Url.parse(f"s3://b/{given}").prefix == expected
    assert KeyFilter(given).prefix == expected


@pytest.mark.parametrize("spelling", ["s3://b/p", "s3://b/p/"])
def test_keys_are_joined_and_cut_at_the_folder_boundary(spelling: str) -> None:
    url = S3Url.parse(spelling)
    assert str(url) == "s3://b/p/" and url == S3Url("b", "p")
    assert url.key("css/a.css") == "p/css/a.css"
    assert url.relative("p/css/a.css") == "css/a.css"
    assert url.child("css") == url.child("css/") == S3Url("b", "p/css/")
    for key in NEIGHBOURS:
        assert url.relative(key) is None, key
        assert not in_folder(key, url.prefix), key
    assert S3Url("b").relative("p") == "p"  # the whole bucket: every key is content


@pytest.mark.parametrize("spelling", ["p", "p/"])
def test_a_key_filter_prefix_selects_one_folder(spelling: str) -> None:
    selected = KeyFilter(spelling, exclude=("*.tmp",))
    assert selected("p/a.txt") and selected("p/sub/b.txt")
    assert not selected("p/x.tmp")
    assert not any(selected(key) for key in NEIGHBOURS)
    assert KeyFilter()("p") and not KeyFilter()("")


@pytest.mark.parametrize(
    ("first", "second", "overlap"),
    [
        ("s3://b/p", "s3://b/p/", True),  # the same folder
        ("s3://b/p", "s3://b/p/bk", True),  # one inside the other
        ("s3://b", "s3://b/bk", True),  # the whole bucket holds every folder
        ("s3://b/p", "s3://b/p2", False),  # neighbours
        ("s3://b/p", "s3://b/p-x/", False),
        ("s3://b/p", "s3://c/p", False),  # another bucket
    ],
)
def test_overlapping_locations_are_refused(first: str, second: str, overlap: bool) -> None:
    a, b = S3Url.parse(first), S3Url.parse(second)
    assert a.overlaps(b) is overlap and b.overlaps(a) is overlap
    if overlap:
        with pytest.raises(UsageError, match="overlaps") as caught:
            refuse_overlap(("the source", a), ("the backup", b), hint="elsewhere")
        assert caught.value.hint == "elsewhere"
    else:
        refuse_overlap(("the source", a), ("the backup", b), hint="elsewhere")
