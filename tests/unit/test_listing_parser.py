"""The ListObjectVersions parser against an independent ElementTree reading: every field of
every entry and every page marker, on pages written the way SeaweedFS (Go) and AWS write them
and on pages with what the fast scan was not written for (CDATA, comments, namespace
prefixes, attributes, white space, raw carriage returns, numeric character references)."""

from __future__ import annotations

import urllib.parse
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backup_my_bucket.storage.s3 import hooks, parse, parse_objects, parse_versions_xml, xmltext
from backup_my_bucket.storage.s3.xmltext import ListingParseError

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"


# --- the reference: ElementTree, and the model's rules written out again -------------------


def _reference(body: bytes) -> tuple[object, ...]:
    root = ET.fromstring(body)

    def local(el: ET.Element) -> str:
        return el.tag.split("}")[-1]

    def text(parent: ET.Element, name: str) -> str | None:
        found = [c for c in parent if local(c) == name]
        return (found[0].text or "") if found else None

    url = text(root, "EncodingType") == "url"

    def decode(value: str) -> str:
        return urllib.parse.unquote_plus(value) if url else value

    entries = []
    prefixes = []
    for child in root:
        if local(child) == "CommonPrefixes":
            prefixes.append(decode(text(child, "Prefix") or ""))
        if local(child) not in ("Version", "DeleteMarker"):
            continue
        marker = local(child) == "DeleteMarker"
        modified = datetime.fromisoformat(text(child, "LastModified") or "").astimezone(UTC)
        size = 0 if marker else int(text(child, "Size") or 0)
        etag = None if marker else (text(child, "ETag") or "").strip('"') or None
        if not marker and not etag and size == 0:
            etag = EMPTY_MD5
        entries.append((
            decode(text(child, "Key") or ""), text(child, "VersionId") or "null", modified,
            size, etag, text(child, "IsLatest") == "true", marker,
            None if marker else text(child, "StorageClass") or "STANDARD",
        ))  # fmt: skip
    next_key = text(root, "NextKeyMarker")
    return (
        entries,
        prefixes,
        text(root, "IsTruncated") == "true",
        decode(next_key) if next_key is not None else None,
        text(root, "NextVersionIdMarker"),
    )


def _ours(body: bytes) -> tuple[object, ...]:
    page = parse_versions_xml(body)
    entries = [
        (e.key, e.version_id, e.last_modified, e.size, e.etag, e.is_latest,
         e.is_delete_marker, e.storage_class)
        for e in page.entries
    ]  # fmt: skip
    return (
        entries,
        page.common_prefixes,
        page.is_truncated,
        page.next_key_marker,
        page.next_version_id_marker,
    )


# --- writing pages -------------------------------------------------------------------------


def _go(text: str) -> str:
    """Go's encoding/xml (SeaweedFS)."""
    table = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&#34;", "'": "&#39;",
             "\t": "&#x9;", "\n": "&#xA;", "\r": "&#xD;"}  # fmt: skip
    return "".join(table.get(c, c) for c in text)


def _aws(text: str) -> str:
    table = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\r": "&#13;"}
    return "".join(table.get(c, c) for c in text)


def _numeric(text: str) -> str:
    """Every character outside printable ASCII as a character reference (&#x80; is U+0080)."""
    return "".join(
        f"&#x{ord(c):X};" if not (32 <= ord(c) < 127) or c in "&<>\"'" else c for c in text
    )


def _raw(text: str) -> str:
    """Only what must be escaped: carriage returns stay raw (XML reads them as line feeds)."""
    return text.replace("&", "&amp;").replace("<", "&lt;")


def _cdata(text: str) -> str:
    if "]]>" in text or "\r" in text:
        return _go(text)
    return f"<![CDATA[{text}]]>"


ESCAPES = {"go": _go, "aws": _aws, "numeric": _numeric, "raw": _raw, "cdata": _cdata}
ODD = "ab/ +%&<>\"'\t\n\r\u0080\u0085\u00e9\u20ac\u2028\U0001f600=~."
_TEXT = st.text(alphabet=st.sampled_from(list(ODD)), min_size=1, max_size=10)
_VERSION_ID = st.text(alphabet=st.sampled_from(list("aZ09+/=&<._-")), min_size=0, max_size=12)
_ENTRY = st.tuples(
    _TEXT, _VERSION_ID, st.integers(0, 10**12), st.booleans(), st.booleans(),
    st.sampled_from(["STANDARD", "GLACIER", ""]), st.booleans(), st.integers(0, 59),
)  # fmt: skip


