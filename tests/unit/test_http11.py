"""The fast path's HTTP/1.1 client against a scripted server: framing, reuse, failures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from backup_my_bucket.storage.s3.http11 import BadResponse, BodyTooLarge, Http11Pool

Answer = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes], Awaitable[bool]]
"""Writes the answer to one request (its head given); False closes the connection."""


class Scripted:
    """A server that answers each request with the next script step (the last one repeats)."""

    def __init__(self, steps: list[Answer]) -> None:
        self.steps = steps
        self.requests: list[bytes] = []
        self.connections = 0
        self.open_now = 0
        self.most_open = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Scripted:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                step = self.steps[min(len(self.requests), len(self.steps) - 1)]
                self.requests.append(head)
                if not await step(reader, writer, head):
                    return
        finally:
            self.open_now -= 1
            writer.close()


def answer(raw: bytes, *, keep: bool = True, pieces: int = 1, pause: float = 0.0) -> Answer:
    async def write(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes
    ) -> bool:
        size = max(1, -(-len(raw) // pieces))
        for start in range(0, len(raw), size):
            writer.write(raw[start : start + size])
            await writer.drain()
            if pause:
                await asyncio.sleep(pause)
        return keep

    return write


def ok(body: bytes, extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


HEADERS = {"host": "example", "x-amz-date": "20261130T000000Z"}


@pytest.fixture
async def pool() -> AsyncIterator[Http11Pool]:
    made = Http11Pool(8, read_timeout=0.3)
    yield made
    await made.close()


async def get(pool: Http11Pool, server: Scripted, method: str = "GET") -> tuple[int, bytes]:
    status, body, _ = await pool.request(method, "127.0.0.1", server.port, "/b/k?x=1", HEADERS)
    return status, body


async def test_content_length_answers_reuse_one_connection(pool: Http11Pool) -> None:
    async with Scripted([answer(ok(b"<a>1</a>", 'ETag: "e"\r\nX-Amz-Meta-A: 1\r\n'))]) as s:
        status, body, headers = await pool.request("GET", "127.0.0.1", s.port, "/b/k", HEADERS)
        assert (status, body) == (200, b"<a>1</a>")
        assert headers["etag"] == '"e"' and headers["x-amz-meta-a"] == "1"
        assert await get(pool, s) == (200, b"<a>1</a>")
    assert s.connections == 1 and pool.connections_made == 1
    assert s.requests[0].startswith(b"GET /b/k HTTP/1.1\r\nhost: example\r\n")


async def test_chunked_answer_in_small_pieces(pool: Http11Pool) -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nTrailer: x\r\n\r\n"
    )
    async with Scripted([answer(raw, pieces=len(raw), pause=0.001)]) as s:
        assert await get(pool, s) == (200, b"hello, world")
        assert await get(pool, s) == (200, b"hello, world")
    assert s.connections == 1


async def test_head_has_no_body_whatever_its_length(pool: Http11Pool) -> None:
    async with Scripted([answer(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")]) as s:
        assert await get(pool, s, "HEAD") == (200, b"")
        assert await get(pool, s, "HEAD") == (200, b"")
    assert s.connections == 1


async def test_interim_answer_then_the_real_one(pool: Http11Pool) -> None:
    async with Scripted([answer(b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"done"))]) as s:
        assert await get(pool, s) == (200, b"done")


async def test_put_sends_a_zero_length(pool: Http11Pool) -> None:
    async with Scripted([answer(ok(b""))]) as s:
        assert await get(pool, s, "PUT") == (200, b"")
    assert b"content-length: 0\r\n" in s.requests[0]


async def test_connection_close_and_http10_are_not_reused(pool: Http11Pool) -> None:
    async with Scripted([
        answer(ok(b"a", "Connection: close\r\n"), keep=False),
        answer(b"HTTP/1.0 200 OK\r\n\r\nuntil the end", keep=False),
        answer(ok(b"c")),
    ]) as s:  # fmt: skip
        assert await get(pool, s) == (200, b"a")
        assert await get(pool, s) == (200, b"until the end")  # framed by the close
        assert await get(pool, s) == (200, b"c")
    assert s.connections == 3


async def test_a_connection_closed_while_idle_is_replaced_without_an_error(
    pool: Http11Pool,
) -> None:
    async def close_unanswered(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes
    ) -> bool:
        return False  # the server had dropped it: the request is never read

    async with Scripted([answer(ok(b"1")), close_unanswered, answer(ok(b"2"))]) as s:
        assert await get(pool, s) == (200, b"1")
        assert await get(pool, s) == (200, b"2")
    assert s.connections == 2 and len(s.requests) == 3


async def test_an_answer_cut_short_fails_and_is_not_sent_again(pool: Http11Pool) -> None:
    cut = answer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n1234", keep=False)
    async with Scripted([answer(ok(b"1")), cut]) as s:
        await get(pool, s)
        with pytest.raises(BadResponse, match="before the answer was complete"):
            await get(pool, s)
    assert len(s.requests) == 2


@pytest.mark.parametrize(
    "raw",
    [
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n folded: no\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n12",
    ],
)
async def test_malformed_answers_fail(pool: Http11Pool, raw: bytes) -> None:
    async with Scripted([answer(raw), answer(ok(b"1"))]) as s:
        with pytest.raises(BadResponse):
            await get(pool, s)
        assert await get(pool, s) == (200, b"1")  # on a new connection
    assert s.connections == 2


async def test_silence_is_a_timeout_and_the_connection_is_dropped(pool: Http11Pool) -> None:
    async def silent(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes
    ) -> bool:
        await asyncio.sleep(5)
        return False

    async with Scripted([silent, answer(ok(b"later"))]) as s:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError):
            await get(pool, s)
        assert loop.time() - started < 2.0
        assert await get(pool, s) == (200, b"later")
    assert s.connections == 2


async def test_a_slow_but_steady_answer_is_not_a_timeout(pool: Http11Pool) -> None:
    body = b"x" * 20
    async with Scripted([answer(ok(body), pieces=20, pause=0.05)]) as s:  # 1 s, 0.05 s apart
        assert await get(pool, s) == (200, body)


async def test_a_cancelled_request_leaves_no_connection_behind(pool: Http11Pool) -> None:
    async def late(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> bool:
        await asyncio.sleep(0.2)
        writer.write(ok(b"stale"))
        return True

    async with Scripted([late, answer(ok(b"fresh"))]) as s:
        task = asyncio.create_task(get(pool, s))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await get(pool, s) == (200, b"fresh")  # never the stale answer
    assert s.connections == 2


async def test_at_most_limit_requests_at_once() -> None:
    pool = Http11Pool(2)
    try:
        async with Scripted([answer(ok(b"k"), pieces=2, pause=0.02)]) as s:
            results = await asyncio.gather(*(get(pool, s) for _ in range(8)))
        assert results == [(200, b"k")] * 8
        assert s.most_open <= 2 and pool.connections_made <= 2
    finally:
        await pool.close()


async def test_a_body_goes_with_its_length_and_the_connection_stays_in_step(
    pool: Http11Pool,
) -> None:
    bodies: list[bytes] = []

    async def echo_length(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes
    ) -> bool:
        length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
        bodies.append(await reader.readexactly(length))
        writer.write(ok(str(length).encode()))
        return True

    payload = bytes(range(256)) * 300
    async with Scripted([echo_length]) as s:
        for body in (payload, b"", b"x"):
            status, answer_body, _ = await pool.request(
                "PUT", "127.0.0.1", s.port, "/b/k", HEADERS, body=body
            )
            assert (status, answer_body) == (200, str(len(body)).encode())
    assert bodies == [payload, b"", b"x"] and s.connections == 1


@pytest.mark.parametrize(
    "raw",
    [
        ok(b"y" * 101),  # the length says so at once
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"40\r\n"
        + b"z" * 64
        + b"\r\n"
        + b"40\r\n"
        + b"z" * 64
        + b"\r\n0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\n\r\n" + b"w" * 101,  # framed by the close
    ],
)
async def test_a_body_over_the_limit_fails_and_its_connection_is_dropped(
    pool: Http11Pool, raw: bytes
) -> None:
    async with Scripted([answer(raw, keep=False), answer(ok(b"small"))]) as s:
        with pytest.raises(BodyTooLarge):
            await pool.request("GET", "127.0.0.1", s.port, "/b/k", HEADERS, max_body=100)
        status, body, _ = await pool.request(
            "GET", "127.0.0.1", s.port, "/b/k", HEADERS, max_body=100
        )
        assert (status, body) == (200, b"small")
    assert s.connections == 2 and len(s.requests) == 2
