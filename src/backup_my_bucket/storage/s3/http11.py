"""A lean HTTP/1.1 client for the fast path's requests: small bodies, keep-alive, no proxy.

aiohttp spends ~0.2 ms of CPU per request on machinery the fast path does not use (a request
object, header multidicts, URL objects, a timer armed on every read): about half of our CPU
per copied object. This client is a plain :class:`asyncio.Protocol` per connection: it writes
the request in one call and parses the answer when its bytes arrive (~0.05 ms per request).

What it does, and nothing more:
- one request at a time per connection, connections kept alive in a pool per origin, at
  most ``limit`` requests in flight across the pool; a request's body (a small PUT) is
  written with its head, framed by Content-Length;
- answers framed by Content-Length, chunked transfer coding, or the end of the connection;
  no body for HEAD, 1xx, 204 and 304 (the framing of RFC 9112, section 6.3); an answer whose
  body would pass ``max_body`` bytes fails with :class:`BodyTooLarge` as soon as its length
  (or its bytes so far) say so, and its connection is closed;
- HTTPS through :mod:`ssl` with the context the caller gives (verification is the caller's);
- a request sent on a kept-alive connection that closes (or fails its TLS) before any byte
  of the answer arrives is sent once more on a new connection (the server had closed it
  while idle: nothing of the request was read);
- a connection idle for ``idle_timeout`` is not reused; an answer whose bytes stop for
  ``read_timeout`` fails with :class:`TimeoutError` (one watchdog per pool, not a timer per
  read); connecting is bounded by ``connect_timeout``.

Every failure is an :class:`OSError` (a cut or malformed answer: :class:`BadResponse`, a
:class:`ConnectionError`; a body over the limit: :class:`BodyTooLarge`) or
:class:`TimeoutError`; :class:`ssl.SSLError` passes through as raised. A connection that
failed, or whose request was cancelled, is closed, never reused.
Proxies are not handled here: the fast path keeps aiohttp for a proxied endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Mapping
from typing import cast

_NO_BODY = frozenset({204, 304})
_MAX_HEAD = 64 * 1024  # an answer's status line and headers


class BadResponse(ConnectionError):
    """The server's bytes are not an HTTP/1.1 answer we can frame, or stop short of one."""


class BodyTooLarge(OSError):
    """An answer's body is larger than the request allowed (``max_body``): not read."""


