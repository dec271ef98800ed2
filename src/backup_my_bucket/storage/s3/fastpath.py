"""The fast request path: the hot requests signed by :mod:`.sigv4` and sent by :mod:`.http11`
(aiohttp where the endpoint is reached through a proxy).

CopyObject with the COPY directives (sync's and restore's inner loop), ListObjectVersions
(every engine's), ListObjectsV2 (the listing audit's) and HEAD of a whole object (the copy
engine's, and the checks of what listings cannot tell: ~0.3 ms of client CPU against
botocore's ~1.6 ms), and the smaller requests every command sends while it sets up and keeps
its catalog (HeadBucket, GetBucketVersioning, GetObject of at most :data:`BODY_LIMIT` bytes,
PutObject of as many without attributes or tags, DeleteObject) skip botocore's per-request
pipeline (endpoint rules, user agent, request objects, signing, parsing, retry hooks), on AWS
as on custom endpoints; a store whose every request it serves never builds botocore's client
(:mod:`.light`). What it keeps of botocore's behaviour, and how:

- addressing: each bucket's endpoint (virtual-hosted or path style, regional, the region
  learned from a redirect) is botocore's own resolution, asked once per bucket and operation
  (:mod:`.address`);
- network settings: the proxy botocore would take for the host (``HTTP(S)_PROXY``,
  ``NO_PROXY``) and the CA bundle it would trust (``AWS_CA_BUNDLE``, ``ca_bundle`` in the
  profile, ``REQUESTS_CA_BUNDLE``), resolved by botocore's own functions; a proxy it cannot
  use the same way (TLS to the proxy) leaves that host to botocore;
- retries: at most ``max_attempts`` requests per operation, with botocore's backoff (full
  jitter, doubling, capped at 20 s) on throttling, 5xx and dropped connections; a throttled
  answer also pauses every other fast request of the store for that delay, and each retry
  first waits for its task's pace (``storage.retry.RETRY_GATE``). When the last
  attempt fails, the error is raised as botocore's (``ClientError``), translated by the store;
- a region redirect (301 PermanentRedirect, 307 TemporaryRedirect, 400
  AuthorizationHeaderMalformed, any answer naming ``x-amz-bucket-region``) goes to botocore,
  whose redirector re-sends the request to the bucket's region and remembers it; the fast
  path then asks botocore for the bucket's endpoint again, and goes on in that region;
- a conditional write's 412 PreconditionFailed is raised at once, as botocore raises it;
- anything else it was not written for (a 3xx, 400, 403, 404, an unknown answer, a TLS or
  proxy failure, a body over the limit) falls back to botocore: the caller repeats the
  request there (one debug line says why). After :data:`GIVE_UP` suspicious fallbacks in a
  row the fast path turns itself off for the store (a systematic 403 would otherwise only
  show as slowness). A GET over the limit also turns fast GETs off for the store: it reads
  large objects, which botocore streams.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import re
import ssl
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import botocore.exceptions

from ... import __version__
from ...model import KeyPage, ObjectPage, VersionPage, VersionRef
from ..retry import RETRY_GATE
from . import wire
from .address import Address, tls_context
from .answers import Fallback, Refused, Retry, judge, unreached
from .config import S3Config
from .http11 import BodyTooLarge, Http11Pool
from .parse import parse_versions_xml
from .parse_objects import parse_keys_xml, parse_objects_xml
from .sigv4 import SigV4
from .uploads import parse_uploads_xml
from .xmltext import ListingParseError

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger(__name__)
T = TypeVar("T")
P = TypeVar("P", VersionPage, ObjectPage, KeyPage, dict[str, Any])  # a listing page, parsed

GIVE_UP = 16  # suspicious fallbacks in a row before the fast path turns itself off
BODY_LIMIT = 16 * 1024 * 1024  # the largest body a fast GET reads or a fast PUT sends
MAX_BACKOFF = 20.0  # botocore's standard retry mode: full jitter, base 2, capped at 20 s
BACKOFF_BASE = 1.0
_USER_AGENT = f"backup-my-bucket/{__version__} (fast path)"
_STATUS = re.compile(rb"<Status>([^<]*)</Status>")
_OK = frozenset({200})


Resolver = Callable[[str, str], Awaitable[Address | str]]
"""botocore's endpoint for (bucket, operation), or why the fast path leaves it to botocore."""


