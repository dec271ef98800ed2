"""S3's timestamps and listing bodies, parsed without botocore's parser.

The listing parsers run inside botocore's ``before-parse`` event (:mod:`.hooks`) and in
the fast path (:mod:`.fastpath`).
"""

from __future__ import annotations

import email.utils
import functools
import re
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from ...model import ObjectPage, ObjectSummary, ObjectVersion, VersionPage

T = TypeVar("T")


class ListingParseError(ValueError):
    """A listing body that is not a well-formed listing: the request is retried as a bad page."""


class _Unsupported(Exception):
    """Something the fast scan was not written for: the page goes to ElementTree instead."""


# --- timestamps ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8192)  # a page's entries share few distinct seconds
def parse_timestamp(value: str) -> datetime:
    """Parse S3's ISO 8601 (listings) and RFC 1123 (headers) timestamps to aware UTC.

    About 10x faster than botocore's dateutil-based default; anything unusual falls back to it.
    """
    try:
        if value[-1:] == "Z":
            return datetime.fromisoformat(value).astimezone(UTC)
        if value[-4:] == " GMT":
            return email.utils.parsedate_to_datetime(value).astimezone(UTC)
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is not None:
            return parsed.astimezone(UTC)
    except (ValueError, TypeError, IndexError):
        pass
    from botocore.utils import parse_timestamp as botocore_parse_timestamp  # rarely needed

    fallback: datetime = botocore_parse_timestamp(value)
    return fallback.astimezone(UTC)


# --- the listing parsers (run inside botocore's before-parse event and in the fast path) ---


def _local(tag: str) -> str:
    """An element's name without its namespace."""
    return tag.rpartition("}")[2]


def _tree(body: bytes, root_name: str) -> ET.Element:
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise ListingParseError(f"not well-formed XML: {exc}") from exc
    if _local(root.tag) != root_name:
        raise ListingParseError(f"a <{_local(root.tag)}> document, not <{root_name}>")
    return root


def _child_text(parent: ET.Element, name: str) -> str | None:
    for child in parent:
        if _local(child.tag) == name:
            return child.text or ""
    return None


# ListObjectVersions is the hot path of every engine. One regular expression picks the start
# of each entry and the text of each field it needs, in document order, in a single C-speed
# scan (`[^<]*` never backtracks); a short loop assembles the entries. Only values holding an
# entity or a carriage return are decoded further. The scan only runs on a page made of plain
# elements (:func:`_simple`); anything else (CDATA, comments, namespace prefixes, attributes,
# a DOCTYPE, a missing field, an entry count that does not add up, an entity XML does not
# define) sends the page to ElementTree. tests/unit/test_s3_parsing.py checks both against an
# independent ElementTree reading.
_TOKEN = re.compile(
    rb"<(Version|DeleteMarker|Key|VersionId|IsLatest|LastModified|ETag|Size|StorageClass)>([^<]*)"
)
_PREFIX = re.compile(rb"<CommonPrefixes>\s*<Prefix>([^<]*)</Prefix>", re.S)
_ROOT = re.compile(rb'\s*(?:<\?xml [^<>]*\?>)?\s*<ListVersionsResult(?:\s+xmlns="[^"<>]*")?\s*>')
_ODD = re.compile(rb"<(?![A-Za-z][A-Za-z0-9]*>|/[A-Za-z][A-Za-z0-9]*>)")


def _raw_top(name: bytes, body: bytes) -> bytes | None:
    match = re.search(b"<" + name + rb">([^<]*)</" + name + b">", body)
    return None if match is None else match.group(1)


def _top(name: bytes, body: bytes) -> str | None:
    raw = _raw_top(name, body)
    return None if raw is None else _xml_text(raw)


_REF = re.compile(r"&(?:#x([0-9a-fA-F]{1,6});|#([0-9]{1,7});|(amp|lt|gt|quot|apos);|)")
_NAMED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}


def _reference(match: re.Match[str]) -> str:
    hex_code, dec_code, name = match.groups()
    if name:
        return _NAMED[name]
    if hex_code is None and dec_code is None:
        raise _Unsupported("an entity XML does not define, or a bare &")
    code = int(hex_code, 16) if hex_code is not None else int(dec_code)
    if not (
        code in (0x9, 0xA, 0xD)
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    ):
        raise _Unsupported(f"character reference to U+{code:04X}, not an XML character")
    return chr(code)  # XML's rule: the code point itself (HTML5 would map &#x80; to €)


