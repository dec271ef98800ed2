"""ListMultipartUploads' pages as AWS and SeaweedFS answer them (storage/s3/uploads.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from backup_my_bucket.errors import StorageError
from backup_my_bucket.storage.s3.uploads import UNKNOWN_START, Fetch, all_uploads, parse_uploads_xml
from backup_my_bucket.storage.s3.xmltext import ListingParseError

WHEN = datetime(2026, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)


def pages(answers: Sequence[Mapping[str, Any]]) -> tuple[Fetch, list[dict[str, str]]]:
    asked: list[dict[str, str]] = []

    async def fetch(markers: Mapping[str, str]) -> Mapping[str, Any]:
        asked.append(dict(markers))
        return answers[len(asked) - 1]

    return fetch, asked


def up(key: str, upload_id: str, initiated: datetime | None = WHEN) -> dict[str, Any]:
    return {"Key": key, "UploadId": upload_id, **({"Initiated": initiated} if initiated else {})}


async def test_aws_pages_by_key_and_upload_id_and_encodes_keys() -> None:
    """AWS's url encoding writes a space as + and a + as %2B (botocore decodes with
    unquote_plus): a key with a space must come back with its space, and the next key
    marker go back decoded."""
    fetch, asked = pages([
        {"EncodingType": "url", "IsTruncated": True, "NextKeyMarker": "My+Docs/b%0Ac",
         "NextUploadIdMarker": "u2",
         "Uploads": [up("My+Docs/a%2Bb", "u1"), up("My+Docs/b%0Ac", "u2")]},
        {"EncodingType": "url", "IsTruncated": False, "Uploads": [up("%C3%BC", "u3", None)]},
    ])  # fmt: skip
    uploads = await all_uploads(fetch, "b", "AmazonS3")
    assert [(u.key, u.upload_id) for u in uploads] == [
        ("My Docs/a+b", "u1"), ("My Docs/b\nc", "u2"), ("ü", "u3")
    ]  # fmt: skip
    assert asked == [{}, {"KeyMarker": "My Docs/b\nc", "UploadIdMarker": "u2"}]
    assert uploads[0].initiated == WHEN and uploads[2].initiated == UNKNOWN_START


async def test_seaweedfs_pages_by_upload_id_and_does_not_encode() -> None:
    fetch, asked = pages([
        {"EncodingType": "url", "IsTruncated": True, "NextUploadIdMarker": "u2",
         "Uploads": [up("z%41+", "u1"), up("a", "u2")]},
        {"EncodingType": "url", "IsTruncated": False, "Uploads": [up("m", "u3")]},
    ])  # fmt: skip
    uploads = await all_uploads(fetch, "b", "SeaweedFS 8000GB 4.48")
    assert [u.key for u in uploads] == ["a", "m", "z%41+"]  # sorted; raw text kept
    assert asked == [{}, {"UploadIdMarker": "u2"}]


@pytest.mark.parametrize("stuck", [{}, {"NextUploadIdMarker": "u1"}])
async def test_a_truncated_answer_that_does_not_move_on_is_an_error(
    stuck: dict[str, str],
) -> None:
    page = {"IsTruncated": True, "Uploads": [up("a", "u1")], **stuck}
    fetch, _ = pages([page, page, page])
    with pytest.raises(StorageError, match="does not move on"):
        await all_uploads(fetch, "b", "")


def test_the_fast_path_reads_an_answer_as_botocore_does() -> None:
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<ListMultipartUploadsResult '
        b'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>b</Bucket><KeyMarker></KeyMarker>'
        b"<UploadIdMarker></UploadIdMarker><NextKeyMarker>a%26b</NextKeyMarker>"
        b"<NextUploadIdMarker>u2</NextUploadIdMarker><EncodingType>url</EncodingType>"
        b"<MaxUploads>2</MaxUploads><IsTruncated>true</IsTruncated>"
        b"<Upload><Key>a%20b</Key><UploadId>u1</UploadId><Initiated>2026-03-01T12:00:00.250Z"
        b"</Initiated><StorageClass>STANDARD</StorageClass></Upload>"
        b"<Upload><Key>a&amp;b</Key><UploadId>u2</UploadId></Upload>"
        b"</ListMultipartUploadsResult>"
    )
    assert parse_uploads_xml(body) == {
        "NextKeyMarker": "a%26b", "NextUploadIdMarker": "u2", "EncodingType": "url",
        "IsTruncated": True,
        "Uploads": [{"Key": "a%20b", "UploadId": "u1", "Initiated": WHEN},
                    {"Key": "a&b", "UploadId": "u2"}],
    }  # fmt: skip
    with pytest.raises(ListingParseError):
        parse_uploads_xml(b"<ListMultipartUploadsResult><Upload><Key>k</Key></Upload>")
    with pytest.raises(ListingParseError):
        parse_uploads_xml(b"<Error><Code>AccessDenied</Code></Error>")
