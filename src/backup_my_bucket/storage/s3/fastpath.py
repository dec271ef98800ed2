"""The fast request path: the hot requests signed by :mod:`.sigv4` and sent by :mod:`.http11`
(aiohttp where the endpoint is reached through a proxy).

CopyObject with the COPY directives (sync's and restore's inner loop), ListObjectVersions
(every engine's), ListObjectsV2 (the listing audit's) and HEAD of a whole object (the copy
engine's, and the checks of what listings cannot tell: ~0.3 ms of client CPU against
botocore's ~1.6 ms) skip botocore's per-request pipeline (endpoint rules, user agent, request
objects, signing, parsing, retry hooks), on AWS as on custom endpoints. What it keeps of
botocore's behaviour, and how:

- addressing: each bucket's endpoint (virtual-hosted or path style, regional, the region
  learned from a redirect) is botocore's own resolution, asked once per bucket and operation
  (:mod:`.address`);
- network settings: the proxy botocore would take for the host (``HTTP(S)_PROXY``,
  ``NO_PROXY``) and the CA bundle it would trust (``AWS_CA_BUNDLE``, ``ca_bundle`` in the
  profile, ``REQUESTS_CA_BUNDLE``), resolved by botocore's own functions; a proxy it cannot
  use the same way (TLS to the proxy) leaves that host to botocore;
- retries: at most ``max_attempts`` requests per operation, with botocore's backoff (full
  jitter, doubling, capped at 20 s) on throttling, 5xx and dropped connections; a throttled
  answer also pauses every other fast request of the store for that delay. When the last
  attempt fails, the error is raised as botocore's (``ClientError``), translated by the store;
- a region redirect (301 PermanentRedirect, 307 TemporaryRedirect, 400
  AuthorizationHeaderMalformed, any answer naming ``x-amz-bucket-region``) goes to botocore,
  whose redirector re-sends the request to the bucket's region and remembers it; the fast
  path then asks botocore for the bucket's endpoint again, and goes on in that region;
- anything else it was not written for (a 3xx, 400, 403, 404, an unknown answer, a TLS or
  proxy failure) falls back to botocore: the caller repeats the request there (one debug
  line says why). After :data:`GIVE_UP` suspicious fallbacks in a row the fast path turns
  itself off for the store (a systematic 403 would otherwise only show as slowness).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import ssl
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import aiohttp
import botocore.exceptions
import yarl

from ... import __version__
from ...model import ObjectPage, VersionPage, VersionRef
from .address import Address, tls_context
from .hooks import THROTTLE_CODES
from .http11 import Http11Pool
from .parse import ListingParseError, parse_objects_xml, parse_versions_xml
from .sigv4 import SigV4, canonical_query, quote

log = logging.getLogger(__name__)
T = TypeVar("T")
P = TypeVar("P", VersionPage, ObjectPage)

GIVE_UP = 16  # suspicious fallbacks in a row before the fast path turns itself off
MAX_BACKOFF = 20.0  # botocore's standard retry mode: full jitter, base 2, capped at 20 s
BACKOFF_BASE = 1.0
_USER_AGENT = f"backup-my-bucket/{__version__} (fast path)"
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_TRANSIENT_CODES = frozenset({
    "InternalError", "ServiceUnavailable", "RequestTimeout", "RequestTimeoutException",
    "PriorRequestNotComplete",
})  # fmt: skip
# the bucket is in another region, or moved: botocore's redirector follows (botocore/utils.py)
_REDIRECT_CODES = frozenset({
    "PermanentRedirect", "TemporaryRedirect", "AuthorizationHeaderMalformed",
    "IllegalLocationConstraintException",
})  # fmt: skip
# definitive answers about the request's object: they say nothing about the fast path itself
# (405: AWS's HEAD of a delete marker's version)
_DEFINITIVE_STATUS = frozenset({404, 405, 409, 412})
_CODE = re.compile(rb"<Code>([^<]*)</Code>")
_MESSAGE = re.compile(rb"<Message>([^<]*)</Message>")


def copy_request(source: VersionRef, key: str) -> tuple[str, dict[str, str]]:
    """CopyObject's path under the bucket's endpoint and its headers, encoded as botocore
    encodes them: the key and the source's bucket and key URI-encoded, its version id as is."""
    copy_source = quote(f"{source.bucket}/{source.key}", "/~")
    if source.version_id:
        copy_source += f"?versionId={source.version_id}"
    return f"/{quote(key)}", {"x-amz-copy-source": copy_source}