def _xml_text(raw: bytes) -> str:
    """Character data as XML reads it: line ends normalised, the five entities and
    character references replaced."""
    text = raw.decode()
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _REF.sub(_reference, text) if "&" in text else text


def _value(raw: bytes) -> str:
    return _xml_text(raw) if b"&" in raw or b"\r" in raw else raw.decode()


_QUOTES = (b"&#34;", b"&quot;", b'"')  # Go servers escape quotes as &#34;, AWS as &quot;


def _etag(raw: bytes) -> str:
    for quote in _QUOTES:  # S3 quotes every ETag: skip the general unescape
        n = len(quote)
        if raw[:n] == quote and raw[-n:] == quote and len(raw) >= 2 * n:
            raw = raw[n:-n]
            break
    if b"&" in raw or b'"' in raw or b"\r" in raw:
        return _xml_text(raw).strip('"')
    return raw.decode()


def _url_text(raw: bytes) -> str:
    text = _xml_text(raw)
    return urllib.parse.unquote_plus(text) if "%" in text or "+" in text else text


_CLASSES: dict[bytes, str] = {}  # storage class names, decoded once


def _storage_class(raw: bytes | None) -> str:
    if not raw:
        return "STANDARD"
    name = _CLASSES.get(raw)
    if name is None:
        name = _CLASSES[raw] = _xml_text(raw)
    return name


EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"


def _listed_etag(etag: str | None, size: int) -> str | None:
    # SeaweedFS lists empty objects without their (fixed) MD5
    return EMPTY_MD5 if not etag and size == 0 else etag


def _entry(
    fields: dict[bytes, bytes], marker: bool, key_text: Callable[[bytes], str]
) -> ObjectVersion:
    get = fields.get
    if marker:
        etag, size, storage_class = None, 0, None
    else:
        raw_etag, raw_size = get(b"ETag"), get(b"Size")
        size = int(raw_size) if raw_size else 0
        etag = _listed_etag(_etag(raw_etag) if raw_etag else None, size)
        storage_class = _storage_class(get(b"StorageClass"))
    return ObjectVersion(
        key_text(fields[b"Key"]),
        _value(get(b"VersionId", b"")) or "null",
        parse_timestamp(_value(fields[b"LastModified"])),
        size,
        etag,
        get(b"IsLatest") == b"true",
        marker,
        storage_class,
    )


def _general_entries(body: bytes, key_text: Callable[[bytes], str]) -> list[ObjectVersion]:
    entries: list[ObjectVersion] = []
    append = entries.append
    fields: dict[bytes, bytes] | None = None
    marker = False
    for tag, value in _TOKEN.findall(body):
        if tag == b"Version" or tag == b"DeleteMarker":
            if fields is not None:
                append(_entry(fields, marker, key_text))
            fields, marker = {}, tag == b"DeleteMarker"
        elif fields is not None:
            if tag in fields:
                raise _Unsupported(f"<{tag.decode()}> twice in one entry")
            fields[tag] = value
    if fields is not None:
        append(_entry(fields, marker, key_text))
    return entries


# Faster still: one pattern matching a whole entry in a server's exact element order gives
# one tuple per entry. A page is taken this way only if every entry matched (their count
# equals the count of entry tags); any other page (another order, whitespace, extra
# elements) goes through the general scan above, so an unknown server is slower, never wrong.
_VERSION_FIELDS = ("Key", "VersionId", "IsLatest", "ETag", "Size", "StorageClass", "LastModified")
_MARKER_FIELDS = ("Key", "VersionId", "IsLatest", "LastModified")
_OWNER = rb"(?:<Owner>(?:<ID>[^<]*</ID>)?(?:<DisplayName>[^<]*</DisplayName>)?</Owner>)?"


@dataclass(frozen=True)
class _Layout:
    pattern: re.Pattern[bytes]
    version: tuple[int, ...]  # group index of each of _VERSION_FIELDS
    marker: tuple[int, ...]  # group index of each of _MARKER_FIELDS


