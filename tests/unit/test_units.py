from datetime import UTC, datetime, timedelta

import pytest

from backup_my_bucket.errors import ExitCode, UsageError
from backup_my_bucket.model import S3Url
from backup_my_bucket.units import format_time, parse_duration, parse_size, parse_time

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
