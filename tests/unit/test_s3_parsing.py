"""The pieces of S3Store that replace botocore's parsing: pinned here, since they hook
botocore's internals (the before-parse event and the parser factory defaults)."""

from datetime import UTC, datetime

import pytest
from botocore.parsers import ResponseParserError

from backup_my_bucket.errors import (
    AccessDenied,
    BucketNotFound,
    EndpointUnreachable,
    InvalidCredentials,
    ObjectNotFound,
    StorageError,
)
from backup_my_bucket.storage.retry import is_transient
from backup_my_bucket.storage.s3 import (
    hooks,
    parse_timestamp,
    parse_versions_xml,
    translate_error,
)

VERSIONS_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
<Name>b</Name><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>
<NextKeyMarker>k%2B2</NextKeyMarker><NextVersionIdMarker>v3</NextVersionIdMarker>
<DeleteMarker><Key>a+b</Key><VersionId>v1</VersionId><IsLatest>true</IsLatest>
<LastModified>2026-11-26T10:00:00.000Z</LastModified></DeleteMarker>
<Version><Key>a+b</Key><VersionId>v2</VersionId><IsLatest>false</IsLatest>
<LastModified>2026-11-26T10:00:00.000Z</LastModified><ETag>"abc"</ETag><Size>3</Size>
<StorageClass>STANDARD</StorageClass></Version>
<Version><Key>k%2B2%0A</Key><VersionId>v3</VersionId><IsLatest>true</IsLatest>
<LastModified>2026-11-26T09:00:00Z</LastModified><ETag>"def-2"</ETag><Size>10</Size>
<StorageClass>GLACIER</StorageClass></Version>
<CommonPrefixes><Prefix>dir%2F</Prefix></CommonPrefixes>
</ListVersionsResult>"""


def test_versions_keep_interleaved_order_and_decode_keys() -> None:
    page = parse_versions_xml(VERSIONS_XML)
    assert [(e.key, e.version_id, e.is_delete_marker) for e in page.entries] == [
        ("a b", "v1", True),  # `+` is a space in S3's url encoding
        ("a b", "v2", False),
        ("k+2\n", "v3", False),
    ]
    assert page.entries[1].etag == "abc" and page.entries[0].etag is None
    assert page.entries[2].storage_class == "GLACIER"
    assert page.common_prefixes == ["dir/"]
    assert page.is_truncated and page.next_key_marker == "k+2"
    assert page.next_version_id_marker == "v3"


def test_unencoded_listing_is_taken_verbatim() -> None:
    xml = VERSIONS_XML.replace(b"<EncodingType>url</EncodingType>", b"")
    assert parse_versions_xml(xml).entries[0].key == "a+b"


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-26T10:00:00.000Z",
        "2026-11-26T10:00:00Z",
        "Thu, 26 Nov 2026 10:00:00 GMT",
        "2026-11-26T11:00:00+01:00",
    ],
)
def test_timestamps(text: str) -> None:
    assert parse_timestamp(text) == datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def _client_error(code: str) -> Exception:
    import botocore.exceptions

    return botocore.exceptions.ClientError(
        {"Error": {"Code": code, "Message": f"msg with s3cr3t-value-xyz for {code}"}}, "Op"
    )


@pytest.mark.parametrize(
    ("code", "key", "expected"),
    [
        ("NoSuchBucket", None, BucketNotFound),
        ("NoSuchKey", "k", ObjectNotFound),
        ("404", None, BucketNotFound),
        ("AccessDenied", "k", AccessDenied),
        ("SignatureDoesNotMatch", None, InvalidCredentials),
        ("SlowDown", "k", StorageError),
    ],
)
def test_translate_client_errors(code: str, key: str | None, expected: type) -> None:
    error = translate_error(
        _client_error(code),
        "GetObject",
        "bkt",
        key,
        scrub=lambda s: s.replace("s3cr3t-value-xyz", "***"),
    )
    assert type(error) is expected
    assert "s3cr3t-value-xyz" not in str(error) and "s3cr3t-value-xyz" not in (error.hint or "")


def test_translate_connection_errors() -> None:
    import botocore.exceptions

    exc = botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
    assert isinstance(translate_error(exc, "ListBucket", "b"), EndpointUnreachable)
    assert isinstance(
        translate_error(botocore.exceptions.NoCredentialsError(), "ListBucket", "b"),
        InvalidCredentials,
    )


@pytest.mark.parametrize(
    "body",
    [
        VERSIONS_XML[:-40],  # cut short by a dropped connection
        b"<?xml version='1.0'?><Error><Code>InternalError</Code><Message>m</Message></Error>",
    ],
)
def test_listing_hook_turns_an_incomplete_200_into_a_retry(body: bytes) -> None:
    """botocore's own 200-error check is skipped for listings: the hook must do its job."""
    hook = hooks._make_listing_hook(parse_versions_xml, b"ListVersionsResult")
    response: dict[str, object] = {"status_code": 200, "body": body}
    custom: dict[str, object] = {}
    hook(response_dict=response, customized_response_dict=custom)
    assert response["status_code"] == 500 and not custom  # 500: botocore retries it
    complete: dict[str, object] = {"status_code": 200, "body": VERSIONS_XML}
    hook(response_dict=complete, customized_response_dict=custom)
    assert complete["status_code"] == 200 and len(custom[hooks._PAGE].entries) == 3  # type: ignore[attr-defined]


def test_an_answer_botocore_cannot_parse_is_a_storage_error_worth_a_retry() -> None:
    """Seen under load from SeaweedFS (a JSON body where XML was due): an "internal error"
    before, as if it were a bug of ours."""
    error = translate_error(ResponseParserError("Unable to parse response"), "CreateBucket", "b")
    assert type(error) is StorageError and "could not be read" in str(error)
    assert is_transient(error)
    with pytest.raises(ValueError, match="ours"):
        translate_error(ValueError("a bug of ours"), "CreateBucket", "b")