def _element(field: str) -> tuple[bytes, bool]:
    """The pattern of one element of an entry, and whether it captures its text: "Owner" (a
    nested element, skipped), "?Name" (optional, ignored) or "Name" (captured)."""
    if field == "Owner":
        return _OWNER, False
    if field.startswith("?"):
        name = field[1:].encode()
        return b"(?:<" + name + rb">[^<]*</" + name + b">)*", False
    name = field.encode()
    return b"<" + name + rb">([^<]*)</" + name + b">", True


def _layout(version: Sequence[str], marker: Sequence[str]) -> _Layout:
    """Fields in document order; "Owner" is optional, "?Name" an optional, ignored element."""
    pieces: list[bytes] = []
    groups: dict[tuple[str, str], int] = {}
    for kind, fields in (("Version", version), ("DeleteMarker", marker)):
        piece = f"<{kind}>".encode()
        for field in fields:
            element, captured = _element(field)
            piece += element
            if captured:
                groups[kind, field] = len(groups) + 1  # group 0: the whole entry
        pieces.append(piece + f"</{kind}>".encode())
    return _Layout(
        re.compile(b"(" + b"|".join(pieces) + b")"),
        tuple(groups["Version", f] for f in _VERSION_FIELDS),
        tuple(groups["DeleteMarker", f] for f in _MARKER_FIELDS),
    )


_LAYOUTS = [
    _layout(  # SeaweedFS
        ("Key", "VersionId", "IsLatest", "ETag", "Size", "Owner", "StorageClass", "LastModified"),
        ("Key", "VersionId", "IsLatest", "Owner", "LastModified"),
    ),
    _layout(  # AWS
        ("Key", "VersionId", "IsLatest", "LastModified", "ETag", "?ChecksumAlgorithm",
         "?ChecksumType", "Size", "Owner", "StorageClass", "Owner"),
        ("Key", "VersionId", "IsLatest", "LastModified", "Owner"),
    ),
]  # fmt: skip


_SPECIAL = (b"%", b"+", b"&")  # a key holding none of these is its own text


def _fast_entries(
    body: bytes, key_text: Callable[[bytes], str], start: int
) -> list[ObjectVersion] | None:
    """The page's entries if they are one unbroken run of entries in a known layout, with
    nothing but plain elements before and after them (from ``start``, after the root tag)."""
    versions, markers = body.count(b"<Version>"), body.count(b"<DeleteMarker>")
    for layout in _LAYOUTS:
        rows = layout.pattern.findall(body)
        if len(rows) != versions + markers:
            continue
        first = end = start
        if rows:  # (a search for an absent tag would read the whole page: skipped)
            firsts = [body.find(b"<Version>")] if versions else []
            firsts += [body.find(b"<DeleteMarker>")] if markers else []
            first = min(firsts)
            end = max(
                body.rfind(b"</Version>") + 10 if versions else 0,
                body.rfind(b"</DeleteMarker>") + 15 if markers else 0,
            )
            if end - first != sum([len(row[0]) for row in rows]):
                return None  # something between the entries
        if _ODD.search(body, start, first) or _ODD.search(body, end):
            return None
        ik, iv, il, ie, isz, isc, ilm = layout.version
        mk, mv, ml, mlm = layout.marker
        entries: list[ObjectVersion] = []
        append, classes, text = entries.append, _CLASSES, _xml_text
        pct, plus, amp = _SPECIAL
        for row in rows:
            modified = row[ilm]
            if modified:  # a version (a delete marker's groups are the other ones)
                raw_size, raw_etag = row[isz], row[ie]
                size = int(raw_size) if raw_size else 0
                etag = _etag(raw_etag) if raw_etag else None
                if not etag and size == 0:
                    etag = EMPTY_MD5
                k, v = row[ik], row[iv]
                append(
                    ObjectVersion(
                        key_text(k) if pct in k or plus in k or amp in k else k.decode(),
                        (text(v) if amp in v else v.decode()) or "null",
                        parse_timestamp(modified.decode()),
                        size,
                        etag,
                        row[il] == b"true",
                        False,
                        classes.get(row[isc]) or _storage_class(row[isc]),
                    )
                )
            else:
                k, v = row[mk], row[mv]
                append(
                    ObjectVersion(
                        key_text(k) if pct in k or plus in k or amp in k else k.decode(),
                        (text(v) if amp in v else v.decode()) or "null",
                        parse_timestamp(row[mlm].decode()),
                        0,
                        None,
                        row[ml] == b"true",
                        True,
                        None,
                    )
                )
        return entries
    return None


