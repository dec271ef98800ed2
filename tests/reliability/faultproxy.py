"""An HTTP fault-injecting proxy for tests, in front of an S3 endpoint.

Per request, with probability ``rate`` (from a seeded RNG), it injects one fault before the
request reaches the server: a ``503 SlowDown`` or ``500 InternalError`` S3 error answer, a
connection reset, or added latency (the request is then forwarded). Other requests are
forwarded unchanged: method, path and raw query, headers (the original ``Host`` included,
since SigV4 signs it and the server checks the signature against the Host it receives) and
body. The proxy runs its own event loop in a background thread, so it serves callers on any
loop or thread (the CLI runs its own loop).

Injected errors are answered before forwarding, so the request never took effect: a fault
never leaves a half-applied state on the server, only a client that must retry.

It also serves as a plain HTTP forward proxy (``HTTP_PROXY=proxy.url``: requests in absolute
form go to the same upstream), over TLS (``tls``: an SSL context), and can re-sign every
request with the upstream's real keys (``resign``), so a client may sign with any
credentials (a session token, refreshed keys) that the upstream does not know. Every
request is logged in ``stats.log`` (method, path and query, User-Agent,
Proxy-Authorization) and ``stats.timeline`` (when, and whether it was throttled).

``limit`` (requests per second, settable while it runs) makes it an S3 partition at its
rate: requests above it are answered ``503 SlowDown`` (a token bucket holding ``burst``
seconds of requests, one by default), whatever ``rate`` draws.
"""

from __future__ import annotations

import asyncio
import random
import socket
import ssl
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType

import aiohttp
import botocore.auth
import botocore.awsrequest
import botocore.credentials
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

FAULTS = ("slowdown", "internal", "reset", "latency")
_ERRORS = {
    "slowdown": (503, "SlowDown"),
    "internal": (500, "InternalError"),
}
# hop-by-hop headers, and those aiohttp computes itself from the body it sends
_REQUEST_SKIP = {
    "connection", "keep-alive", "transfer-encoding", "content-length", "te",
    "proxy-authorization", "proxy-connection",
}  # fmt: skip
_SIGNATURE = {"authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256"}
_RESPONSE_SKIP = {"connection", "keep-alive", "transfer-encoding", "content-length", "date"}


@dataclass
class FaultStats:
    requests: int = 0
    injected: Counter[str] = field(default_factory=Counter)
    # method, path and query, User-Agent, Proxy-Authorization
    log: list[tuple[str, str, str, str]] = field(default_factory=list)
    timeline: list[tuple[float, bool]] = field(default_factory=list)  # (monotonic, throttled)

    @property
    def faults(self) -> int:
        return sum(self.injected.values())