def _page(
    entries: list[tuple[str, str, int, bool, bool, str, bool, int]],
    prefixes: list[str],
    markers: tuple[bool, str | None, str | None],
    layout: str,
    escape: str,
    encoded: bool,
    oddity: str,
) -> bytes:
    esc = ESCAPES[escape]

    def key(value: str) -> str:
        return esc(urllib.parse.quote_plus(value, safe="/") if encoded else value)

    p = "s3:" if oddity == "prefix" else ""

    def el(name: str, value: str, attr: str = "") -> str:
        return f"<{p}{name}{attr}>{value}</{p}{name}>"

    sep = "\n  " if layout == "spaced" else ""
    owner = el("Owner", el("ID", "o") + el("DisplayName", "n"))
    parts = []
    for i, (k, vid, size, marker, latest, sclass, has_etag, sec) in enumerate(entries):
        head = [
            el("Key", key(k), ' xml:space="preserve"' if oddity == "attribute" and i == 0 else ""),
            el("VersionId", esc(vid)),
            el("IsLatest", str(latest).lower()),
        ]
        when = el("LastModified", f"2026-11-26T10:00:{sec:02d}.{i % 1000:03d}Z")
        etag = el("ETag", esc(f'"e{i}"')) if has_etag else ""
        fields = [el("Size", str(size)), el("StorageClass", sclass) if sclass else ""]
        if oddity == "comment" and i == 0:
            head.insert(1, "<!-- a comment -->")
        if marker:
            body = [*head, owner, when] if layout == "seaweedfs" else [*head, when, owner]
            parts.append(el("DeleteMarker", sep.join(body)))
        elif layout == "seaweedfs":
            parts.append(el("Version", sep.join([*head, etag, fields[0], owner, fields[1], when])))
        else:
            parts.append(el("Version", sep.join([*head, when, etag, fields[0], fields[1], owner])))
    truncated, next_key, next_vid = markers
    top = [el("Name", "b"), el("IsTruncated", str(truncated).lower())]
    if encoded:
        top.append(el("EncodingType", "url"))
    if next_key is not None:
        top.append(el("NextKeyMarker", key(next_key)))
    if next_vid is not None:
        top.append(el("NextVersionIdMarker", esc(next_vid)))
    tail = [el("CommonPrefixes", el("Prefix", key(prefix))) for prefix in prefixes]
    xmlns = f'xmlns:s3="{NS}"' if oddity == "prefix" else f'xmlns="{NS}"'
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<{p}ListVersionsResult {xmlns}>'
        + sep.join(top + parts + tail)
        + f"</{p}ListVersionsResult>"
    ).encode()


@settings(max_examples=400, deadline=None)
@given(
    st.lists(_ENTRY, max_size=8),
    st.lists(_TEXT, max_size=3),
    st.tuples(st.booleans(), st.none() | _TEXT, st.none() | _VERSION_ID),
    st.sampled_from(["seaweedfs", "aws", "spaced"]),
    st.sampled_from(sorted(ESCAPES)),
    st.booleans(),
    st.sampled_from(["none", "none", "comment", "prefix", "attribute"]),
)
def test_parser_agrees_with_elementtree(
    entries: list[tuple[str, str, int, bool, bool, str, bool, int]],
    prefixes: list[str],
    markers: tuple[bool, str | None, str | None],
    layout: str,
    escape: str,
    encoded: bool,
    oddity: str,
) -> None:
    body = _page(entries, prefixes, markers, layout, escape, encoded, oddity)
    assert _ours(body) == _reference(body)


@settings(max_examples=100, deadline=None)
@given(st.lists(_ENTRY, min_size=1, max_size=8), st.sampled_from(["seaweedfs", "aws"]))
def test_plain_pages_of_known_servers_take_the_whole_entry_scan(
    entries: list[tuple[str, str, int, bool, bool, str, bool, int]], layout: str
) -> None:
    """The fast scan really serves SeaweedFS's and AWS's pages (speed), with equal results."""
    entries = [
        (k, v, size, m, latest, "STANDARD", True, sec)
        for k, v, size, m, latest, _, _, sec in entries
    ]
    body = _page(entries, [], (False, None, None), layout, "go", False, "none")
    root = parse._ROOT.match(body)
    assert root is not None
    scanned = parse._fast_entries(body, xmltext.xml_text, root.end())
    assert scanned is not None
    assert scanned == parse._tree_versions(body).entries


