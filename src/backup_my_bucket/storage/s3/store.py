"""S3Store: the ObjectStore on real S3 (or any S3-compatible server) through aiobotocore.

This is the only module that imports botocore or aiobotocore. Everything it raises is a
:mod:`backup_my_bucket.errors` exception; botocore's types never leave it.

Speed notes (measured; see docs/performance.md):
- one shared client per store, its connection pool at least as large as the concurrency;
- botocore's adaptive retry mode (client-side rate limiting on 503 SlowDown);
- ListObjectVersions / ListObjectsV2 bodies are parsed here in one pass (a single regular
  expression scan for versions, ElementTree for objects), through botocore's ``before-parse``
  event, and botocore is handed an empty body. That keeps the interleaved order of versions
  and delete markers (botocore splits them into two lists, losing the order within a key when
  timestamps tie) and costs a fraction of botocore's parse. botocore's own check of every 200
  for an embedded error (a full expat parse) is skipped for these two: the hook checks
  the document is complete instead;
- every other timestamp goes through a ``datetime.fromisoformat`` based parser;
- CopyObject with the COPY directives (sync's and restore's hot path) and ListObjectVersions
  (every engine's) skip botocore's request pipeline on custom endpoints (:class:`_FastPath`),
  falling back to it for anything but a clean, complete 200;
  the User-Agent is rendered once per client instead of twice per request.
"""

from __future__ import annotations

import contextlib
import email.utils
import functools
import hashlib
import hmac
import html
import logging
import re
import time
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import aiohttp
import botocore.exceptions
import botocore.handlers
import yarl
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.utils import parse_timestamp as _botocore_parse_timestamp

from ...errors import (
    AccessDenied,
    BackupError,
    BucketNotFound,
    EndpointUnreachable,
    InvalidCredentials,
    ItemFailure,
    ObjectNotFound,
    PreconditionFailed,
    StorageError,
)
from ...model import (
    CompletedPart,
    LifecycleRule,
    ObjectAttrs,
    ObjectInfo,
    ObjectPage,
    ObjectSummary,
    ObjectVersion,
    Versioning,
    VersionPage,
    VersionRef,
)
from ..protocol import MAX_DELETE_BATCH, MAX_PAGE, Tags

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

log = logging.getLogger(__name__)
T = TypeVar("T")

_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
_PAGE = "BmbPage"  # where the before-parse hook leaves its parse in the response dict


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


# botocore checks every 200 answer for an embedded S3 error by parsing the whole body with
# expat: on a 1,000-entry listing page that costs several times our own parse. The two listing
# hooks make the same check themselves (a complete document, not an <Error>), so the stock
# check is skipped for them and kept for every other operation.
_LISTING_ROOTS = {"ListObjectVersions": b"ListVersionsResult", "ListObjectsV2": b"ListBucketResult"}


def _make_listing_hook(
    parse: Callable[[bytes], VersionPage] | Callable[[bytes], ObjectPage], root: bytes
) -> Callable[..., None]:
    closing = b"</" + root + b">"

    def hook(
        response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any
    ) -> None:
        if response_dict.get("status_code", 500) >= 300:
            return  # botocore parses errors as usual
        body: bytes = response_dict["body"]
        if not body.rstrip().endswith(closing):
            # an <Error> in a 200, or a body cut short: botocore's rule, a 500 to retry
            response_dict["status_code"] = 500
            return
        customized_response_dict[_PAGE] = parse(body)
        response_dict["body"] = b""  # nothing left for botocore's slow parser to do

    return hook


def _install_listing_hooks(events: Any) -> None:
    events.register_first(
        "before-parse.s3.ListObjectVersions",
        _make_listing_hook(parse_versions_xml, _LISTING_ROOTS["ListObjectVersions"]),
    )
    events.register_first(
        "before-parse.s3.ListObjectsV2",
        _make_listing_hook(parse_objects_xml, _LISTING_ROOTS["ListObjectsV2"]),
    )
    stock: Callable[..., None] | None = getattr(botocore.handlers, "_handle_200_error", None)
    if stock is None:
        return  # another botocore: its own check stays, merely slower

    def check_200_error_except_listings(operation_model: Any, **kwargs: Any) -> None:
        if operation_model.name not in _LISTING_ROOTS:
            stock(operation_model=operation_model, **kwargs)

    events.unregister("before-parse.s3.*", stock)
    events.register_first("before-parse.s3.*", check_200_error_except_listings)


