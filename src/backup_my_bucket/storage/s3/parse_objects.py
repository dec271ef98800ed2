"""ListObjectsV2 bodies (the listing audit's), parsed without botocore's parser, as
:mod:`.parse` parses ListObjectVersions: one regular expression per page in a known layout,
ElementTree for any page that looks unusual. :func:`parse_keys_xml` reads a page's keys alone
(the audit's first pass needs nothing else), with the same rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from ...model import KeyPage, ObjectPage, ObjectSummary
from .parse import parse_timestamp
from .xmltext import (
    ODD,
    PREFIX,
    SPECIAL,
    STORAGE_CLASSES,
    Unsupported,
    child_text,
    element_pattern,
    etag_text,
    storage_class_name,
    top_text,
    tree_listing,
    url_text,
    xml_text,
)


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
    """A ``Contents`` entry with ``fields`` in document order (as :func:`.parse._layout`): its
    pattern (group 0 the whole entry), and the group of each of Key, LastModified, ETag,
    Size, StorageClass."""
    piece, groups = b"<Contents>", dict[str, int]()
    for field in fields:
        element, captured = element_pattern(field)
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
    expression per page; raises on anything it was not written for, as
    :func:`.parse._scan_versions` does."""
    root = _OBJECTS_ROOT.match(body)
    if root is None or not body.rstrip().endswith(b"</ListBucketResult>"):
        raise Unsupported("another root element, one with attributes, or a document cut short")
    if b"\r" in body:
        raise Unsupported("a carriage return (XML's line-end rules)")
    key_text = url_text if top_text(b"EncodingType", body) == "url" else xml_text
    expected = body.count(b"<Contents>")
    for pattern, (ik, ilm, ie, isz, isc) in _OBJECT_LAYOUTS:
        rows = pattern.findall(body)
        if len(rows) != expected:
            continue
        first = end = root.end()
        if rows:
            first, end = body.find(b"<Contents>"), body.rfind(b"</Contents>") + 11
            if end - first != sum([len(row[0]) for row in rows]):
                raise Unsupported("something between the entries")
        if ODD.search(body, root.end(), first) or ODD.search(body, end):
            raise Unsupported("an element that is not plain")
        pct, plus, amp = SPECIAL
        objects = [
            ObjectSummary(
                key_text(k) if pct in (k := row[ik]) or plus in k or amp in k else k.decode(),
                parse_timestamp(row[ilm].decode()),
                int(row[isz]) if row[isz] else 0,
                etag_text(row[ie]) if row[ie] else "",
                STORAGE_CLASSES.get(row[isc]) or storage_class_name(row[isc]),
            )
            for row in rows
        ]
        return ObjectPage(
            objects=objects,
            common_prefixes=[key_text(p) for p in PREFIX.findall(body)],
            is_truncated=top_text(b"IsTruncated", body) == "true",
            next_token=top_text(b"NextContinuationToken", body),
        )
    raise Unsupported("entries in an unknown layout")


def _tree_objects(body: bytes) -> ObjectPage:
    root, objects, prefixes, _ = tree_listing(body, "ListBucketResult", ("Contents",), _tree_object)
    return ObjectPage(
        objects=objects,
        common_prefixes=prefixes,
        is_truncated=child_text(root, "IsTruncated") == "true",
        next_token=child_text(root, "NextContinuationToken"),
    )


def parse_objects_xml(body: bytes) -> ObjectPage:
    """Parse a ListObjectsV2 body (raises :class:`~.xmltext.ListingParseError` if it is not one)."""
    try:
        return _scan_objects(body)
    except (Unsupported, KeyError, ValueError, TypeError, IndexError):
        return _tree_objects(body)


_CONTENTS_KEY = re.compile(rb"<Contents><Key>([^<]*)</Key>")


def _scan_keys(body: bytes) -> KeyPage:
    """The keys of a plain ListObjectsV2 page, each read as :func:`_scan_objects` reads it,
    and nothing else (a third of its work): every ``Contents`` must start with its ``Key``
    (S3's layout and SeaweedFS's do)."""
    root = _OBJECTS_ROOT.match(body)
    if root is None or not body.rstrip().endswith(b"</ListBucketResult>"):
        raise Unsupported("another root element, one with attributes, or a document cut short")
    if b"\r" in body:
        raise Unsupported("a carriage return (XML's line-end rules)")
    # only plain tags (no comment, CDATA, prefix or attribute): then every key is the text of
    # a <Key> right after its <Contents>, and none is missed or read from elsewhere
    if ODD.search(body, root.end()):
        raise Unsupported("an element that is not plain")
    raw = _CONTENTS_KEY.findall(body)
    if len(raw) != body.count(b"<Contents>"):
        raise Unsupported("an entry that does not start with its key")
    key_text = url_text if top_text(b"EncodingType", body) == "url" else xml_text
    pct, plus, amp = SPECIAL
    return KeyPage(
        keys=[key_text(k) if pct in k or plus in k or amp in k else k.decode() for k in raw],
        is_truncated=top_text(b"IsTruncated", body) == "true",
        next_token=top_text(b"NextContinuationToken", body),
    )


def parse_keys_xml(body: bytes) -> KeyPage:
    """A ListObjectsV2 body's keys (raises :class:`~.xmltext.ListingParseError` if it is not a
    listing): :func:`parse_objects_xml`'s keys, read without the other fields."""
    try:
        return _scan_keys(body)
    except (Unsupported, KeyError, ValueError, TypeError, IndexError):
        page = _tree_objects(body)
        return KeyPage([obj.key for obj in page.objects], page.is_truncated, page.next_token)