def test_character_references_follow_xml_not_html() -> None:
    body = _page([("k", "v", 1, False, True, "", True, 0)], [], (False, None, None),
                 "seaweedfs", "go", False, "none")  # fmt: skip
    body = body.replace(b"<Key>k</Key>", b"<Key>&#x80;&#128;&#x85;</Key>")
    assert parse_versions_xml(body).entries[0].key == "\u0080\u0080\u0085"  # not "€€…"


def test_escaped_version_ids_are_unescaped() -> None:
    body = _page([("k", "a+b/c&d", 1, False, True, "", True, 0)], [], (True, "k", "x&y"),
                 "seaweedfs", "go", False, "none")  # fmt: skip
    page = parse_versions_xml(body)
    assert page.entries[0].version_id == "a+b/c&d" and page.next_version_id_marker == "x&y"


@pytest.mark.parametrize(
    "body",
    [
        b"<ListVersionsResult><Version><VersionId>v</VersionId></Version></ListVersionsResult>",
        b"<ListVersionsResult><Version><Key>k</Key></Version></ListVersionsResult>",  # no date
        b"<ListVersionsResult><Version><Key>&nbsp;</Key></Version></ListVersionsResult>",
        b"<ListVersionsResult><Version><Key>k</Key>",
        b"<Error><Code>InternalError</Code></Error>",
        b"\xff\xfe not xml",
    ],
)
def test_a_broken_page_is_a_parse_error_and_the_hook_retries_it(body: bytes) -> None:
    with pytest.raises(ListingParseError):
        parse_versions_xml(body)
    hook = hooks._make_listing_hook(parse_versions_xml, b"ListVersionsResult")
    response: dict[str, object] = {"status_code": 200, "body": body + b"</ListVersionsResult>"}
    custom: dict[str, object] = {}
    hook(response_dict=response, customized_response_dict=custom)  # never raises
    assert response["status_code"] == 500 and not custom


def test_objects_parser_errors_and_documents_without_namespace() -> None:
    body = (
        b"<ListBucketResult><IsTruncated>true</IsTruncated>"
        b"<NextContinuationToken>t&amp;1</NextContinuationToken>"
        b"<Contents><Key>a&#x80;</Key><LastModified>2026-11-26T10:00:00Z</LastModified>"
        b"<ETag>&quot;e&quot;</ETag><Size>3</Size></Contents></ListBucketResult>"
    )
    page = parse_objects.parse_objects_xml(body)
    assert [o.key for o in page.objects] == ["a\u0080"] and page.objects[0].etag == "e"
    assert page.is_truncated and page.next_token == "t&1"
    with pytest.raises(ListingParseError):
        parse_objects.parse_objects_xml(body.replace(b"<Key>a&#x80;</Key>", b""))
    with pytest.raises(ListingParseError):
        parse_objects.parse_objects_xml(b"<ListBucketResult>")


# --- ListObjectsV2 (the listing audit's pages) ------------------------------------------------


def _objects_page(
    objects: list[tuple[str, int, int, bool]],
    layout: str,
    escape: str,
    encoded: bool,
    key_count: int | None = None,  # S3 and SeaweedFS state it, after the entries
) -> bytes:
    esc = ESCAPES[escape]
    sep = "\n  " if layout == "spaced" else ""
    owner = "<Owner><ID>o</ID><DisplayName>n</DisplayName></Owner>"
    parts = []
    for i, (k, size, sec, with_owner) in enumerate(objects):
        key = esc(urllib.parse.quote_plus(k, safe="/") if encoded else k)
        fields = {
            "Key": f"<Key>{key}</Key>",
            "LastModified": f"<LastModified>2026-11-26T10:00:{sec:02d}Z</LastModified>",
            "ETag": "<ETag>" + esc('"e' + str(i) + '-2"') + "</ETag>",
            "Size": f"<Size>{size}</Size>",
            "Owner": owner if with_owner else "",
            "StorageClass": "<StorageClass>STANDARD</StorageClass>",
        }
        order = (
            ["Key", "ETag", "Size", "Owner", "StorageClass", "LastModified"]
            if layout == "seaweedfs"
            else ["Key", "LastModified", "ETag", "Size", "Owner", "StorageClass"]
        )
        parts.append("<Contents>" + sep.join(fields[f] for f in order) + "</Contents>")
    top = ["<Name>b</Name>", "<IsTruncated>true</IsTruncated>",
           "<NextContinuationToken>t&amp;1</NextContinuationToken>"]  # fmt: skip
    if encoded:
        top.append("<EncodingType>url</EncodingType>")
    if key_count is not None:
        top.append(f"<KeyCount>{key_count}</KeyCount>")
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="{NS}">'
        + sep.join(top + parts)
        + "</ListBucketResult>"
    ).encode()