# --- configuration and error translation -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class S3Config:
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    max_pool_connections: int = 64
    max_attempts: int = 8
    connect_timeout: float = 10.0
    read_timeout: float = 120.0


_NOT_FOUND_CODES = {"NoSuchKey", "NoSuchVersion", "404", "NotFound", "MethodNotAllowed"}
_DENIED_CODES = {"AccessDenied", "403", "Forbidden", "AllAccessDisabled"}
_CREDENTIAL_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
}


class _Scrubber:
    """Removes credentials from any text that may reach a user."""

    def __init__(self, secrets: Sequence[str | None]) -> None:
        self._secrets = [s for s in secrets if s and len(s) >= 8]  # shorter ones are no secret

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def _where(bucket: str, key: str | None, version_id: str | None) -> str:
    where = f"s3://{bucket}/{key}" if key is not None else f"s3://{bucket}"
    return where + (f" (version {version_id})" if version_id else "")


def translate_error(
    exc: Exception,
    op: str,
    bucket: str,
    key: str | None = None,
    version_id: str | None = None,
    scrub: Callable[[str], str] = str,
) -> BackupError:
    """Map a botocore exception to the project's exception tree."""
    where = _where(bucket, key, version_id)
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = scrub(str(error.get("Message", "") or code))
        if code == "NoSuchBucket":
            return BucketNotFound(bucket)
        if code in _NOT_FOUND_CODES:
            if key is None:
                return BucketNotFound(bucket)
            return ObjectNotFound(bucket, key, version_id)
        if code in _DENIED_CODES:
            return AccessDenied(
                f"access denied: {op} on {where}",
                hint=f"the credentials in use need permission for s3:{op} on this bucket",
            )
        if code in _CREDENTIAL_CODES:
            return InvalidCredentials(
                f"the S3 server refused the credentials ({code}) for {op} on {where}",
                hint="check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, --profile and the clock",
            )
        if code in {"PreconditionFailed", "ConditionalRequestConflict"}:
            return PreconditionFailed(f"{op} on {where}: the object changed ({code})")
        return StorageError(f"{op} on {where} failed: {code}: {message}")
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return InvalidCredentials(
            "no AWS credentials found",
            hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or pass --profile",
        )
    if isinstance(exc, botocore.exceptions.ProfileNotFound):
        return InvalidCredentials(scrub(str(exc)), hint="check --profile and ~/.aws/config")
    if isinstance(
        exc,
        botocore.exceptions.EndpointConnectionError
        | botocore.exceptions.ConnectionClosedError
        | botocore.exceptions.ConnectTimeoutError,
    ):
        return EndpointUnreachable(
            f"cannot reach the S3 endpoint for {op} on {where}: {scrub(str(exc))}",
            hint="check --endpoint-url and the network",
        )
    if isinstance(exc, botocore.exceptions.BotoCoreError | OSError):
        return StorageError(f"{op} on {where} failed: {scrub(str(exc))}")
    raise exc  # a bug, not an S3 condition: let it surface


def _attrs_params(attrs: ObjectAttrs) -> dict[str, Any]:
    params: dict[str, Any] = {"Metadata": dict(attrs.metadata)}
    for name, value in (
        ("ContentType", attrs.content_type),
        ("ContentEncoding", attrs.content_encoding),
        ("CacheControl", attrs.cache_control),
        ("ContentDisposition", attrs.content_disposition),
        ("ContentLanguage", attrs.content_language),
        ("Expires", attrs.expires),
        ("StorageClass", attrs.storage_class),
    ):
        if value is not None:
            params[name] = value
    return params


def _tagging(tags: Tags) -> str:
    return urllib.parse.urlencode(dict(tags))


