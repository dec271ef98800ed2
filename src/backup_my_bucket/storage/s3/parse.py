"""S3's timestamps, and ListObjectVersions bodies parsed without botocore's parser.

The listing parsers (this one, and :mod:`.parse_objects` for ListObjectsV2) run inside
botocore's ``before-parse`` event (:mod:`.hooks`) and in the fast path (:mod:`.fastpath`);
what they share, the reading of S3's XML, is :mod:`.xmltext`.
"""

from __future__ import annotations

import email.utils
import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from ...model import ObjectVersion, VersionPage
from .xmltext import (
    ODD,
    PREFIX,
    SPECIAL,
    STORAGE_CLASSES,
    Unsupported,
    child_text,
    element_pattern,
    etag_text,
    field_text,
    raw_top,
    storage_class_name,
    top_text,
    tree_listing,
    url_text,
    xml_text,
)

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


# --- ListObjectVersions (run inside botocore's before-parse event and in the fast path) ---

# ListObjectVersions is the hot path of every engine. One regular expression picks the start
# of each entry and the text of each field it needs, in document order, in a single C-speed
# scan (`[^<]*` never backtracks); a short loop assembles the entries. Only values holding an
# entity or a carriage return are decoded further. The scan only runs on a page made of plain
# elements (none that xmltext.ODD finds); anything else (CDATA, comments, namespace prefixes,
# attributes, a DOCTYPE, a missing field, an entry count that does not add up, an entity XML
# does not define) sends the page to ElementTree. tests/unit/test_s3_parsing.py checks both
# against an independent ElementTree reading.
_TOKEN = re.compile(
    rb"<(Version|DeleteMarker|Key|VersionId|IsLatest|LastModified|ETag|Size|StorageClass)>([^<]*)"
)
_ROOT = re.compile(rb'\s*(?:<\?xml [^<>]*\?>)?\s*<ListVersionsResult(?:\s+xmlns="[^"<>]*")?\s*>')


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
        etag = _listed_etag(etag_text(raw_etag) if raw_etag else None, size)
        storage_class = storage_class_name(get(b"StorageClass"))
    return ObjectVersion(
        key_text(fields[b"Key"]),
        field_text(get(b"VersionId", b"")) or "null",
        parse_timestamp(field_text(fields[b"LastModified"])),
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
                raise Unsupported(f"<{tag.decode()}> twice in one entry")
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


@dataclass(frozen=True)
class _Layout:
    pattern: re.Pattern[bytes]
    version: tuple[int, ...]  # group index of each of _VERSION_FIELDS
    marker: tuple[int, ...]  # group index of each of _MARKER_FIELDS


def _layout(version: Sequence[str], marker: Sequence[str]) -> _Layout:
    """Fields in document order; "Owner" is optional, "?Name" an optional, ignored element."""
    pieces: list[bytes] = []
    groups: dict[tuple[str, str], int] = {}
    for kind, fields in (("Version", version), ("DeleteMarker", marker)):
        piece = f"<{kind}>".encode()
        for field in fields:
            element, captured = element_pattern(field)
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
        if ODD.search(body, start, first) or ODD.search(body, end):
            return None
        ik, iv, il, ie, isz, isc, ilm = layout.version
        mk, mv, ml, mlm = layout.marker
        entries: list[ObjectVersion] = []
        append, classes, text = entries.append, STORAGE_CLASSES, xml_text
        pct, plus, amp = SPECIAL
        for row in rows:
            modified = row[ilm]
            if modified:  # a version (a delete marker's groups are the other ones)
                raw_size, raw_etag = row[isz], row[ie]
                size = int(raw_size) if raw_size else 0
                etag = etag_text(raw_etag) if raw_etag else None
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
                        classes.get(row[isc]) or storage_class_name(row[isc]),
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
        raise Unsupported("another root element, or one with attributes of its own")
    if b"\r" in body:
        raise Unsupported("a carriage return (XML's line-end rules)")
    # escaped text can never hold a raw "<", so a tag name found anywhere is that element
    key_text = url_text if top_text(b"EncodingType", body) == "url" else xml_text
    entries = _fast_entries(body, key_text, root.end())
    if entries is None:
        if ODD.search(body, root.end()):
            raise Unsupported("an element that is not plain (CDATA, comment, prefix, attribute)")
        entries = _general_entries(body, key_text)
        if len(entries) != body.count(b"<Version>") + body.count(b"<DeleteMarker>"):
            raise Unsupported("entries and entry tags do not add up")
    next_key = raw_top(b"NextKeyMarker", body)
    next_version = top_text(b"NextVersionIdMarker", body)
    return VersionPage(
        entries=entries,
        common_prefixes=[key_text(p) for p in PREFIX.findall(body)],
        is_truncated=top_text(b"IsTruncated", body) == "true",
        next_key_marker=key_text(next_key) if next_key is not None else None,
        next_version_id_marker=next_version,
    )


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
    root, entries, prefixes, decode = tree_listing(
        body, "ListVersionsResult", ("Version", "DeleteMarker"), _tree_version
    )
    next_key = child_text(root, "NextKeyMarker")
    return VersionPage(
        entries=entries,
        common_prefixes=prefixes,
        is_truncated=child_text(root, "IsTruncated") == "true",
        next_key_marker=decode(next_key) if next_key is not None else None,
        next_version_id_marker=child_text(root, "NextVersionIdMarker"),
    )


def parse_versions_xml(body: bytes) -> VersionPage:
    """Parse a ListObjectVersions body, keeping versions and delete markers interleaved.

    Raises :class:`~.xmltext.ListingParseError` for a body that is not a well-formed listing.
    """
    try:
        return _scan_versions(body)
    except (Unsupported, KeyError, ValueError, TypeError, IndexError):
        return _tree_versions(body)  # (UnicodeDecodeError is a ValueError)