_OBJECT = st.tuples(_TEXT, st.integers(0, 10**12), st.integers(0, 59), st.booleans())


@settings(max_examples=200, deadline=None)
@given(
    st.lists(_OBJECT, max_size=8),
    st.sampled_from(["seaweedfs", "aws", "spaced"]),
    st.sampled_from(sorted(ESCAPES)),
    st.booleans(),
    st.booleans(),
)
def test_objects_parser_agrees_with_elementtree(
    objects: list[tuple[str, int, int, bool]], layout: str, escape: str, encoded: bool,
    counted: bool,
) -> None:  # fmt: skip
    """ListObjectsV2 pages: the one-expression scan takes SeaweedFS's and AWS's plain pages and
    reads them as ElementTree does; anything else goes to ElementTree. The audit's first pass
    reads them for their keys alone: the same keys, truncation and token."""
    body = _objects_page(objects, layout, escape, encoded, len(objects) if counted else None)
    page = parse_objects.parse_objects_xml(body)
    assert page == parse_objects._tree_objects(body)
    if escape != "raw":  # (a raw carriage return is read as a line feed, by XML's rules)
        assert [o.key for o in page.objects] == [k for k, *_ in objects]
    assert (page.is_truncated, page.next_token) == (True, "t&1")
    keys = parse_objects.parse_keys_xml(body)
    assert (keys.keys, keys.is_truncated, keys.next_token) == (
        [o.key for o in page.objects], True, "t&1",
    )  # fmt: skip
    if layout != "spaced" and escape in ("go", "aws"):
        assert parse_objects._scan_keys(body) == keys  # the fast scans served them
        if objects:
            assert parse_objects._scan_objects(body) == page


_PLAIN_KEYS = (
    '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="' + NS + '">'
    "<IsTruncated>false</IsTruncated>{body}<KeyCount>{count}</KeyCount></ListBucketResult>"
)
_STAMP = "<LastModified>2026-11-26T10:00:00Z</LastModified>"
_ENTRY = "<Contents><Key>{}</Key>" + _STAMP + "</Contents>"


@pytest.mark.parametrize(
    ("body", "count"),
    [
        # an entry inside a comment (ElementTree skips it), whatever count the page states
        (_ENTRY.format("a") + "<!-- " + _ENTRY.format("ghost") + " -->", 1),
        (_ENTRY.format("a") + "<!-- " + _ENTRY.format("ghost") + " -->", 2),
        # entries under a namespace prefix: no <Contents> for the scan to find
        ('<s3:Contents xmlns:s3="' + NS + '"><s3:Key>a</s3:Key>' + _STAMP + "</s3:Contents>", 1),
        ('<s3:Contents xmlns:s3="' + NS + '"><s3:Key>a</s3:Key>' + _STAMP + "</s3:Contents>", 0),
        # a key in a CDATA section, and one with an attribute
        ("<Contents><Key><![CDATA[a<b]]></Key>" + _STAMP + "</Contents>", 1),
        ('<Contents><Key xml:space="preserve">a</Key>' + _STAMP + "</Contents>", 1),
        # a key that is not the entry's first field
        ("<Contents>" + _STAMP + "<Key>a</Key></Contents>", 1),
    ],
)
def test_keys_parser_never_scans_a_page_that_is_not_plain(body: str, count: int) -> None:
    """A key the scan would miss (or one it would read from a comment) would make the audit's
    count wrong, and a missed key hides a lost one: such pages go to ElementTree."""
    page = _PLAIN_KEYS.format(body=body, count=count).encode()
    assert parse_objects.parse_keys_xml(page).keys == [
        o.key for o in parse_objects._tree_objects(page).objects
    ]
    assert parse_objects.parse_keys_xml(page).keys != []


@pytest.mark.parametrize(
    ("raw", "etag"),
    [
        (b"&#34;0123456789abcdef&#34;", "0123456789abcdef"),  # Go's escape (SeaweedFS)
        (b"&quot;0123456789abcdef-2&quot;", "0123456789abcdef-2"),  # AWS's
        (b'"abc"', "abc"),
        (b"abc", "abc"),  # unquoted
        (b"&#34;a&amp;b&#34;", "a&b"),  # an entity inside: the general path
        (b"&#34;abc&quot;", "abc"),  # mismatched quote forms: unescaped, then stripped
        (b"&#34;", ""),
        (b"", ""),
        (b'""', ""),
    ],
)
def test_etag_text_takes_off_one_pair_of_quotes(raw: bytes, etag: str) -> None:
    assert xmltext.etag_text(raw) == etag
