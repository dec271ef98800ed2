"""The connection under S3Store: its botocore client and fast path, the first-request probe,
error translation, throttle counting, and the bucket facts a command may reuse."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Self, TypeVar

import botocore.exceptions

from . import lazytls  # noqa: F401  (first: aiohttp without its TLS contexts' certificates)
from .client import open_client, probe_endpoint
from .config import S3Config
from .errors import translate_error
from .fastpath import _FastPath
from .hooks import _count_throttles

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

T = TypeVar("T")


class Connection:
    """One store's client and fast path, opened and closed together; every request goes
    through :meth:`_call`, which reaches the endpoint first and translates errors."""

    def __init__(self, config: S3Config | None = None) -> None:
        self.config = config or S3Config()
        self._client: S3Client | None = None
        self._fast: _FastPath | None = None
        self._exit_stack = contextlib.AsyncExitStack()
        self._reached = True  # or not yet: set when opened (open_client says)
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
        if self._client is None:
            self._client, self._fast, probe = await open_client(self.config, self._exit_stack)
            self._reached = not probe
            _count_throttles(self._client.meta.events, self._count_throttle)

    def _count_throttle(self) -> None:
        self._throttled += 1

    @property
    def throttled(self) -> int:
        """Throttled answers so far (503 SlowDown...), botocore's and the fast path's: what
        the copy pools back off on (engine/pace.py)."""
        return self._throttled + (self._fast.throttled if self._fast is not None else 0)

    async def close(self) -> None:
        self._client = None
        self._fast = None
        await self._exit_stack.aclose()

    @property
    def client(self) -> S3Client:
        if self._client is None:
            raise RuntimeError(f"{type(self).__name__} is not open")
        return self._client

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

    async def _reach(self) -> None:
        """Before the first request: is anything listening at the endpoint? (client.py)"""
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
