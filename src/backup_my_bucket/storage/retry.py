"""Retrying one unit of work (a page, a copy) on transient storage errors.

botocore already retries each request (adaptive mode); this retries the whole unit, which also
covers what botocore cannot: a multipart copy whose part failed, or a page whose connection
dropped mid-body. Permission, credential and not-found errors are never retried.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TypeVar

from ..errors import (
    AccessDenied,
    BackupError,
    EndpointUnreachable,
    InvalidCredentials,
    StorageError,
)

R = TypeVar("R")

RETRY_GATE: ContextVar[Callable[[], Awaitable[None]] | None] = ContextVar(
    "backup_my_bucket_retry_gate", default=None
)
"""What a request's retry waits for before it is sent, in the context that sends it: set by
whatever paces those requests (a cluster unit's share of its destination's limit, around
each of its items: engine/cluster_worker.py), so a retried request is paced as a new one.
The fast path asks it before each attempt but the first; botocore's own retries do not."""


def is_transient(exc: BackupError) -> bool:
    """Worth another try: a storage error that is not about permissions or credentials, nor
    an endpoint that stayed unreachable through the request layer's own retries (8 attempts
    over about half a minute: another round would only multiply that wait)."""
    return isinstance(exc, StorageError) and not isinstance(
        exc, AccessDenied | InvalidCredentials | EndpointUnreachable
    )


def is_systemic(exc: BackupError) -> bool:
    """Fails every item alike, so it ends the whole run rather than one item: the endpoint
    stopped answering (after botocore's and :func:`retrying`'s own tries), or the
    credentials stopped working (an expired session)."""
    return isinstance(exc, EndpointUnreachable | InvalidCredentials)


async def retrying(
    work: Callable[[], Awaitable[R]],
    *,
    attempts: int = 3,
    base_delay: float = 0.25,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> R:
    """Run ``work``; on a transient error, back off exponentially and run it again."""
    for attempt in range(attempts):
        try:
            return await work()
        except BackupError as exc:
            if attempt == attempts - 1 or not is_transient(exc):
                raise
            await sleep(base_delay * 2**attempt)
    raise AssertionError("unreachable")
