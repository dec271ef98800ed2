from datetime import UTC, datetime, timedelta, timezone

import pytest

from backup_my_bucket.errors import ExitCode, UsageError
from backup_my_bucket.model import S3Url
from backup_my_bucket.units import (
    format_bytes,
    format_duration,
    format_time,
    human_time,
    parse_duration,
    parse_size,
    parse_time,
    plural,
)

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-26T09:00:00Z", datetime(2026, 11, 26, 9, 0, tzinfo=UTC)),
        ("2026-11-26T10:30:00+01:00", datetime(2026, 11, 26, 9, 30, tzinfo=UTC)),
        ("2h", NOW - timedelta(hours=2)),
        ("3d ago", NOW - timedelta(days=3)),
        ("1d12h", NOW - timedelta(hours=36)),
    ],
)
def test_parse_time(text: str, expected: datetime) -> None:
    assert parse_time(text, NOW) == expected


@pytest.mark.parametrize("text", ["2026-11-26T09:00:00", "yesterday", "", "2h30", "-1d"])
def test_parse_time_refuses_ambiguous_or_malformed(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_time(text, NOW)
    assert info.value.hint and info.value.exit_code == ExitCode.USAGE


def test_format_time_round_trips() -> None:
    assert format_time(NOW) == "2026-11-26T10:00:00Z"
    assert parse_time(format_time(NOW), NOW) == NOW
    odd = NOW.replace(microsecond=1500)
    assert format_time(odd) == "2026-11-26T10:00:00.001500Z"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("8MiB", 8 * 2**20), ("5GB", 5 * 10**9), ("1.5KiB", 1536), ("42", 42), (7, 7)],
)
def test_parse_size(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["8XB", "many", "-1", ""])
def test_parse_size_refuses_garbage(text: str) -> None:
    with pytest.raises(UsageError):
        parse_size(text)


def test_parse_duration() -> None:
    assert parse_duration("90m") == timedelta(minutes=90)
    assert parse_duration("1w") == timedelta(days=7)
    with pytest.raises(UsageError):
        parse_duration("7 days")


def test_s3_url() -> None:
    assert S3Url.parse("s3://bucket") == S3Url("bucket", "")
    assert S3Url.parse("s3://bucket/a//b/") == S3Url("bucket", "a//b/")
    assert str(S3Url("b", "p/")) == "s3://b/p/"
    for bad in ["bucket", "s3://", "https://x/y", "s3:///key", "s3://Bad_Bucket!/k", "s3://a b"]:
        with pytest.raises(UsageError):
            S3Url.parse(bad)


@pytest.mark.parametrize(
    ("count", "noun", "nouns", "expected"),
    [
        (1, "object", None, "1 object"),
        (0, "object", None, "0 objects"),
        (2, "day", None, "2 days"),
        (1234, "key", None, "1,234 keys"),
        (1, "copy", "copies", "1 copy"),
        (3, "copy", "copies", "3 copies"),
    ],
)
def test_plural(count: int, noun: str, nouns: str | None, expected: str) -> None:
    assert plural(count, noun, nouns) == expected


def test_human_time_is_utc_with_the_zone_and_reads_back() -> None:
    paris = datetime(2026, 11, 26, 11, 0, 0, 123456, tzinfo=timezone(timedelta(hours=1)))
    assert human_time(paris) == "2026-11-26 10:00:00 UTC"
    assert parse_time(human_time(NOW), NOW) == NOW  # what people read, --at accepts


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0, "0s"), (45.4, "45s"), (185, "3m05s"), (7380, "2h03m"), (4 * 86400 + 7200, "4d02h")],
)
def test_format_duration(seconds: float, expected: str) -> None:
    assert format_duration(seconds) == expected


def test_format_bytes_keeps_the_exact_count_when_it_rounds() -> None:
    assert format_bytes(31) == "31 B"
    assert format_bytes(252972601) == "241.3 MiB (252,972,601 bytes)"