class _Connection(asyncio.Protocol):
    """One connection: :meth:`exchange` sends a request and waits for its whole answer."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0  # monotonic time it went back to the pool
        self.last_byte = 0.0  # monotonic time of the last bytes received (the watchdog's)
        self.busy = False
        self._waiter: asyncio.Future[tuple[int, bytes, dict[str, str]]] | None = None
        self._buffer = bytearray()
        self._head: tuple[int, dict[str, str]] | None = None
        self._no_body = False
        self._parts: list[bytes] = []
        self._remaining = -1  # bytes of a Content-Length body still to come
        self._until_close = False
        self._max_body: int | None = None
        self._body_size = 0  # bytes of the current answer's body so far
        self.received = False  # any byte of the current answer

    # --- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport, but not always a subclass of asyncio.Transport (uvloop's)
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._until_close and self._head is not None and exc is None:
            self._finish(b"".join(self._parts))  # the answer was framed by the close
            return
        self._fail(exc if isinstance(exc, OSError) else BadResponse(
            "the connection closed before the answer was complete" if self.received
            else "the connection closed before any answer"
        ))  # fmt: skip

    def data_received(self, data: bytes) -> None:
        self.received = True
        self.last_byte = time.monotonic()
        if self._waiter is None or self._waiter.done():
            self.abort()  # bytes nobody asked for: the connection is out of step
            return
        try:
            self._take(data)
        except (BadResponse, BodyTooLarge, ValueError, UnicodeError) as exc:
            failed = exc if isinstance(exc, BadResponse | BodyTooLarge) else BadResponse(str(exc))
            self._fail(failed)
            self.abort()

    def eof_received(self) -> bool | None:
        self.closed = True  # never handed out again; connection_lost follows
        return False  # close the transport: connection_lost frames or fails the answer

    # --- the exchange -------------------------------------------------------------------

    async def exchange(
        self, request: bytes, no_body: bool, max_body: int | None = None
    ) -> tuple[int, bytes, dict[str, str]]:
        assert self.transport is not None
        self._waiter = self._loop.create_future()
        self._no_body = no_body
        self._max_body = max_body
        self._body_size = 0
        self.received = False
        self.last_byte = time.monotonic()
        self.busy = True
        self.transport.write(request)
        try:
            return await self._waiter
        finally:
            self.busy = False
            self._waiter = None

    def abort(self, error: OSError | None = None) -> None:
        if error is not None:
            self._fail(error)
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, error: OSError) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(error)

    def _finish(self, body: bytes) -> None:
        assert self._head is not None
        status, headers = self._head
        self._head = None
        self._parts = []
        self._remaining = -1
        self._until_close = False
        if self._buffer:  # bytes past the answer: nothing was asked for them
            self.abort()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result((status, body, headers))

    def _take(self, data: bytes) -> None:
        if self._head is None:
            self._buffer += data
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > _MAX_HEAD:
                    raise BadResponse("an answer's headers over 64 KiB")
                return
            head = bytes(self._buffer[:end])
            rest = bytes(self._buffer[end + 4 :])
            self._buffer.clear()
            status, headers = _parse_head(head)
            if 100 <= status < 200:  # an interim answer (100 Continue): the real one follows
                if rest:
                    self._take(rest)
                return
            self._head = (status, headers)
            if self._no_body or status in _NO_BODY:
                self._buffer += rest
                self._finish(b"")
                return
            length = headers.get("content-length")
            if "chunked" in headers.get("transfer-encoding", "").lower():
                self._remaining = -2  # chunked: parsed from the buffer
            elif length is not None:
                if not length.isdigit():
                    raise BadResponse(f"Content-Length {length!r}")
                self._remaining = int(length)
                self._count(self._remaining)
            else:
                self._until_close = True
            data = rest
        if self._remaining == -2:
            self._buffer += data
            self._chunks()
        elif self._until_close:
            self._count(len(data))
            self._parts.append(data)
        else:
            if data:
                self._parts.append(data)
                self._remaining -= len(data)
            if self._remaining < 0:
                raise BadResponse("more bytes than the answer's Content-Length")
            if self._remaining == 0:
                self._finish(b"".join(self._parts))

    def _count(self, size: int) -> None:
        """Account ``size`` more bytes of the body (all of them, for a Content-Length)."""
        self._body_size += size
        if self._max_body is not None and self._body_size > self._max_body:
            raise BodyTooLarge(f"an answer's body over {self._max_body} bytes")

    def _chunks(self) -> None:
        """Move whole chunks from the buffer to the body; finish at the last chunk."""
        buffer = self._buffer
        while True:
            line_end = buffer.find(b"\r\n")
            if line_end < 0:
                return
            size_text = bytes(buffer[:line_end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise BadResponse(f"chunk size {size_text[:20]!r}") from None
            if size == 0:  # the last chunk, then trailers up to an empty line
                end = buffer.find(b"\r\n\r\n", line_end)
                if end < 0:
                    return
                del buffer[: end + 4]
                self._finish(b"".join(self._parts))
                return
            start = line_end + 2
            if len(buffer) < start + size + 2:
                return
            if buffer[start + size : start + size + 2] != b"\r\n":
                raise BadResponse("a chunk not followed by CRLF")
            self._count(size)
            self._parts.append(bytes(buffer[start : start + size]))
            del buffer[: start + size + 2]


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """The status and the headers (names in lower case; a repeated name keeps its first
    value, as aiohttp's ``get`` does) of an answer's head."""
    lines = head.decode("utf-8", "surrogateescape").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise BadResponse(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise BadResponse(f"a malformed header line: {line[:80]!r}")
        headers.setdefault(name.lower(), value.strip())
    if parts[0] == "HTTP/1.0" and headers.get("connection", "").lower() != "keep-alive":
        headers.setdefault("connection", "close")
    return int(parts[1]), headers


class Http11Pool:
    """Kept-alive connections per (host, port, TLS), ``limit`` requests in flight at most."""

    def __init__(
        self,
        limit: int,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 120.0,
        idle_timeout: float = 15.0,
    ) -> None:
        self._slots = asyncio.Semaphore(max(1, limit))
        self._idle: dict[tuple[str, int, bool], list[_Connection]] = {}
        self._all: set[_Connection] = set()
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._idle_timeout = idle_timeout
        self._watchdog: asyncio.Task[None] | None = None
        self.connections_made = 0  # tests and benchmarks: how often a connection was opened

    async def request(
        self,
        method: str,
        host: str,
        port: int,
        target: str,
        headers: Mapping[str, str],
        *,
        body: bytes = b"",
        tls: ssl.SSLContext | None = None,
        max_body: int | None = None,
    ) -> tuple[int, bytes, dict[str, str]]:
        """Send a request (``headers`` must hold ``host``; ``body`` goes with a Content-Length);
        the status, the body and the headers (lower-case names) of its answer. An answer's
        body over ``max_body`` bytes raises :class:`BodyTooLarge`."""
        lines = [f"{method} {target} HTTP/1.1\r\n"]
        lines.extend(f"{name}: {value}\r\n" for name, value in headers.items())
        if body or method in ("PUT", "POST"):
            lines.append(f"content-length: {len(body)}\r\n")
        lines.append("\r\n")
        request = "".join(lines).encode("utf-8") + body
        exchange = (request, method == "HEAD", max_body)
        origin = (host, port, tls is not None)
        async with self._slots:
            connection = self._kept(origin)
            if connection is not None:
                try:
                    return await self._exchange(connection, origin, *exchange)
                except (ConnectionError, ssl.SSLError):  # BadResponse is a ConnectionError
                    if connection.received:
                        raise
                    # closed while idle before it read the request: once more, on a new one
            connection = await self._connect(host, port, tls)
            return await self._exchange(connection, origin, *exchange)

    async def _exchange(
        self, connection: _Connection, origin: tuple[str, int, bool], request: bytes,
        no_body: bool, max_body: int | None,
    ) -> tuple[int, bytes, dict[str, str]]:  # fmt: skip
        self._watch()
        try:
            status, body, headers = await connection.exchange(request, no_body, max_body)
        except BaseException:
            connection.abort()
            self._all.discard(connection)
            raise
        if connection.closed or headers.get("connection", "").lower() == "close":
            connection.abort()
            self._all.discard(connection)
        else:
            connection.idle_since = time.monotonic()
            self._idle.setdefault(origin, []).append(connection)
        return status, body, headers

    def _kept(self, origin: tuple[str, int, bool]) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            transport = connection.transport
            if (
                not connection.closed
                and transport is not None
                and not transport.is_closing()
                and now - connection.idle_since < self._idle_timeout
            ):
                return connection
            connection.abort()
            self._all.discard(connection)
        return None

    async def _connect(self, host: str, port: int, tls: ssl.SSLContext | None) -> _Connection:
        loop = asyncio.get_running_loop()
        _, connection = await asyncio.wait_for(
            loop.create_connection(
                lambda: _Connection(loop), host, port,
                ssl=tls, server_hostname=host if tls is not None else None,
            ),
            self._connect_timeout,
        )  # fmt: skip
        self.connections_made += 1
        self._all.add(connection)
        return connection

    def _watch(self) -> None:
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.get_running_loop().create_task(self._watch_reads())

    async def _watch_reads(self) -> None:
        """Fail every answer whose bytes stopped for ``read_timeout``; ends when none waits."""
        step = max(0.05, min(1.0, self._read_timeout / 4))
        while any(c.busy for c in self._all):
            await asyncio.sleep(step)
            now = time.monotonic()
            for connection in [c for c in self._all if c.busy]:
                if now - connection.last_byte > self._read_timeout:
                    connection.abort(TimeoutError(
                        f"no answer for {self._read_timeout:g} s"
                    ))  # fmt: skip

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        for connection in self._all:
            connection.abort()
        self._all.clear()
        self._idle.clear()
