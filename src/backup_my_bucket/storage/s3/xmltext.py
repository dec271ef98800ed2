"""The XML of S3's listings, read without a parser: what every listing parser shares.

The two listing parsers (:mod:`.parse` for ListObjectVersions, :mod:`.parse_objects` for
ListObjectsV2) first scan a page with regular expressions and fall back to ElementTree for
anything the scan was not written for (:class:`Unsupported`). Here: character data as XML
reads it (entities, character references, line ends), the few value forms S3 uses (quoted
ETags, URL-encoded keys, storage class names), the plain elements a scan recognises, and
ElementTree's reading of a listing for the fallback.
"""

from __future__ import annotations

import re
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class ListingParseError(ValueError):
    """A listing body that is not a well-formed listing: the request is retried as a bad page."""


class Unsupported(Exception):
    """Something the fast scan was not written for: the page goes to ElementTree instead."""


# --- character data -------------------------------------------------------------------------


def raw_top(name: bytes, body: bytes) -> bytes | None:
    """The raw text of the first element ``name`` in ``body``: escaped text never holds a
    raw "<", so a tag name found anywhere is that element."""
    match = re.search(b"<" + name + rb">([^<]*)</" + name + b">", body)
    return None if match is None else match.group(1)


def top_text(name: bytes, body: bytes) -> str | None:
    """:func:`raw_top`'s text as XML reads it."""
    raw = raw_top(name, body)
    return None if raw is None else xml_text(raw)


_REF = re.compile(r"&(?:#x([0-9a-fA-F]{1,6});|#([0-9]{1,7});|(amp|lt|gt|quot|apos);|)")
_NAMED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}


def _reference(match: re.Match[str]) -> str:
    hex_code, dec_code, name = match.groups()
    if name:
        return _NAMED[name]
    if hex_code is None and dec_code is None:
        raise Unsupported("an entity XML does not define, or a bare &")
    code = int(hex_code, 16) if hex_code is not None else int(dec_code)
    if not (
        code in (0x9, 0xA, 0xD)
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    ):
        raise Unsupported(f"character reference to U+{code:04X}, not an XML character")
    return chr(code)  # XML's rule: the code point itself (HTML5 would map &#x80; to €)


def xml_text(raw: bytes) -> str:
    """Character data as XML reads it: line ends normalised, the five entities and
    character references replaced."""
    text = raw.decode()
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _REF.sub(_reference, text) if "&" in text else text


def field_text(raw: bytes) -> str:
    """A field's text, decoded further only when it holds an entity or a carriage return."""
    return xml_text(raw) if b"&" in raw or b"\r" in raw else raw.decode()


_QUOTES = (b"&#34;", b"&quot;", b'"')  # Go servers escape quotes as &#34;, AWS as &quot;
_QUOTED = re.compile(rb'(&#34;|&quot;|")([^"&\r]*)\1')  # S3's ETags: one expression, ~1/3 the time


def etag_text(raw: bytes) -> str:
    """An ETag without its quotes."""
    plain = _QUOTED.fullmatch(raw)
    if plain is not None:
        return plain[2].decode()
    for quote in _QUOTES:  # S3 quotes every ETag: skip the general unescape
        n = len(quote)
        if raw[:n] == quote and raw[-n:] == quote and len(raw) >= 2 * n:
            raw = raw[n:-n]
            break
    if b"&" in raw or b'"' in raw or b"\r" in raw:
        return xml_text(raw).strip('"')
    return raw.decode()


def url_text(raw: bytes) -> str:
    """A key of a listing asked with ``encoding-type=url``."""
    text = xml_text(raw)
    return urllib.parse.unquote_plus(text) if "%" in text or "+" in text else text


STORAGE_CLASSES: dict[bytes, str] = {}  # storage class names, decoded once


def storage_class_name(raw: bytes | None) -> str:
    """A storage class, STANDARD when the listing names none."""
    if not raw:
        return "STANDARD"
    name = STORAGE_CLASSES.get(raw)
    if name is None:
        name = STORAGE_CLASSES[raw] = xml_text(raw)
    return name


# --- what both scans recognise ---------------------------------------------------------------

PREFIX = re.compile(rb"<CommonPrefixes>\s*<Prefix>([^<]*)</Prefix>", re.S)
ODD = re.compile(rb"<(?![A-Za-z][A-Za-z0-9]*>|/[A-Za-z][A-Za-z0-9]*>)")
"""Anything but a plain opening or closing tag: a page holding one is not for the scan."""
SPECIAL = (b"%", b"+", b"&")  # a key holding none of these is its own text

_OWNER = rb"(?:<Owner>(?:<ID>[^<]*</ID>)?(?:<DisplayName>[^<]*</DisplayName>)?</Owner>)?"


def element_pattern(field: str) -> tuple[bytes, bool]:
    """The pattern of one element of an entry, and whether it captures its text: "Owner" (a
    nested element, skipped), "?Name" (optional, ignored) or "Name" (captured)."""
    if field == "Owner":
        return _OWNER, False
    if field.startswith("?"):
        name = field[1:].encode()
        return b"(?:<" + name + rb">[^<]*</" + name + b">)*", False
    name = field.encode()
    return b"<" + name + rb">([^<]*)</" + name + b">", True


# --- ElementTree, for what the scans do not take -------------------------------------------


def local_name(tag: str) -> str:
    """An element's name without its namespace."""
    return tag.rpartition("}")[2]


def element_tree(body: bytes, root_name: str) -> ET.Element:
    """``body``'s root element, which must be ``root_name`` (else ListingParseError)."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise ListingParseError(f"not well-formed XML: {exc}") from exc
    if local_name(root.tag) != root_name:
        raise ListingParseError(f"a <{local_name(root.tag)}> document, not <{root_name}>")
    return root


def child_text(parent: ET.Element, name: str) -> str | None:
    """The text of ``parent``'s first child element ``name``, whatever its namespace."""
    for child in parent:
        if local_name(child.tag) == name:
            return child.text or ""
    return None


def tree_listing(
    body: bytes, root_name: str, entry_tags: tuple[str, ...], make: Callable[..., T]
) -> tuple[ET.Element, list[T], list[str], Callable[[str], str]]:
    """ElementTree's reading of a listing: ``make(tag, fields, decode)`` for each entry, the
    common prefixes, and the key decoder (URL decoding when the listing says so)."""
    root = element_tree(body, root_name)
    url = child_text(root, "EncodingType") == "url"

    def decode(text: str) -> str:
        return urllib.parse.unquote_plus(text) if url else text

    entries: list[T] = []
    prefixes: list[str] = []
    try:
        for child in root:
            tag = local_name(child.tag)
            if tag == "CommonPrefixes":
                prefixes += [decode(p.text or "") for p in child if local_name(p.tag) == "Prefix"]
            elif tag in entry_tags:
                entries.append(make(tag, {local_name(c.tag): c.text or "" for c in child}, decode))
    except (KeyError, ValueError, TypeError) as exc:
        raise ListingParseError(f"an entry without a valid {exc}") from exc
    return root, entries, prefixes, decode
