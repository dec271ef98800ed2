"""The pieces of S3Store that replace botocore's parsing: pinned here, since they hook
botocore's internals (the before-parse event and the parser factory defaults)."""

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backup_my_bucket.errors import (
    AccessDenied,
    BucketNotFound,
    EndpointUnreachable,
    InvalidCredentials,
    ObjectNotFound,
    StorageError,
)
from backup_my_bucket.storage.s3 import (
    hooks,
    parse,
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


def _reference_parse(body: bytes) -> list[tuple[str, str, bool, str | None, int]]:
    """A plain ElementTree parse: the slow, obvious reading of the same XML."""
    import urllib.parse
    import xml.etree.ElementTree as ET

    ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
    root = ET.fromstring(body)
    encoded = root.findtext(f"{ns}EncodingType") == "url"
    out = []
    for child in root:
        tag = child.tag[len(ns) :]
        if tag in ("Version", "DeleteMarker"):
            key = child.findtext(f"{ns}Key") or ""
            out.append(
                (
                    urllib.parse.unquote_plus(key) if encoded else key,
                    child.findtext(f"{ns}VersionId") or "",
                    tag == "DeleteMarker",
                    (child.findtext(f"{ns}ETag") or "").strip('"') or None,
                    int(child.findtext(f"{ns}Size") or 0),
                )
            )
    return out


def test_fast_parser_agrees_with_elementtree() -> None:
    from xml.sax.saxutils import escape

    keys = ["a&b", "<tag>", "new\nline", "cr\rx", 'quote"s', "caf\u00e9 \U0001f600", "plain"]
    parts = []
    for i, key in enumerate(sorted(keys)):
        text = escape(key).replace("\r", "&#xD;").replace('"', "&quot;")
        if i % 3 == 0:
            parts.append(
                f"<DeleteMarker><Key>{text}</Key><VersionId>d{i}</VersionId><IsLatest>true</IsLatest>"
                f"<LastModified>2026-11-26T10:00:0{i}.000Z</LastModified><Owner><ID>o</ID></Owner>"
                "</DeleteMarker>"
            )
        parts.append(
            f"<Version>\n  <Key>{text}</Key>\n  <VersionId>v{i}</VersionId><IsLatest>false</IsLatest>"
            f"<LastModified>2026-11-26T10:00:0{i}Z</LastModified><ETag>&quot;e{i}&quot;</ETag>"
            f"<Size>{i}</Size><Owner><ID>x</ID><DisplayName>y</DisplayName></Owner>"
            "<StorageClass>STANDARD</StorageClass></Version>"
        )
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        "<Name>b</Name><IsTruncated>false</IsTruncated>" + "".join(parts) + "</ListVersionsResult>"
    ).encode()
    page = parse_versions_xml(body)
    got = [(e.key, e.version_id, e.is_delete_marker, e.etag, e.size) for e in page.entries]
    assert got == _reference_parse(body)
    assert not page.is_truncated and page.next_key_marker is None


def _go_escape(text: str) -> str:
    """Escape text the way Go's encoding/xml does (SeaweedFS)."""
    table = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&#34;", "'": "&#39;",
             "\t": "&#x9;", "\n": "&#xA;", "\r": "&#xD;"}  # fmt: skip
    return "".join(table.get(c, c) for c in text)


def _page(entries: list[tuple[str, int, bool]], layout: str, encoded: bool) -> bytes:
    import urllib.parse

    owner = "<Owner><ID>o</ID><DisplayName>n</DisplayName></Owner>"
    parts = []
    for i, (key, size, marker) in enumerate(entries):
        k = _go_escape(urllib.parse.quote_plus(key, safe="/") if encoded else key)
        head = (
            f"<Key>{k}</Key><VersionId>v{i}</VersionId><IsLatest>{str(i == 0).lower()}</IsLatest>"
        )
        when = f"<LastModified>2026-11-26T10:00:{i % 60:02d}Z</LastModified>"
        etag, sz = f"<ETag>&#34;e{i}&#34;</ETag>", f"<Size>{size}</Size>"
        sc = "<StorageClass>STANDARD</StorageClass>"
        if marker:
            body = head + owner + when if layout == "seaweedfs" else head + when + owner
            parts.append(f"<DeleteMarker>{body}</DeleteMarker>")
        elif layout == "seaweedfs":
            parts.append(f"<Version>{head}{etag}{sz}{owner}{sc}{when}</Version>")
        else:
            checksum = "<ChecksumAlgorithm>CRC32</ChecksumAlgorithm>" if i % 2 else ""
            parts.append(f"<Version>{head}{when}{etag}{checksum}{sz}{sc}{owner}</Version>")
    encoding = "<EncodingType>url</EncodingType>" if encoded else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Name>b</Name>{encoding}<IsTruncated>false</IsTruncated>"
        + "".join(parts)
        + "</ListVersionsResult>"
    ).encode()


_ODD_TEXT = st.text(
    alphabet=st.sampled_from(list("ab/ +%&<>\"'\t\n\r\u00e9\U0001f600")), min_size=1, max_size=8
)


@settings(max_examples=300)
@given(
    st.lists(st.tuples(_ODD_TEXT, st.integers(1, 10**12), st.booleans()), max_size=12),
    st.sampled_from(["seaweedfs", "aws"]),
    st.booleans(),
)
def test_whole_entry_fast_path_agrees_with_elementtree(
    entries: list[tuple[str, int, bool]], layout: str, encoded: bool
) -> None:
    body = _page(entries, layout, encoded)
    key_text = parse._url_text if encoded else parse._xml_text
    fast = parse._fast_entries(body, key_text)
    assert fast is not None  # the compact layouts of both servers take the fast path
    assert fast == parse._general_entries(body, key_text)
    got = [(e.key, e.version_id, e.is_delete_marker, e.etag, e.size) for e in fast]
    assert got == _reference_parse(body)


def test_unknown_layout_takes_the_general_path() -> None:
    body = _page([("k", 1, False), ("k", 0, True)], "seaweedfs", False)
    odd = body.replace(b"<Size>", b"<Extra>x</Extra><Size>")
    assert parse._fast_entries(odd, parse._xml_text) is None
    assert parse_versions_xml(odd).entries == parse_versions_xml(body).entries


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