def _scan_versions(body: bytes) -> VersionPage:
    """The fast reading of a plain page; raises on anything it was not written for."""
    root = _ROOT.match(body)
    if root is None:
        raise _Unsupported("another root element, or one with attributes of its own")
    if b"\r" in body:
        raise _Unsupported("a carriage return (XML's line-end rules)")
    # escaped text can never hold a raw "<", so a tag name found anywhere is that element
    key_text = _url_text if _top(b"EncodingType", body) == "url" else _xml_text
    entries = _fast_entries(body, key_text, root.end())
    if entries is None:
        if _ODD.search(body, root.end()):
            raise _Unsupported("an element that is not plain (CDATA, comment, prefix, attribute)")
        entries = _general_entries(body, key_text)
        if len(entries) != body.count(b"<Version>") + body.count(b"<DeleteMarker>"):
            raise _Unsupported("entries and entry tags do not add up")
    next_key = _raw_top(b"NextKeyMarker", body)
    next_version = _top(b"NextVersionIdMarker", body)
    return VersionPage(
        entries=entries,
        common_prefixes=[key_text(p) for p in _PREFIX.findall(body)],
        is_truncated=_top(b"IsTruncated", body) == "true",
        next_key_marker=key_text(next_key) if next_key is not None else None,
        next_version_id_marker=next_version,
    )


def _tree_listing(
    body: bytes, root_name: str, entry_tags: tuple[str, ...], make: Callable[..., T]
) -> tuple[ET.Element, list[T], list[str], Callable[[str], str]]:
    """ElementTree's reading of a listing: ``make(tag, fields, decode)`` for each entry, the
    common prefixes, and the key decoder (URL decoding when the listing says so)."""
    root = _tree(body, root_name)
    url = _child_text(root, "EncodingType") == "url"

    def decode(text: str) -> str:
        return urllib.parse.unquote_plus(text) if url else text

    entries: list[T] = []
    prefixes: list[str] = []
    try:
        for child in root:
            tag = _local(child.tag)
            if tag == "CommonPrefixes":
                prefixes += [decode(p.text or "") for p in child if _local(p.tag) == "Prefix"]
            elif tag in entry_tags:
                entries.append(make(tag, {_local(c.tag): c.text or "" for c in child}, decode))
    except (KeyError, ValueError, TypeError) as exc:
        raise ListingParseError(f"an entry without a valid {exc}") from exc
    return root, entries, prefixes, decode


def _tree_version(tag: str, fields: dict[str, str], decode: Callable[[str], str]) -> ObjectVersion:
    marker = tag == "DeleteMarker"
    size = 0 if marker else int(fields.get("Size") or 0)
    etag = None if marker else fields.get("ETag", "").strip('"') or None
    return ObjectVersion(
        decode(fields["Key"]),
        fields.get("VersionId") or "null",
        parse_timestamp(fields["LastModified"]),
        size,
        None if marker else _listed_etag(etag, size),
        fields.get("IsLatest") == "true",
        marker,
        None if marker else fields.get("StorageClass") or "STANDARD",
    )


def _tree_versions(body: bytes) -> VersionPage:
    """ElementTree's reading of any page the scan does not take."""
    root, entries, prefixes, decode = _tree_listing(
        body, "ListVersionsResult", ("Version", "DeleteMarker"), _tree_version
    )
    next_key = _child_text(root, "NextKeyMarker")
    return VersionPage(
        entries=entries,
        common_prefixes=prefixes,
        is_truncated=_child_text(root, "IsTruncated") == "true",
        next_key_marker=decode(next_key) if next_key is not None else None,
        next_version_id_marker=_child_text(root, "NextVersionIdMarker"),
    )


def parse_versions_xml(body: bytes) -> VersionPage:
    """Parse a ListObjectVersions body, keeping versions and delete markers interleaved.

    Raises :class:`ListingParseError` for a body that is not a well-formed listing.
    """
    try:
        return _scan_versions(body)
    except (_Unsupported, KeyError, ValueError, TypeError, IndexError):
        return _tree_versions(body)  # (UnicodeDecodeError is a ValueError)