def _attrs_from_head(head: Mapping[str, Any]) -> ObjectAttrs:
    expires = head.get("ExpiresString")
    if expires is None and isinstance(head.get("Expires"), datetime):
        expires = email.utils.format_datetime(head["Expires"], usegmt=True)
    return ObjectAttrs(
        content_type=head.get("ContentType"),
        content_encoding=head.get("ContentEncoding"),
        cache_control=head.get("CacheControl"),
        content_disposition=head.get("ContentDisposition"),
        content_language=head.get("ContentLanguage"),
        expires=expires,
        metadata=dict(head.get("Metadata") or {}),
        storage_class=head.get("StorageClass"),
    )


def _fixed_user_agent(client: Any) -> None:
    """Build the User-Agent once per client, not twice per request.

    botocore renders it for every request and again in a ``request-created`` handler, which
    cost ~10 % of the client CPU of a server-side copy. The string only varies with feature
    flags that are fixed for our client, so the first rendering is kept.
    """
    creator = getattr(client, "_user_agent_creator", None)
    if creator is None:  # a botocore without it: nothing to save
        return
    rendered = creator.to_string()
    client.meta.events.unregister(
        "request-created.s3", creator.rebuild_and_replace_user_agent_handler
    )
    creator.to_string = lambda: rendered


_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class _SigV4:
    """AWS Signature Version 4 for S3 requests without a body, signed in the headers.

    botocore's signer builds an ``AWSRequest`` with e-mail style headers and spends about a
    millisecond of CPU per request; this one is a few dozen microseconds. The signing key is
    derived once a day. Paths and queries come already URI-encoded in S3's canonical form
    (RFC 3986 unreserved characters kept, the query sorted), so they are signed as sent.
    """

    def __init__(self, region: str, host: str) -> None:
        self.region = region
        self.host = host
        self._key: tuple[str, str, bytes] | None = None  # (secret, day, key)

    def _signing_key(self, secret: str, day: str) -> bytes:
        if self._key is None or self._key[:2] != (secret, day):
            key = f"AWS4{secret}".encode()
            for part in (day, self.region, "s3", "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            self._key = (secret, day, key)
        return self._key[2]

    def headers(
        self, credentials: Any, method: str, path: str, query: str, extra: Mapping[str, str]
    ) -> dict[str, str]:
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        day = amz_date[:8]
        headers = {"host": self.host, "x-amz-content-sha256": _EMPTY_SHA256, "x-amz-date": amz_date}
        if credentials.token:
            headers["x-amz-security-token"] = credentials.token
        headers.update((name.lower(), value.strip()) for name, value in extra.items())
        names = sorted(headers)
        signed = ";".join(names)
        canonical = "\n".join((
            method, path, query, "".join(f"{n}:{headers[n]}\n" for n in names), signed,
            _EMPTY_SHA256,
        ))  # fmt: skip
        scope = f"{day}/{self.region}/s3/aws4_request"
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{digest}"
        key = self._signing_key(credentials.secret_key, day)
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
            f"SignedHeaders={signed}, Signature={signature}"
        )
        return headers