def head_request(key: str, version_id: str | None) -> tuple[str, str]:
    """HEAD's path under the bucket's endpoint and its (canonical) query."""
    return f"/{quote(key)}", canonical_query({"versionId": version_id} if version_id else {})


def list_versions_request(params: Mapping[str, str]) -> tuple[str, str]:
    """A listing's path under the bucket's endpoint and its (canonical) query
    (ListObjectVersions, ListObjectsV2)."""
    return "", canonical_query(params)


def signed_request(
    signer: SigV4,
    where: Address,
    credentials: Any,
    method: str,
    url_path: str,
    query: str,
    extra: Mapping[str, str],
    amz_date: str | None = None,
) -> tuple[str, dict[str, str]]:
    """The URL and the signed headers of a request to a bucket's endpoint."""
    url, path = where.target(url_path, query)
    return url, signer.headers(credentials, method, where.host, path, query, extra, amz_date)


class _Retry(Exception):
    """One attempt failed in a way worth another (throttling, 5xx, a dropped connection)."""

    def __init__(self, reason: str, error: Exception, throttled: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.error, self.throttled = reason, error, throttled


class _Fallback(Exception):
    """An answer the fast path was not written for: botocore repeats the request.
    ``redirect``: the bucket is elsewhere (botocore follows, the fast path asks again)."""

    def __init__(self, reason: str, suspicious: bool = True, redirect: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.suspicious, self.redirect = reason, suspicious, redirect


Resolver = Callable[[str, str], Awaitable[Address | str]]
"""botocore's endpoint for (bucket, operation), or why the fast path leaves it to botocore."""


class _FastPath:
    """CopyObject (COPY directives), ListObjectVersions, ListObjectsV2 and HEAD, at the
    endpoint botocore resolves for each bucket (``resolve``, asked once per bucket and
    operation, and again after a redirect).

    ``credentials``: botocore's credentials object of the client (refreshed by botocore);
    ``ca_bundle``: the session's, for HTTPS endpoints. Each method answers the result, None
    when the caller must repeat the request through botocore, or raises botocore's
    ``ClientError``/``EndpointConnectionError`` when every attempt failed.
    """

    def __init__(
        self,
        resolve: Resolver,
        credentials: Any,
        *,
        pool: int,
        max_attempts: int,
        ca_bundle: str | None = None,
        name: str = "AWS",
        connect_timeout: float = 5.0,
        read_timeout: float = 120.0,
    ) -> None:
        self._resolve = resolve
        self._addresses: dict[tuple[str, str], Address | str] = {}
        self._redirected: dict[str, Address] = {}  # bucket -> its address when redirected
        self._following: set[str] = set()  # buckets whose redirect botocore is following
        self._signers: dict[str, SigV4] = {}
        self._credentials = credentials
        self._ca_bundle = ca_bundle
        self._tls: ssl.SSLContext | None = None  # built for the first HTTPS address
        self._name = name
        self._max_attempts = max(1, max_attempts)
        self._pool = pool
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._http = Http11Pool(pool, connect_timeout=connect_timeout, read_timeout=read_timeout)
        self._session: aiohttp.ClientSession | None = None  # for proxied endpoints only
        self._calm_until = 0.0  # loop time before which no fast request is sent (throttled)
        self._suspicious_in_a_row = 0
        self.enabled = True
        self.copies = 0  # requests served here (tests check the path is really taken)
        self.listings = 0
        self.heads = 0
        self.throttled = 0  # throttling answers seen (503 SlowDown...), for the pacing

    async def _address(self, bucket: str, op: str) -> Address | None:
        """The bucket's endpoint for ``op`` (botocore's), None if botocore must send it."""
        if bucket in self._following:
            return None
        found = self._addresses.get((bucket, op))
        if found is None:
            found = await self._resolve(bucket, op)
            if isinstance(found, Address) and self._redirected.get(bucket) == found:
                found = "botocore's redirect left its endpoint as it was"  # no loop of 301s
            if isinstance(found, str):
                log.debug("fast path: %s on %s goes to botocore: %s", op, bucket, found)
            elif found.tls and self._tls is None:
                try:
                    self._tls = tls_context(self._ca_bundle)
                except (OSError, ValueError) as exc:  # an unreadable bundle: botocore says so
                    found = f"no TLS context ({type(exc).__name__}: {exc})"
            self._addresses[bucket, op] = found
        return found if isinstance(found, Address) else None

    def _signer(self, region: str) -> SigV4:
        signer = self._signers.get(region)
        if signer is None:
            signer = self._signers[region] = SigV4(region)
        return signer

    async def _credentials_now(self) -> Any:
        try:
            frozen = self._credentials.get_frozen_credentials()
            if hasattr(frozen, "__await__"):
                frozen = await frozen
        except Exception as exc:  # botocore reports a refresh failure in its own terms
            raise _Fallback(f"credentials unavailable ({type(exc).__name__})") from exc
        return frozen

    async def _attempt(
        self, where: Address, method: str, path: str, query: str, extra: Mapping[str, str]
    ) -> tuple[int, bytes, Mapping[str, str]]:
        credentials = await self._credentials_now()
        signer = self._signer(where.region)
        url, signed = signed_request(signer, where, credentials, method, path, query, extra)
        signed["user-agent"] = _USER_AGENT
        if where.proxy is not None:
            return await self._through_proxy(where, method, url, signed)
        host, port = where.socket
        target = url[len(where.origin) :]  # the path as signed, and the query
        tls = (self._tls or ssl.create_default_context()) if where.tls else None
        try:
            return await self._http.request(method, host, port, target, signed, tls=tls)
        except ssl.SSLError as exc:  # before OSError, which it is: botocore says what is wrong
            raise _Fallback(f"{type(exc).__name__}: {exc}") from exc
        except OSError as exc:  # TimeoutError and BadResponse too
            raise _unreached(url, exc) from exc

    async def _through_proxy(
        self, where: Address, method: str, url: str, signed: dict[str, str]
    ) -> tuple[int, bytes, Mapping[str, str]]:
        """A request to a proxied endpoint, through aiohttp (the lean client speaks no proxy)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool),
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=self._connect_timeout, sock_read=self._read_timeout
                ),
                skip_auto_headers=("User-Agent",),
            )
        try:
            async with self._session.request(
                method,
                yarl.URL(url, encoded=True),
                headers=signed,
                proxy=where.proxy,
                proxy_headers=where.proxy_headers or None,
                allow_redirects=False,
                ssl=self._tls if where.tls and self._tls is not None else True,
            ) as resp:
                return resp.status, await resp.read(), resp.headers
        except (aiohttp.ClientSSLError, aiohttp.ClientProxyConnectionError) as exc:
            raise _Fallback(f"{type(exc).__name__}: {exc}") from exc
        except aiohttp.ClientHttpProxyError as exc:
            raise _Fallback(f"proxy answered {exc.status}") from exc
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise _unreached(url, exc) from exc

    async def _request(
        self,
        op: str,
        bucket: str,
        method: str,
        path: str,
        read: Callable[[bytes, Mapping[str, str]], T],
        query: str = "",
        extra: Mapping[str, str] | None = None,
    ) -> T | None:
        """Up to ``max_attempts`` attempts; ``read`` turns a 200 into the result or raises
        :class:`_Retry` (a body cut short, an error inside a 200)."""
        where = await self._address(bucket, op)
        if where is None:
            return None
        loop = asyncio.get_running_loop()
        for attempt in range(1, self._max_attempts + 1):
            if (pause := self._calm_until - loop.time()) > 0:
                await asyncio.sleep(pause)
            try:
                status, body, headers = await self._attempt(where, method, path, query, extra or {})
                if status == 200:
                    result = read(body, headers)
                    self._suspicious_in_a_row = 0
                    return result
                raise _judge(op, status, body, headers)
            except _Fallback as fallback:
                self._fell_back(op, bucket, path, fallback, where)
                return None
            except _Retry as retry:
                self.throttled += retry.throttled
                if attempt == self._max_attempts:
                    log.debug("fast path: %s %s: %s, attempts exhausted", op, path, retry.reason)
                    raise retry.error from None
                delay = random.uniform(0, min(MAX_BACKOFF, BACKOFF_BASE * 2 ** (attempt - 1)))
                if retry.throttled:
                    self._calm_until = max(self._calm_until, loop.time() + delay)
                log.debug(
                    "fast path: %s %s: %s; attempt %d of %d, next in %.2f s",
                    op, path, retry.reason, attempt, self._max_attempts, delay,
                )  # fmt: skip
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    def _fell_back(
        self, op: str, bucket: str, path: str, fallback: _Fallback, where: Address
    ) -> None:
        log.debug("fast path: %s %s falls back to botocore: %s", op, path, fallback.reason)
        if fallback.redirect:  # botocore follows it; the bucket's requests are its own until
            self._redirected[bucket] = where  # one of them got through (settled)
            self._following.add(bucket)
        self._suspicious_in_a_row = self._suspicious_in_a_row + 1 if fallback.suspicious else 0
        if self._suspicious_in_a_row >= GIVE_UP and self.enabled:
            self.enabled = False
            log.debug(
                "fast path off for %s: %d requests in a row fell back (last: %s)",
                self._name, self._suspicious_in_a_row, fallback.reason,
            )  # fmt: skip

    def settled(self, bucket: str) -> None:
        """botocore served a request to ``bucket``: a redirect it followed is behind it now (its
        region cached), so the bucket's endpoint is asked for again."""
        if bucket in self._following:
            self._following.discard(bucket)
            for cached in [k for k in self._addresses if k[0] == bucket]:
                del self._addresses[cached]

    async def copy(self, source: VersionRef, bucket: str, key: str) -> str | None:

        def read(body: bytes, headers: Mapping[str, str]) -> str:
            if b"<Error>" in body or b"</CopyObjectResult>" not in body:
                # S3 may report a failed copy in a 200; botocore retries it as a 500
                raise _judge("CopyObject", 500, body, headers)
            return headers.get("x-amz-version-id") or "null"

        path, extra = copy_request(source, key)
        version = await self._request("CopyObject", bucket, "PUT", path, read, extra=extra)
        if version is not None:
            self.copies += 1
        return version

    async def list_versions(self, bucket: str, params: Mapping[str, str]) -> VersionPage | None:
        return await self._listing(
            "ListObjectVersions", b"</ListVersionsResult>", parse_versions_xml, bucket, params
        )

    async def list_objects(self, bucket: str, params: Mapping[str, str]) -> ObjectPage | None:
        """ListObjectsV2 (the listing audit's pages)."""
        return await self._listing(
            "ListObjectsV2", b"</ListBucketResult>", parse_objects_xml, bucket, params
        )

    async def _listing(
        self,
        op: str,
        end: bytes,
        parse: Callable[[bytes], P],
        bucket: str,
        params: Mapping[str, str],
    ) -> P | None:
        def read(body: bytes, headers: Mapping[str, str]) -> P:
            if not body.rstrip().endswith(end):
                raise _judge(op, 500, body, headers)  # cut short, or an <Error>
            try:
                return parse(body)
            except ListingParseError as exc:
                error = botocore.exceptions.ClientError(
                    {"Error": {"Code": "BadListing", "Message": str(exc)}}, op
                )
                raise _Retry(f"unparsable page ({exc})", error) from exc

        path, query = list_versions_request(params)
        page = await self._request(op, bucket, "GET", path, read, query)
        if page is not None:
            self.listings += 1
        return page

    async def head(self, bucket: str, key: str, version_id: str | None) -> Mapping[str, str] | None:
        """The headers of an object version's HEAD (a delete marker falls back to botocore)."""

        def read(body: bytes, headers: Mapping[str, str]) -> Mapping[str, str]:
            if headers.get("x-amz-delete-marker") == "true":
                raise _Fallback("a delete marker", suspicious=False)
            return headers

        path, query = head_request(key, version_id)
        headers = await self._request("HeadObject", bucket, "HEAD", path, read, query)
        if headers is not None:
            self.heads += 1
        return headers

    async def close(self) -> None:
        await self._http.close()
        if self._session is not None:
            await self._session.close()


def _unreached(url: str, exc: BaseException) -> _Retry:
    """A request that got no whole answer: retried, and botocore's error when none is left."""
    error = botocore.exceptions.EndpointConnectionError(endpoint_url=url, error=exc)
    return _Retry(f"{type(exc).__name__}: {exc}", error)


def _judge(op: str, status: int, body: bytes, headers: Mapping[str, str]) -> _Retry | _Fallback:
    """What a non-200 answer (or a 200 holding an error, as 500) means for the fast path."""
    found = _CODE.search(body)
    code = found.group(1).decode(errors="replace") if found else str(status)
    reason = f"HTTP {status} {code}"
    region = headers.get("x-amz-bucket-region")
    if status in (301, 302, 307) or code in _REDIRECT_CODES or (region and status == 400):
        return _Fallback(f"{reason}: the bucket's region is {region or 'elsewhere'}",
                         suspicious=False, redirect=True)  # fmt: skip
    throttled = code in THROTTLE_CODES or status in (429, 503)
    if status in _RETRY_STATUS or throttled or code in _TRANSIENT_CODES:
        message = _MESSAGE.search(body)
        error = botocore.exceptions.ClientError(
            {
                "Error": {
                    "Code": code,
                    "Message": message.group(1).decode(errors="replace") if message else code,
                },
                "ResponseMetadata": {"HTTPStatusCode": status},  # type: ignore[typeddict-item]
            },
            op,
        )
        return _Retry(reason, error, throttled)
    return _Fallback(reason, suspicious=status not in _DEFINITIVE_STATUS)