def _tree_object(tag: str, fields: dict[str, str], decode: Callable[[str], str]) -> ObjectSummary:
    return ObjectSummary(
        key=decode(fields["Key"]),
        last_modified=parse_timestamp(fields["LastModified"]),
        size=int(fields.get("Size") or 0),
        etag=fields.get("ETag", "").strip('"'),
        storage_class=fields.get("StorageClass") or "STANDARD",
    )


_OBJECTS_ROOT = re.compile(
    rb'\s*(?:<\?xml [^<>]*\?>)?\s*<ListBucketResult(?:\s+xmlns="[^"<>]*")?\s*>'
)


def _object_layout(fields: Sequence[str]) -> tuple[re.Pattern[bytes], tuple[int, ...]]:
    """A ``Contents`` entry with ``fields`` in document order (as :func:`_layout`): its
    pattern (group 0 the whole entry), and the group of each of Key, LastModified, ETag,
    Size, StorageClass."""
    piece, groups = b"<Contents>", dict[str, int]()
    for field in fields:
        element, captured = _element(field)
        piece += element
        if captured:
            groups[field] = len(groups) + 1
    order = ("Key", "LastModified", "ETag", "Size", "StorageClass")
    return re.compile(b"(" + piece + b"</Contents>)"), tuple(groups[f] for f in order)


_OBJECT_LAYOUTS = [
    _object_layout(("Key", "ETag", "Size", "Owner", "StorageClass", "LastModified")),  # SeaweedFS
    _object_layout(  # AWS
        ("Key", "LastModified", "ETag", "?ChecksumAlgorithm", "?ChecksumType", "Size", "Owner",
         "StorageClass")
    ),
]  # fmt: skip


def _scan_objects(body: bytes) -> ObjectPage:
    """The fast reading of a plain ListObjectsV2 page (the listing audit's): one regular
    expression per page; raises on anything it was not written for, as :func:`_scan_versions`."""
    root = _OBJECTS_ROOT.match(body)
    if root is None or not body.rstrip().endswith(b"</ListBucketResult>"):
        raise _Unsupported("another root element, one with attributes, or a document cut short")
    if b"\r" in body:
        raise _Unsupported("a carriage return (XML's line-end rules)")
    key_text = _url_text if _top(b"EncodingType", body) == "url" else _xml_text
    expected = body.count(b"<Contents>")
    for pattern, (ik, ilm, ie, isz, isc) in _OBJECT_LAYOUTS:
        rows = pattern.findall(body)
        if len(rows) != expected:
            continue
        first = end = root.end()
        if rows:
            first, end = body.find(b"<Contents>"), body.rfind(b"</Contents>") + 11
            if end - first != sum([len(row[0]) for row in rows]):
                raise _Unsupported("something between the entries")
        if _ODD.search(body, root.end(), first) or _ODD.search(body, end):
            raise _Unsupported("an element that is not plain")
        pct, plus, amp = _SPECIAL
        objects = [
            ObjectSummary(
                key_text(k) if pct in (k := row[ik]) or plus in k or amp in k else k.decode(),
                parse_timestamp(row[ilm].decode()),
                int(row[isz]) if row[isz] else 0,
                _etag(row[ie]) if row[ie] else "",
                _CLASSES.get(row[isc]) or _storage_class(row[isc]),
            )
            for row in rows
        ]
        return ObjectPage(
            objects=objects,
            common_prefixes=[key_text(p) for p in _PREFIX.findall(body)],
            is_truncated=_top(b"IsTruncated", body) == "true",
            next_token=_top(b"NextContinuationToken", body),
        )
    raise _Unsupported("entries in an unknown layout")


def _tree_objects(body: bytes) -> ObjectPage:
    root, objects, prefixes, _ = _tree_listing(
        body, "ListBucketResult", ("Contents",), _tree_object
    )
    return ObjectPage(
        objects=objects,
        common_prefixes=prefixes,
        is_truncated=_child_text(root, "IsTruncated") == "true",
        next_token=_child_text(root, "NextContinuationToken"),
    )


def parse_objects_xml(body: bytes) -> ObjectPage:
    """Parse a ListObjectsV2 body (raises :class:`ListingParseError` if it is not one)."""
    try:
        return _scan_objects(body)
    except (_Unsupported, KeyError, ValueError, TypeError, IndexError):
        return _tree_objects(body)