class _FastPath:
    """The two hot requests, CopyObject (COPY directives) and ListObjectVersions, signed by
    :class:`_SigV4` and sent straight through aiohttp: sync's, restore's and snapshot's
    inner loops, at a fraction of botocore's per-request CPU.

    Only on a path-style custom endpoint (``endpoint_url``). Anything but a clean, complete
    200 answers None, and the caller repeats the request through botocore, which owns
    retries, the adaptive rate limit and error translation; so this path can only be faster,
    never wrong. Credentials come from botocore's signer (refreshed by botocore).
    """

    def __init__(self, endpoint_url: str, region: str, client: Any, pool: int) -> None:
        self._base = endpoint_url.rstrip("/")
        parts = urllib.parse.urlsplit(self._base)
        self._base_path = parts.path
        self._signer = _SigV4(region, parts.netloc)
        self._credentials = client._request_signer._credentials
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=pool),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=120),
            skip_auto_headers=("User-Agent",),
        )
        self.copies = 0  # requests served here (tests check the path is really taken)
        self.listings = 0

    async def _send(
        self, method: str, path: str, query: str = "", headers: Mapping[str, str] | None = None
    ) -> tuple[int, bytes, Mapping[str, str]] | None:
        frozen = self._credentials.get_frozen_credentials()
        if hasattr(frozen, "__await__"):
            frozen = await frozen
        signed = self._signer.headers(frozen, method, self._base_path + path, query, headers or {})
        url = self._base + path + (f"?{query}" if query else "")
        try:
            async with self._session.request(
                method, yarl.URL(url, encoded=True), headers=signed
            ) as resp:
                return resp.status, await resp.read(), resp.headers
        except (aiohttp.ClientError, OSError, TimeoutError):
            return None

    async def copy(self, source: VersionRef, bucket: str, key: str) -> str | None:
        copy_source = f"{_quote(source.bucket)}/{_quote(source.key)}"
        if source.version_id:
            copy_source += f"?versionId={_quote(source.version_id)}"
        answer = await self._send(
            "PUT", f"/{_quote(bucket)}/{_quote(key)}", headers={"x-amz-copy-source": copy_source}
        )
        if answer is None:
            return None
        status, body, headers = answer
        if status != 200 or b"<Error>" in body:  # S3 may report a failed copy in a 200
            return None
        self.copies += 1
        return headers.get("x-amz-version-id") or "null"

    async def list_versions(self, bucket: str, params: Mapping[str, str]) -> VersionPage | None:
        query = "&".join(
            f"{name}={_quote(value, safe='-_.~')}" for name, value in sorted(params.items())
        )
        answer = await self._send("GET", f"/{_quote(bucket)}", query)
        if answer is None:
            return None
        status, body, _ = answer
        if status != 200 or not body.rstrip().endswith(b"</ListVersionsResult>"):
            return None
        self.listings += 1
        return parse_versions_xml(body)

    async def close(self) -> None:
        await self._session.close()


def _quote(text: str, safe: str = "/~") -> str:
    return urllib.parse.quote(text, safe=safe)


# --- the store -------------------------------------------------------------------------------


