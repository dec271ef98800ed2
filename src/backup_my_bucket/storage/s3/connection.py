"""The connection under S3Store: its fast path and its botocore client (built when a request
first needs it, once), the first-request probe, error translation, throttle counting, and the
bucket facts a command may reuse."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Self, TypeVar

import botocore.exceptions

from ...errors import EndpointUnreachable
from .address import Address, environ_proxies
from .config import S3Config
from .errors import translate_error, unreadable_answer
from .fastpath import _FastPath
from .light import Light, light_start
from .redact import remember_credentials

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

T = TypeVar("T")
log = logging.getLogger(__name__)


class Connection:
    """One store's fast path and botocore client, closed together; every request goes through
    :meth:`_call` (:meth:`_api` for botocore's), which reaches the endpoint first and
    translates errors.

    The client is built when the store opens, unless the store opens *light*
    (:mod:`.light`): then the fast path serves alone, and the client is built the first time
    a request needs it (one the fast path does not serve, a fallback, a bucket name botocore's
    rules must address), once, however many tasks ask at the same time."""

    def __init__(self, config: S3Config | None = None) -> None:
        self.config = config or S3Config()
        self._client: S3Client | None = None
        self._fast: _FastPath | None = None
        self._light: Light | None = None
        self._opened = False
        self._building = asyncio.Lock()
        self.clients_built = 0  # botocore clients this store built (tests: none when light)
        self._exit_stack = contextlib.AsyncExitStack()
        self._reached = True  # or not yet: set when opened
        self._reaching = asyncio.Lock()
        self._server: str | None = None  # the endpoint's Server header, once asked
        self._known: dict[tuple[str, str], tuple[float, object]] = {}  # (what, bucket): FRESH_FOR
        self._throttled = 0  # throttled answers botocore got

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        if self._opened:
            return
        light = light_start(self.config)
        if isinstance(light, str):
            log.debug("botocore's client is built now: %s", light)
            await self.botocore()
        else:
            self._light = light
            remember_credentials(light.credentials)  # kept out of every text from now on
            fast = _FastPath.of(self.config, self._resolve, light.credentials, light.ca_bundle)
            self._exit_stack.push_async_callback(fast.close)
            self._fast = fast
            self._reached = False
            log.info(
                "S3 client for %s (region %s, fast request path on; botocore when needed)",
                self.config.endpoint_url, light.region,
            )  # fmt: skip
        self._opened = True

    async def botocore(self) -> S3Client:
        """botocore's client, built on the first call (once, whoever else waits for it)."""
        if self._client is None:
            async with self._building:
                if self._client is None:
                    # aiobotocore and aiohttp: only now
                    from .client import open_client

                    eager = self._light is None  # the fast path comes with the client
                    resolve = self._resolve if eager else None
                    client, fast, probe = await open_client(self.config, self._exit_stack, resolve)
                    from .hooks import _count_throttles

                    _count_throttles(client.meta.events, self._count_throttle)
                    if eager:
                        self._fast, self._reached = fast, not probe
                    self.clients_built += 1
                    self._client = client
        return self._client

    async def _resolve(self, bucket: str, op: str) -> Address | str:
        """Where the fast path sends ``op`` for ``bucket``: botocore's endpoint rules, or
        their answer known without them (a light store's plain bucket names)."""
        if self._client is None and self._light is not None:
            found = self._light.address(bucket)
            if found is not None:
                return found
        from .client import _resolver

        resolve = _resolver(await self.botocore())
        return resolve if isinstance(resolve, str) else await resolve(bucket, op)

    def _count_throttle(self) -> None:
        self._throttled += 1

    @property
    def _serving(self) -> _FastPath | None:
        """The fast path while it serves requests (None: every request goes to botocore)."""
        fast = self._fast
        return fast if fast is not None and fast.enabled else None

    @property
    def throttled(self) -> int:
        """Throttled answers so far (503 SlowDown...), botocore's and the fast path's: what
        the copy pools back off on (engine/pace.py)."""
        return self._throttled + (self._fast.throttled if self._fast is not None else 0)

    async def close(self) -> None:
        self._client = None
        self._fast = None
        self._light = None
        self._opened = False
        await self._exit_stack.aclose()

    async def _api(
        self,
        op: str,
        bucket: str,
        send: Callable[[S3Client], Awaitable[T]],
        key: str | None = None,
        version_id: str | None = None,
    ) -> T:
        """A request through botocore's client (built first if need be)."""
        client = await self.botocore()
        return await self._call(op, bucket, send(client), key, version_id)

    async def _call(
        self,
        op: str,
        bucket: str,
        call: Awaitable[T],
        key: str | None = None,
        version_id: str | None = None,
    ) -> T:
        if not self._reached:
            try:
                await self._reach()
            except BaseException:
                if asyncio.iscoroutine(call):
                    call.close()  # never sent
                raise
        try:
            return await call
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, OSError) as exc:
            raise translate_error(exc, op, bucket, key, version_id) from exc
        except Exception as exc:
            if unreadable_answer(exc):
                raise translate_error(exc, op, bucket, key, version_id) from exc
            raise

    async def server(self, bucket: str) -> str:
        """The endpoint's ``Server`` header (asked once, with a HeadBucket)."""
        if self._server is None:
            await self._head_bucket(bucket)
        return self._server or ""

    async def _head_bucket(self, bucket: str) -> Mapping[str, str]:
        """HeadBucket's answer headers; the endpoint's ``Server`` header is noted from the
        first answer."""
        headers: Mapping[str, str] | None = None
        if (fast_path := self._serving) is not None:
            headers = await self._call("ListBucket", bucket, fast_path.head_bucket(bucket))
        if headers is None:
            resp: Mapping[str, Any] = await self._api(
                "ListBucket", bucket, lambda c: c.head_bucket(Bucket=bucket)
            )
            headers = resp.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        if self._server is None:
            self._server = str(headers.get("server", ""))
        return headers

    async def _reach(self) -> None:
        """Before the first request: is anything listening at the endpoint?"""
        async with self._reaching:
            if not self._reached:
                assert self.config.endpoint_url is not None
                await probe_endpoint(self.config.endpoint_url, self.config.connect_timeout)
                self._reached = True

    def _recall(self, what: str, bucket: str) -> object | None:
        found = self._known.get((what, bucket))
        if found is None:
            return None
        fresh = asyncio.get_running_loop().time() - found[0] < self.config.bucket_facts_ttl
        return found[1] if fresh else None

    def _remember(self, what: str, bucket: str, value: object) -> None:
        if self.config.bucket_facts_ttl > 0:
            self._known[what, bucket] = (asyncio.get_running_loop().time(), value)

    def _forget(self, what: str, bucket: str) -> None:
        self._known.pop((what, bucket), None)


async def probe_endpoint(endpoint_url: str, seconds: float) -> None:
    """Connect to a custom endpoint once, before its first request: a wrong port, host or scheme
    fails now, naming the endpoint, instead of after every retry of every request
    (``max_attempts`` x ``connect_timeout``, a minute of silence). Skipped behind a proxy
    (the proxy connects), and for AWS's own endpoints."""
    if environ_proxies(endpoint_url):
        return
    parts = urllib.parse.urlsplit(endpoint_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, port), seconds)
    except TimeoutError:
        reason = f"no answer within {seconds:g} s"
    except socket.gaierror:
        reason = f"the host name {parts.hostname!r} does not resolve"
    except OSError as exc:  # asyncio's own text is "Connect call failed (...)": say why
        reason = (os.strerror(exc.errno) if exc.errno else exc.strerror) or type(exc).__name__
        reason = reason[0].lower() + reason[1:]
    else:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return
    raise EndpointUnreachable(
        f"cannot connect to the S3 endpoint {endpoint_url}: {reason}",
        hint="is an S3 server listening there? check --endpoint-url (or AWS_ENDPOINT_URL): "
        "scheme, host and port",
    )
