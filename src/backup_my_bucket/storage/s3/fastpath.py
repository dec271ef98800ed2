"""The fast request path: our own SigV4 signer and an aiohttp client for the two hot
requests, falling back to botocore for anything but a clean, complete 200.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

import aiohttp
import yarl

from ...model import VersionPage, VersionRef
from .parse import parse_versions_xml

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
