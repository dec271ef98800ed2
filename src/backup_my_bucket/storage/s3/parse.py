"""S3's timestamps and listing bodies, parsed without botocore's parser.

The listing parsers run inside botocore's ``before-parse`` event (:mod:`.hooks`) and in
the fast path (:mod:`.fastpath`).
"""

from __future__ import annotations

import email.utils
import functools
import html
import re
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from botocore.utils import parse_timestamp as _botocore_parse_timestamp

from ...model import ObjectPage, ObjectSummary, ObjectVersion, VersionPage

_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


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
    fallback: datetime = _botocore_parse_timestamp(value)
    return fallback.astimezone(UTC)


# --- the listing parser (runs inside botocore's before-parse event) -------------------------


def _text(el: ET.Element | None) -> str:
    return (el.text or "") if el is not None else ""


def _decoder(root: ET.Element) -> Callable[[str], str]:
    if _text(root.find(f"{_NS}EncodingType")) == "url":
        return urllib.parse.unquote_plus
    return str


# ListObjectVersions is the hot path of every engine. One regular expression picks the start
# of each entry and the text of each field it needs, in document order, in a single C-speed
# scan (`[^<]*` never backtracks); a short loop assembles the entries. Only values holding an
# entity are unescaped. tests/unit/test_s3_parsing.py checks it against ElementTree.
_TOKEN = re.compile(
    rb"<(Version|DeleteMarker|Key|VersionId|IsLatest|LastModified|ETag|Size|StorageClass)>([^<]*)"
)
_PREFIX = re.compile(rb"<CommonPrefixes>\s*<Prefix>([^<]*)</Prefix>", re.S)


def _raw_top(name: bytes, body: bytes) -> bytes | None:
    match = re.search(b"<" + name + rb">([^<]*)</" + name + b">", body)
    return None if match is None else match.group(1)


def _top(name: bytes, body: bytes) -> str | None:
    raw = _raw_top(name, body)
    return None if raw is None else _xml_text(raw)


def _xml_text(raw: bytes) -> str:
    text = raw.decode()
    return html.unescape(text) if "&" in text else text


_QUOTES = (b"&#34;", b"&quot;", b'"')  # Go servers escape quotes as &#34;, AWS as &quot;


def _etag(raw: bytes) -> str:
    for quote in _QUOTES:  # S3 quotes every ETag: skip the general unescape
        n = len(quote)
        if raw[:n] == quote and raw[-n:] == quote and len(raw) >= 2 * n:
            raw = raw[n:-n]
            break
    if b"&" in raw or b'"' in raw:
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


def _entry(
    fields: dict[bytes, bytes], marker: bool, key_text: Callable[[bytes], str]
) -> ObjectVersion:
    get = fields.get
    if marker:
        etag, size, storage_class = None, 0, None
    else:
        raw_etag, raw_size = get(b"ETag"), get(b"Size")
        size = int(raw_size) if raw_size else 0
        etag = _etag(raw_etag) if raw_etag else None
        if not etag and size == 0:
            etag = EMPTY_MD5  # SeaweedFS lists empty objects without their (fixed) MD5
        storage_class = _storage_class(get(b"StorageClass"))
    return ObjectVersion(
        key_text(fields[b"Key"]),
        get(b"VersionId", b"").decode() or "null",
        parse_timestamp(fields[b"LastModified"].decode()),
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


def _layout(version: Sequence[str], marker: Sequence[str]) -> _Layout:
    """Fields in document order; "Owner" is optional, "?Name" an optional, ignored element."""
    pieces: list[bytes] = []
    groups: dict[tuple[str, str], int] = {}
    for kind, fields in (("Version", version), ("DeleteMarker", marker)):
        piece = f"<{kind}>".encode()
        for field in fields:
            if field == "Owner":
                piece += _OWNER
            elif field.startswith("?"):
                name = field[1:].encode()
                piece += b"(?:<" + name + rb">[^<]*</" + name + b">)*"
            else:
                name = field.encode()
                piece += b"<" + name + rb">([^<]*)</" + name + b">"
                groups[kind, field] = len(groups)
        pieces.append(piece + f"</{kind}>".encode())
    return _Layout(
        re.compile(b"|".join(pieces)),
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


def _fast_entries(body: bytes, key_text: Callable[[bytes], str]) -> list[ObjectVersion] | None:
    expected = body.count(b"<Version>") + body.count(b"<DeleteMarker>")
    for layout in _LAYOUTS:
        rows = layout.pattern.findall(body)
        if len(rows) != expected:
            continue
        ik, iv, il, ie, isz, isc, ilm = layout.version
        mk, mv, ml, mlm = layout.marker
        entries: list[ObjectVersion] = []
        append, classes = entries.append, _CLASSES
        for row in rows:
            modified = row[ilm]
            if modified:  # a version (a delete marker's groups are the other ones)
                raw_size, raw_etag = row[isz], row[ie]
                size = int(raw_size) if raw_size else 0
                etag = _etag(raw_etag) if raw_etag else None
                if not etag and size == 0:
                    etag = EMPTY_MD5
                append(
                    ObjectVersion(
                        key_text(k)
                        if b"%" in (k := row[ik]) or b"+" in k or b"&" in k
                        else k.decode(),
                        row[iv].decode() or "null",
                        parse_timestamp(modified.decode()),
                        size,
                        etag,
                        row[il] == b"true",
                        False,
                        classes.get(row[isc]) or _storage_class(row[isc]),
                    )
                )
            else:
                append(
                    ObjectVersion(
                        key_text(k)
                        if b"%" in (k := row[mk]) or b"+" in k or b"&" in k
                        else k.decode(),
                        row[mv].decode() or "null",
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


def parse_versions_xml(body: bytes) -> VersionPage:
    """Parse a ListObjectVersions body, keeping versions and delete markers interleaved."""
    # escaped text can never hold a raw "<", so a tag name found anywhere is that element
    key_text = _url_text if _top(b"EncodingType", body) == "url" else _xml_text
    entries = _fast_entries(body, key_text)
    if entries is None:
        entries = _general_entries(body, key_text)
    next_key = _raw_top(b"NextKeyMarker", body)
    next_version = _top(b"NextVersionIdMarker", body)
    return VersionPage(
        entries=entries,
        common_prefixes=[key_text(p) for p in _PREFIX.findall(body)],
        is_truncated=_top(b"IsTruncated", body) == "true",
        next_key_marker=key_text(next_key) if next_key is not None else None,
        next_version_id_marker=next_version,
    )


def parse_objects_xml(body: bytes) -> ObjectPage:
    """Parse a ListObjectsV2 body."""
    root = ET.fromstring(body)
    decode = _decoder(root)
    objects: list[ObjectSummary] = []
    prefixes: list[str] = []
    for child in root:
        tag = child.tag[len(_NS) :]
        if tag == "Contents":
            fields = {c.tag[len(_NS) :]: c.text or "" for c in child}
            objects.append(
                ObjectSummary(
                    key=decode(fields["Key"]),
                    last_modified=parse_timestamp(fields["LastModified"]),
                    size=int(fields.get("Size") or 0),
                    etag=fields.get("ETag", "").strip('"'),
                    storage_class=fields.get("StorageClass") or "STANDARD",
                )
            )
        elif tag == "CommonPrefixes":
            prefixes.append(decode(_text(child.find(f"{_NS}Prefix"))))
    token = root.find(f"{_NS}NextContinuationToken")
    return ObjectPage(
        objects=objects,
        common_prefixes=prefixes,
        is_truncated=_text(root.find(f"{_NS}IsTruncated")) == "true",
        next_token=_text(token) if token is not None else None,
    )