class FaultProxy:
    """Use as a context manager: ``with FaultProxy(upstream, rate=0.05, seed=1) as p: p.url``."""

    def __init__(
        self,
        upstream: str,
        *,
        rate: float = 0.05,
        seed: int = 0,
        faults: tuple[str, ...] = FAULTS,  # drawn uniformly; repeat a name to weight it
        latency: tuple[float, float] = (0.05, 0.3),
        tls: ssl.SSLContext | None = None,
        resign: tuple[str, str] | None = None,  # the upstream's (access key, secret key)
    ) -> None:
        unknown = set(faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults: {sorted(unknown)}")
        self.upstream = upstream.rstrip("/")
        self.rate = rate
        self.faults = faults
        self.latency = latency
        self.tls = tls
        self.resign = resign
        self.stats = FaultStats()
        self.limit: float | None = None  # requests per second served; above: 503 SlowDown
        self.burst = 1.0  # seconds of requests the limit's token bucket holds
        self._next_free = 0.0  # the limit's token bucket: when the next request is in time
        self._rng = random.Random(seed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="faultproxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=30):
            raise RuntimeError("fault proxy did not start")
        if self._error is not None:
            raise RuntimeError("fault proxy failed to start") from self._error

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and self._stop is not None and thread is not None:
            loop.call_soon_threadsafe(self._stop.set)
            thread.join(timeout=30)
        self._thread = None

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start() if it happened before ready
            self._error = exc
            self._ready.set()
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        connector = aiohttp.TCPConnector(limit=256)
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(
            connector=connector, timeout=timeout, auto_decompress=False
        ) as session:
            self._session = session
            app = web.Application(client_max_size=1 << 30)
            app.router.add_route("*", "/{tail:.*}", self._handle)
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await runner.setup()
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
            site = web.SockSite(runner, sock, ssl_context=self.tls)
            await site.start()
            self._ready.set()
            try:
                await self._stop.wait()
            finally:
                await runner.cleanup()

    # -- one request -----------------------------------------------------------------------
    def _draw(self, now: float) -> str | None:
        self.stats.requests += 1  # only the proxy's loop thread touches the stats and RNG
        limit = self.limit
        if limit is not None:
            start = max(self._next_free, now - self.burst)
            if start > now:
                self.stats.injected["slowdown"] += 1
                return "slowdown"
            self._next_free = start + 1.0 / limit
        if self._rng.random() >= self.rate:
            return None
        fault = self._rng.choice(self.faults)
        self.stats.injected[fault] += 1
        return fault

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        path = _origin_form(request.raw_path)
        self.stats.log.append((
            request.method, path, request.headers.get("User-Agent", ""),
            request.headers.get("Proxy-Authorization", ""),
        ))  # fmt: skip
        now = time.monotonic()
        fault = self._draw(now)
        self.stats.timeline.append((now, fault == "slowdown"))
        if fault in _ERRORS:
            status, code = _ERRORS[fault]
            xml = f"<Error><Code>{code}</Code><Message>injected</Message></Error>"
            return web.Response(status=status, body=xml.encode(), content_type="application/xml")
        if fault == "reset":
            transport = request.transport
            if transport is not None:
                sock = transport.get_extra_info("socket")
                if sock is not None:  # RST rather than FIN: a connection reset by peer
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                transport.abort()
            return web.Response(status=500)  # never sent: the connection is gone
        if fault == "latency":
            await asyncio.sleep(self._rng.uniform(*self.latency))
        return await self._forward(request, body)

    async def _forward(self, request: web.Request, body: bytes) -> web.StreamResponse:
        headers = CIMultiDict(
            (k, v) for k, v in request.headers.items() if k.lower() not in _REQUEST_SKIP
        )
        path = _origin_form(request.raw_path)
        if self.resign is not None:
            headers = self._resigned(request, path, headers, body)
        url = URL(self.upstream + path, encoded=True)
        async with self._session.request(
            request.method,
            url,
            headers=headers,
            data=body if body else None,
            skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
            allow_redirects=False,
        ) as upstream:
            payload = await upstream.read()
            out_headers = CIMultiDict(
                (k, v) for k, v in upstream.headers.items() if k.lower() not in _RESPONSE_SKIP
            )
            if request.method == "HEAD":  # no body, but the object's Content-Length
                length = upstream.headers.get("Content-Length")
                if length is not None:
                    out_headers["Content-Length"] = length
                response = web.StreamResponse(status=upstream.status, headers=out_headers)
                await response.prepare(request)
                await response.write_eof()
                return response
            return web.Response(status=upstream.status, headers=out_headers, body=payload)

    def _resigned(
        self, request: web.Request, path: str, headers: CIMultiDict[str], body: bytes
    ) -> CIMultiDict[str]:
        assert self.resign is not None
        scope = headers.get("Authorization", "").split("Credential=")[-1].split("/")
        region = scope[2] if len(scope) > 2 else "us-east-1"
        kept = {k: v for k, v in headers.items() if k.lower() not in _SIGNATURE}
        url = f"http://{headers.get('Host', '')}{path}"
        signed = botocore.awsrequest.AWSRequest(request.method, url, kept, body)
        credentials = botocore.credentials.Credentials(*self.resign)
        botocore.auth.S3SigV4Auth(credentials, "s3", region).add_auth(signed)
        return CIMultiDict(signed.headers.items())


def _origin_form(target: str) -> str:
    """The path and query of a request target, also when a client sent it to us as a proxy."""
    if target.startswith(("http://", "https://")):
        return URL(target, encoded=True).raw_path_qs
    return target
