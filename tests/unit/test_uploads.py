"""ListMultipartUploads' pages as AWS and SeaweedFS answer them (storage/s3/uploads.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from backup_my_bucket.errors import StorageError
from backup_my_bucket.storage.s3.uploads import UNKNOWN_START, all_uploads

WHEN = datetime(2026, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)


def pages(answers: Sequence[Mapping[str, Any]], server: str = "AmazonS3"):  # type: ignore[no-untyped-def]
    asked: list[dict[str, str]] = []

    async def fetch(markers: Mapping[str, str]) -> Mapping[str, Any]:
        asked.append(dict(markers))
        answer = dict(answers[len(asked) - 1])
        answer["ResponseMetadata"] = {"HTTPHeaders": {"server": server}}
        return answer

    return fetch, asked


def up(key: str, upload_id: str, initiated: datetime | None = WHEN) -> dict[str, Any]:
    return {"Key": key, "UploadId": upload_id, **({"Initiated": initiated} if initiated else {})}


async def test_aws_pages_by_key_and_upload_id_and_encodes_keys() -> None:
    fetch, asked = pages([
        {"EncodingType": "url", "IsTruncated": True, "NextKeyMarker": "b%0Ac",
         "NextUploadIdMarker": "u2", "Uploads": [up("a%20b", "u1"), up("b%0Ac", "u2")]},
        {"EncodingType": "url", "IsTruncated": False, "Uploads": [up("%C3%BC", "u3", None)]},
    ])  # fmt: skip
    uploads = await all_uploads(fetch, "b")
    assert [(u.key, u.upload_id) for u in uploads] == [("a b", "u1"), ("b\nc", "u2"), ("ü", "u3")]
    assert asked == [{}, {"KeyMarker": "b\nc", "UploadIdMarker": "u2"}]
    assert uploads[0].initiated == WHEN and uploads[2].initiated == UNKNOWN_START


async def test_seaweedfs_pages_by_upload_id_and_does_not_encode() -> None:
    fetch, asked = pages([
        {"EncodingType": "url", "IsTruncated": True, "NextUploadIdMarker": "u2",
         "Uploads": [up("z%41", "u1"), up("a", "u2")]},
        {"EncodingType": "url", "IsTruncated": False, "Uploads": [up("m", "u3")]},
    ], server="SeaweedFS 8000GB 4.48")  # fmt: skip
    uploads = await all_uploads(fetch, "b")
    assert [u.key for u in uploads] == ["a", "m", "z%41"]  # sorted; raw text kept
    assert asked == [{}, {"UploadIdMarker": "u2"}]


@pytest.mark.parametrize("stuck", [{}, {"NextUploadIdMarker": "u1"}])
async def test_a_truncated_answer_that_does_not_move_on_is_an_error(
    stuck: dict[str, str],
) -> None:
    page = {"IsTruncated": True, "Uploads": [up("a", "u1")], **stuck}
    fetch, _ = pages([page, page, page])
    with pytest.raises(StorageError, match="does not move on"):
        await all_uploads(fetch, "b")