class S3Store:
    """An ObjectStore over one aiobotocore client, shared by every task of the process.

    Use ``async with S3Store(config) as store:`` or call :meth:`open` and :meth:`close`.
    """

    def __init__(self, config: S3Config | None = None) -> None:
        self.config = config or S3Config()
        self._client: S3Client | None = None
        self._fast: _FastPath | None = None
        self._exit_stack = contextlib.AsyncExitStack()
        self._scrub = _Scrubber([self.config.secret_key, self.config.access_key])

    async def __aenter__(self) -> S3Store:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        if self._client is not None:
            return
        cfg = self.config
        try:
            session = AioSession(profile=cfg.profile)
            session.get_component("response_parser_factory").set_parser_defaults(
                timestamp_parser=parse_timestamp
            )
            credentials = await session.get_credentials()
            if credentials is not None:
                frozen = await credentials.get_frozen_credentials()
                self._scrub = _Scrubber([cfg.secret_key, frozen.secret_key, frozen.token])
        except botocore.exceptions.BotoCoreError as exc:
            raise translate_error(exc, "configure", "-", scrub=self._scrub) from exc
        aio_config = AioConfig(
            max_pool_connections=cfg.max_pool_connections,
            retries={"mode": "adaptive", "max_attempts": cfg.max_attempts},
            connect_timeout=cfg.connect_timeout,
            read_timeout=cfg.read_timeout,
            s3={"addressing_style": "path" if cfg.endpoint_url else "auto"},
            signature_version="s3v4",
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        client = await self._exit_stack.enter_async_context(
            session.create_client(
                "s3",
                endpoint_url=cfg.endpoint_url,
                region_name=cfg.region or "us-east-1",
                aws_access_key_id=cfg.access_key,
                aws_secret_access_key=cfg.secret_key,
                config=aio_config,
            )
        )
        _install_listing_hooks(client.meta.events)
        _fixed_user_agent(client)
        if cfg.endpoint_url and getattr(client, "_request_signer", None) is not None:
            # relies on botocore internals (the signer's credentials): without them, no fast path
            try:
                fast = _FastPath(
                    cfg.endpoint_url, cfg.region or "us-east-1", client, cfg.max_pool_connections
                )
            except AttributeError:
                log.debug("fast request path unavailable with this botocore")
            else:
                self._exit_stack.push_async_callback(fast.close)
                self._fast = fast
        self._client = client

    async def close(self) -> None:
        self._client = None
        self._fast = None
        await self._exit_stack.aclose()

    @property
    def client(self) -> S3Client:
        if self._client is None:
            raise RuntimeError("S3Store is not open")
        return self._client

    async def _call(
        self,
        op: str,
        bucket: str,
        call: Awaitable[T],
        key: str | None = None,
        version_id: str | None = None,
    ) -> T:
        try:
            return await call
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, OSError) as exc:
            raise translate_error(exc, op, bucket, key, version_id, self._scrub) from exc

    # --- buckets -----------------------------------------------------------------------------

    async def create_bucket(self, bucket: str) -> None:
        params: dict[str, Any] = {"Bucket": bucket}
        region = self.config.region
        if region and region != "us-east-1" and not self.config.endpoint_url:
            params["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            await self._call("CreateBucket", bucket, self.client.create_bucket(**params))
        except StorageError as exc:
            if "BucketAlreadyOwnedByYou" not in str(exc):
                raise

    async def check_bucket(self, bucket: str) -> None:
        await self._call("ListBucket", bucket, self.client.head_bucket(Bucket=bucket))

    async def get_versioning(self, bucket: str) -> Versioning:
        resp = await self._call(
            "GetBucketVersioning", bucket, self.client.get_bucket_versioning(Bucket=bucket)
        )
        status = resp.get("Status")
        return Versioning(status) if status else Versioning.UNVERSIONED

    async def set_versioning(self, bucket: str, enabled: bool) -> None:
        status: Literal["Enabled", "Suspended"] = "Enabled" if enabled else "Suspended"
        await self._call(
            "PutBucketVersioning",
            bucket,
            self.client.put_bucket_versioning(
                Bucket=bucket, VersioningConfiguration={"Status": status}
            ),
        )

    async def get_lifecycle(self, bucket: str) -> list[LifecycleRule]:
        try:
            resp = await self._call(
                "GetLifecycleConfiguration",
                bucket,
                self.client.get_bucket_lifecycle_configuration(Bucket=bucket),
            )
        except StorageError as exc:
            if "NoSuchLifecycleConfiguration" in str(exc):
                return []
            raise
        rules = []
        for rule in resp.get("Rules", []):
            filt: Mapping[str, Any] = rule.get("Filter") or {}
            prefix = str(filt.get("Prefix", rule.get("Prefix", "")) or "")
            rules.append(
                LifecycleRule(
                    id=str(rule.get("ID", "")),
                    enabled=rule.get("Status") == "Enabled",
                    prefix=prefix,
                    expiration_days=(rule.get("Expiration") or {}).get("Days"),
                    noncurrent_expiration_days=(rule.get("NoncurrentVersionExpiration") or {}).get(
                        "NoncurrentDays"
                    ),
                )
            )
        return rules

    # --- listings ----------------------------------------------------------------------------

    async def list_versions_page(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        version_id_marker: str = "",
        max_keys: int = MAX_PAGE,
    ) -> VersionPage:
        if self._fast is not None:
            query = {"versions": "", "max-keys": str(max_keys), "encoding-type": "url"}
            for name, value in (
                ("prefix", prefix),
                ("delimiter", delimiter),
                ("key-marker", key_marker),
                ("version-id-marker", version_id_marker if key_marker else ""),
            ):
                if value:
                    query[name] = value
            fast_page = await self._fast.list_versions(bucket, query)
            if fast_page is not None:
                return fast_page
        params: dict[str, Any] = {"Bucket": bucket, "MaxKeys": max_keys, "EncodingType": "url"}
        if prefix:
            params["Prefix"] = prefix
        if delimiter:
            params["Delimiter"] = delimiter
        if key_marker:
            params["KeyMarker"] = key_marker
            if version_id_marker:
                params["VersionIdMarker"] = version_id_marker
        resp: Mapping[str, Any] = await self._call(
            "ListBucketVersions", bucket, self.client.list_object_versions(**params)
        )
        page: VersionPage = resp[_PAGE]
        return page

    async def list_objects_page(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        start_after: str = "",
        continuation_token: str | None = None,
        max_keys: int = MAX_PAGE,
    ) -> ObjectPage:
        params: dict[str, Any] = {"Bucket": bucket, "MaxKeys": max_keys, "EncodingType": "url"}
        if prefix:
            params["Prefix"] = prefix
        if delimiter:
            params["Delimiter"] = delimiter
        if start_after:
            params["StartAfter"] = start_after
        if continuation_token:
            params["ContinuationToken"] = continuation_token
        resp: Mapping[str, Any] = await self._call(
            "ListBucket", bucket, self.client.list_objects_v2(**params)
        )
        page: ObjectPage = resp[_PAGE]
        return page

    # --- reads -------------------------------------------------------------------------------

    def _version(self, version_id: str | None) -> dict[str, Any]:
        return {"VersionId": version_id} if version_id else {}

    async def head(
        self,
        bucket: str,
        key: str,
        version_id: str | None = None,
        *,
        part_number: int | None = None,
    ) -> ObjectInfo:
        params: dict[str, Any] = {"Bucket": bucket, "Key": key, **self._version(version_id)}
        if part_number is not None:
            params["PartNumber"] = part_number
        head = await self._call(
            "GetObject", bucket, self.client.head_object(**params), key, version_id
        )
        if head.get("DeleteMarker"):
            raise ObjectNotFound(bucket, key, version_id)
        return ObjectInfo(
            key=key,
            version_id=head.get("VersionId") or "null",
            size=int(head.get("ContentLength", 0)),
            etag=str(head.get("ETag", "")).strip('"'),
            last_modified=head["LastModified"],
            attrs=_attrs_from_head(head),
            tag_count=int(head.get("TagCount", 0) or 0),
            parts_count=head.get("PartsCount") or (1 if part_number is not None else None),
        )

    async def get(
        self,
        bucket: str,
        key: str,
        version_id: str | None = None,
        *,
        byte_range: tuple[int, int] | None = None,
        chunk_size: int = 1024 * 1024,
    ) -> AsyncIterator[bytes]:
        params: dict[str, Any] = {"Bucket": bucket, "Key": key, **self._version(version_id)}
        if byte_range is not None:
            params["Range"] = f"bytes={byte_range[0]}-{byte_range[1]}"
        resp = await self._call(
            "GetObject", bucket, self.client.get_object(**params), key, version_id
        )
        body = resp["Body"]
        try:
            while True:
                chunk = await self._call(
                    "GetObject", bucket, body.read(chunk_size), key, version_id
                )
                if not chunk:
                    return
                yield chunk
        finally:
            body.close()

    async def get_tags(
        self, bucket: str, key: str, version_id: str | None = None
    ) -> dict[str, str]:
        resp = await self._call(
            "GetObjectTagging",
            bucket,
            self.client.get_object_tagging(Bucket=bucket, Key=key, **self._version(version_id)),
            key,
            version_id,
        )
        return {t["Key"]: t["Value"] for t in resp.get("TagSet", [])}

    # --- writes ------------------------------------------------------------------------------

    async def put(
        self,
        bucket: str,
        key: str,
        data: bytes | bytearray,
        *,
        attrs: ObjectAttrs | None = None,
        tags: Tags | None = None,
    ) -> str:
        params = _attrs_params(attrs or ObjectAttrs())
        if tags:
            params["Tagging"] = _tagging(tags)
        resp = await self._call(
            "PutObject",
            bucket,
            self.client.put_object(Bucket=bucket, Key=key, Body=data, **params),  # type: ignore[arg-type]  # bytes-like
            key,
        )
        return resp.get("VersionId") or "null"

    async def copy(
        self,
        source: VersionRef,
        bucket: str,
        key: str,
        *,
        attrs: ObjectAttrs | None = None,
        tags: Tags | None = None,
    ) -> str:
        if attrs is None and tags is None and self._fast is not None:
            version = await self._fast.copy(source, bucket, key)
            if version is not None:
                return version
        src: dict[str, str] = {"Bucket": source.bucket, "Key": source.key}
        if source.version_id:
            src["VersionId"] = source.version_id
        params: dict[str, Any] = {"MetadataDirective": "COPY", "TaggingDirective": "COPY"}
        if attrs is not None:
            params.update(_attrs_params(attrs), MetadataDirective="REPLACE")
        if tags is not None:
            params.update(Tagging=_tagging(tags), TaggingDirective="REPLACE")
        resp = await self._call(
            "PutObject",
            bucket,
            self.client.copy_object(Bucket=bucket, Key=key, CopySource=src, **params),  # type: ignore[arg-type]
            key,
        )
        return resp.get("VersionId") or "null"

    async def delete(self, bucket: str, key: str) -> str | None:
        resp = await self._call(
            "DeleteObject", bucket, self.client.delete_object(Bucket=bucket, Key=key), key
        )
        return resp.get("VersionId") if resp.get("DeleteMarker") else None

    async def delete_versions(self, bucket: str, refs: Sequence[VersionRef]) -> list[ItemFailure]:
        if len(refs) > MAX_DELETE_BATCH:
            raise ValueError(f"at most {MAX_DELETE_BATCH} versions per delete batch")
        if not refs:
            return []
        objects: list[Any] = []
        for ref in refs:
            if ref.version_id is None:
                raise ValueError("delete_versions needs explicit version ids")
            objects.append({"Key": ref.key, "VersionId": ref.version_id})
        resp = await self._call(
            "DeleteObjectVersion",
            bucket,
            self.client.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True}),
        )
        return [
            ItemFailure(
                key=err.get("Key", ""),
                version_id=err.get("VersionId"),
                reason=f"{err.get('Code', '')}: {self._scrub(err.get('Message', ''))}",
            )
            for err in resp.get("Errors", [])
        ]

    # --- multipart ---------------------------------------------------------------------------

    async def create_multipart(
        self, bucket: str, key: str, *, attrs: ObjectAttrs | None = None, tags: Tags | None = None
    ) -> str:
        params = _attrs_params(attrs or ObjectAttrs())
        if tags:
            params["Tagging"] = _tagging(tags)
        resp = await self._call(
            "PutObject",
            bucket,
            self.client.create_multipart_upload(Bucket=bucket, Key=key, **params),
            key,
        )
        return resp["UploadId"]

    async def upload_part(
        self, bucket: str, key: str, upload_id: str, number: int, data: bytes | bytearray
    ) -> CompletedPart:
        resp = await self._call(
            "PutObject",
            bucket,
            self.client.upload_part(
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=data,  # type: ignore[arg-type]  # bytes-like
            ),
            key,
        )
        return CompletedPart(number, str(resp["ETag"]).strip('"'))

    async def upload_part_copy(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        number: int,
        source: VersionRef,
        byte_range: tuple[int, int],
    ) -> CompletedPart:
        src: dict[str, str] = {"Bucket": source.bucket, "Key": source.key}
        if source.version_id:
            src["VersionId"] = source.version_id
        resp = await self._call(
            "PutObject",
            bucket,
            self.client.upload_part_copy(
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                CopySource=src,  # type: ignore[arg-type]
                CopySourceRange=f"bytes={byte_range[0]}-{byte_range[1]}",
            ),
            key,
        )
        return CompletedPart(number, str(resp["CopyPartResult"].get("ETag", "")).strip('"'))

    async def complete_multipart(
        self, bucket: str, key: str, upload_id: str, parts: Sequence[CompletedPart]
    ) -> str:
        resp = await self._call(
            "PutObject",
            bucket,
            self.client.complete_multipart_upload(
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={
                    "Parts": [{"PartNumber": p.number, "ETag": f'"{p.etag}"'} for p in parts]
                },
            ),
            key,
        )
        return resp.get("VersionId") or "null"

    async def abort_multipart(self, bucket: str, key: str, upload_id: str) -> None:
        await self._call(
            "AbortMultipartUpload",
            bucket,
            self.client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id),
            key,
        )