class _FastPath:
    """CopyObject (COPY directives), ListObjectVersions, ListObjectsV2 and HEAD, and the
    smaller requests of a command's set-up and catalog (HeadBucket, GetBucketVersioning,
    GetObject, PutObject without attributes, DeleteObject), at the endpoint botocore resolves
    for each bucket (``resolve``, asked once per bucket and operation, and again after a
    redirect).

    ``credentials``: botocore's credentials object of the client (refreshed by botocore), or
    keys that never change (:mod:`.light`); ``ca_bundle``: the session's, for HTTPS
    endpoints. Each method answers the result, None when the caller must repeat the request
    through botocore, or raises botocore's ``ClientError``/``EndpointConnectionError`` when
    every attempt failed (or the server refused a conditional write: 412).
    """

    @classmethod
    def of(
        cls, cfg: S3Config, resolve: Resolver, credentials: Any, ca_bundle: str | None
    ) -> _FastPath:
        """The fast path of a store with these settings."""
        return cls(
            resolve,
            credentials,
            pool=cfg.max_pool_connections,
            max_attempts=cfg.max_attempts,
            ca_bundle=ca_bundle,
            name=cfg.endpoint_url or "AWS",
            connect_timeout=cfg.connect_timeout,
            read_timeout=cfg.read_timeout,
        )

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
        self.gets = True  # False once an object was too large for a fast GET: big reads
        self.served: Counter[str] = Counter()  # requests answered here, by operation
        self.throttled = 0  # throttling answers seen (503 SlowDown...), for the pacing

    @property
    def copies(self) -> int:  # (tests check that the path is really taken)
        return self.served["CopyObject"]

    @property
    def listings(self) -> int:
        return self.served["ListObjectVersions"] + self.served["ListObjectsV2"]

    @property
    def heads(self) -> int:
        return self.served["HeadObject"]

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
            raise Fallback(f"credentials unavailable ({type(exc).__name__})") from exc
        return frozen

    async def _attempt(
        self, where: Address, method: str, path: str, query: str, extra: Mapping[str, str],
        body: bytes,
    ) -> tuple[int, bytes, Mapping[str, str]]:  # fmt: skip
        credentials = await self._credentials_now()
        signer = self._signer(where.region)
        url, signed_path = where.target(path, query)
        signed = signer.headers(credentials, method, where.host, signed_path, query, extra)
        signed["user-agent"] = _USER_AGENT
        if where.proxy is not None:
            return await self._through_proxy(where, method, url, signed, body)
        host, port = where.socket
        target = url[len(where.origin) :]  # the path as signed, and the query
        tls = (self._tls or ssl.create_default_context()) if where.tls else None
        try:
            return await self._http.request(
                method, host, port, target, signed, body=body, tls=tls, max_body=BODY_LIMIT
            )
        except ssl.SSLError as exc:  # before OSError, which it is: botocore says what is wrong
            raise Fallback(f"{type(exc).__name__}: {exc}") from exc
        except BodyTooLarge as exc:  # a big object: botocore streams it
            self.gets = False
            raise Fallback(str(exc), suspicious=False) from exc
        except OSError as exc:  # TimeoutError and BadResponse too
            raise unreached(url, exc) from exc

    async def _through_proxy(
        self, where: Address, method: str, url: str, signed: dict[str, str], body: bytes
    ) -> tuple[int, bytes, Mapping[str, str]]:
        """A request to a proxied endpoint, through aiohttp (the lean client speaks no proxy)."""
        # isort: off
        from . import lazytls  # noqa: F401  (before aiohttp: its TLS contexts load on use)
        import aiohttp
        import yarl

        # isort: on

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
                data=body or None,
                proxy=where.proxy,
                proxy_headers=where.proxy_headers or None,
                allow_redirects=False,
                ssl=self._tls if where.tls and self._tls is not None else True,
            ) as resp:
                if (resp.content_length or 0) > BODY_LIMIT:
                    self.gets = False
                    raise Fallback(f"an answer's body over {BODY_LIMIT} bytes", suspicious=False)
                return resp.status, await resp.read(), resp.headers
        except (aiohttp.ClientSSLError, aiohttp.ClientProxyConnectionError) as exc:
            raise Fallback(f"{type(exc).__name__}: {exc}") from exc
        except aiohttp.ClientHttpProxyError as exc:
            raise Fallback(f"proxy answered {exc.status}") from exc
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise unreached(url, exc) from exc

    async def _request(
        self,
        op: str,
        bucket: str,
        method: str,
        path: str,
        read: Callable[[bytes, Mapping[str, str]], T],
        query: str = "",
        extra: Mapping[str, str] | None = None,
        *,
        body: bytes = b"",
        ok: Collection[int] = _OK,
    ) -> T | None:
        """Up to ``max_attempts`` attempts; ``read`` turns an ``ok`` answer into the result or
        raises :class:`_Retry` (a body cut short, an error inside a 200)."""
        where = await self._address(bucket, op)
        if where is None:
            return None
        if body:  # signed as botocore signs it (the empty body's hash otherwise)
            extra = {**(extra or {}), "x-amz-content-sha256": hashlib.sha256(body).hexdigest()}
        loop = asyncio.get_running_loop()
        for attempt in range(1, self._max_attempts + 1):
            if attempt > 1 and (gate := RETRY_GATE.get()) is not None:
                await gate()  # a retry is a request too: paced as the first one was
            if (pause := self._calm_until - loop.time()) > 0:  # a 503 while it waited too
                await asyncio.sleep(pause)
            try:
                status, answer, headers = await self._attempt(
                    where, method, path, query, extra or {}, body
                )
                if status in ok:
                    result = read(answer, headers)
                    self._suspicious_in_a_row = 0
                    self.served[op] += 1
                    return result
                raise judge(op, status, answer, headers)
            except Refused as refused:
                self._suspicious_in_a_row = 0
                raise refused.error from None
            except Fallback as fallback:
                self._fell_back(op, bucket, path, fallback, where)
                return None
            except Retry as retry:
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
        self, op: str, bucket: str, path: str, fallback: Fallback, where: Address
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
                raise judge("CopyObject", 500, body, headers)
            return headers.get("x-amz-version-id") or "null"

        path, extra = wire.copy_request(source, key)
        return await self._request("CopyObject", bucket, "PUT", path, read, extra=extra)

    async def list_versions(self, bucket: str, params: Mapping[str, str]) -> VersionPage | None:
        return await self._listing(
            "ListObjectVersions", b"</ListVersionsResult>", parse_versions_xml, bucket, params
        )

    async def list_objects(self, bucket: str, params: Mapping[str, str]) -> ObjectPage | None:
        """ListObjectsV2 (the listing audit's pages)."""
        return await self._listing(
            "ListObjectsV2", b"</ListBucketResult>", parse_objects_xml, bucket, params
        )

    async def list_keys(self, bucket: str, params: Mapping[str, str]) -> KeyPage | None:
        """ListObjectsV2 read for its keys alone (the listing audit's first pass)."""
        return await self._listing(
            "ListObjectsV2", b"</ListBucketResult>", parse_keys_xml, bucket, params
        )

    async def list_uploads(self, bucket: str, params: Mapping[str, str]) -> dict[str, Any] | None:
        """ListMultipartUploads, parsed as botocore parses it (storage/s3/uploads.py)."""
        return await self._listing(
            "ListMultipartUploads", b"</ListMultipartUploadsResult>", parse_uploads_xml, bucket,
            params,
        )  # fmt: skip

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
                raise judge(op, 500, body, headers)  # cut short, or an <Error>
            try:
                return parse(body)
            except ListingParseError as exc:
                error = botocore.exceptions.ClientError(
                    {"Error": {"Code": "BadListing", "Message": str(exc)}}, op
                )
                raise Retry(f"unparsable page ({exc})", error) from exc

        path, query = wire.list_versions_request(params)
        return await self._request(op, bucket, "GET", path, read, query)

    async def head(self, bucket: str, key: str, version_id: str | None) -> Mapping[str, str] | None:
        """The headers of an object version's HEAD (a delete marker falls back to botocore)."""

        def read(body: bytes, headers: Mapping[str, str]) -> Mapping[str, str]:
            if headers.get("x-amz-delete-marker") == "true":
                raise Fallback("a delete marker", suspicious=False)
            return headers

        path, query = wire.head_request(key, version_id)
        return await self._request("HeadObject", bucket, "HEAD", path, read, query)

    async def head_bucket(self, bucket: str) -> Mapping[str, str] | None:
        """HeadBucket's answer headers (the bucket exists and may be read)."""
        return await self._request("HeadBucket", bucket, "HEAD", "", _headers)

    async def get_versioning(self, bucket: str) -> str | None:
        """GetBucketVersioning's status: "Enabled", "Suspended", or "" (never turned on)."""

        def read(body: bytes, headers: Mapping[str, str]) -> str:
            if b"<Error>" in body or b"VersioningConfiguration" not in body:
                raise judge("GetBucketVersioning", 500, body, headers)  # as botocore's check
            found = _STATUS.search(body)
            return found.group(1).decode().strip() if found else ""

        path, query = wire.versioning_request()
        return await self._request("GetBucketVersioning", bucket, "GET", path, read, query)

    async def get_object(
        self, bucket: str, key: str, version_id: str | None, byte_range: tuple[int, int] | None
    ) -> bytes | None:
        """An object's bytes (of ``byte_range``, inclusive), when at most :data:`BODY_LIMIT`;
        a larger one goes to botocore, which streams it, and so does every later GET."""
        if not self.gets:
            return None
        path, query, extra = wire.get_request(key, version_id, byte_range)
        ok = (200, 206) if byte_range else _OK
        return await self._request("GetObject", bucket, "GET", path, _body, query, extra, ok=ok)

    async def put_object(
        self, bucket: str, key: str, data: bytes, conditions: Mapping[str, str]
    ) -> str | None:
        """PutObject of ``data`` with no attributes or tags; its version id. ``conditions``:
        ``if-none-match``/``if-match`` headers (a 412 raises PreconditionFailed at once)."""
        if len(data) > BODY_LIMIT:
            return None

        def read(body: bytes, headers: Mapping[str, str]) -> str:
            if b"<Error>" in body:  # S3 may report a failed write in a 200: botocore retries
                raise judge("PutObject", 500, body, headers)
            return headers.get("x-amz-version-id") or "null"

        path = wire.object_path(key)
        return await self._request(
            "PutObject", bucket, "PUT", path, read, extra=conditions, body=data
        )

    async def delete_object(self, bucket: str, key: str) -> tuple[str | None, bool] | None:
        """DeleteObject of a key: (the version id it names, whether that is a delete marker)."""

        def read(body: bytes, headers: Mapping[str, str]) -> tuple[str | None, bool]:
            return headers.get("x-amz-version-id"), headers.get("x-amz-delete-marker") == "true"

        path = wire.object_path(key)
        return await self._request("DeleteObject", bucket, "DELETE", path, read, ok=(204, 200))

    async def close(self) -> None:
        await self._http.close()
        if self._session is not None:
            await self._session.close()


def _headers(body: bytes, headers: Mapping[str, str]) -> Mapping[str, str]:
    return headers


def _body(body: bytes, headers: Mapping[str, str]) -> bytes:
    return body
