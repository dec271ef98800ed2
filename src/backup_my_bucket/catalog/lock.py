"""The catalog lock: a lease that snapshot and gc hold, and that means it.

The lock is one small JSON document (``lock.json``) in the catalog. Taking it is a
compare-and-swap against what was read: create it if absent, or replace a stale one (expired,
unreadable, or left by a process of this host that is no longer running) only if it is still
the one that was read. How the swap is made atomic depends on where the catalog lives (a
local directory: link and rename; S3: conditional writes where the server honours them,
``If-None-Match: *`` and ``If-Match: <etag>``, else a write read back after a pause).

The holder renews the lease every TTL/3 the same way (``If-Match`` its own last write). A
holder whose renewal finds another holder, or whose lease ran out without a renewal, has
*lost* the lock: :meth:`Lease.check`, called before every destructive step (each batch of
gc's deletions, its catalog removals, a snapshot's publish), raises :class:`Locked` (exit 11)
and the work stops there. ``check`` also reads the lock again, so a lock taken away between
two renewals is noticed before the next step, not only at the next renewal.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from ..clock import Clock
from ..errors import BackupError, Locked
from ..units import format_time

LOCK_TTL = timedelta(minutes=10)
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LockInfo:
    token: str
    purpose: str
    owner: str
    acquired: datetime
    expires: datetime
    host: str | None = None  # the holder's hostname and pid (None in locks of older versions)
    pid: int | None = None

    def dumps(self) -> bytes:
        return json.dumps(
            {
                "token": self.token,
                "purpose": self.purpose,
                "owner": self.owner,
                "acquired": format_time(self.acquired),
                "expires": format_time(self.expires),
                "host": self.host,
                "pid": self.pid,
            }
        ).encode()

    @classmethod
    def loads(cls, raw: bytes) -> LockInfo | None:
        try:
            data = json.loads(raw)
            return cls(
                token=data["token"],
                purpose=data["purpose"],
                owner=data["owner"],
                acquired=datetime.fromisoformat(data["acquired"]),
                expires=datetime.fromisoformat(data["expires"]),
                host=data.get("host") if isinstance(data.get("host"), str) else None,
                pid=data.get("pid") if type(data.get("pid")) is int else None,
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None  # an unreadable lock is treated as stale

    @classmethod
    def new(cls, purpose: str, now: datetime, ttl: timedelta) -> LockInfo:
        host = socket.gethostname()
        pid = os.getpid()
        return cls(secrets.token_hex(8), purpose, f"{host}:{pid}", now, now + ttl, host, pid)


@dataclass(frozen=True, slots=True)
class LockState:
    """``lock.json`` as read: its content (None when absent or unreadable), whether it
    exists, and the tag a compare-and-swap checks against (the ETag on S3)."""

    info: LockInfo | None
    exists: bool
    tag: str | None = None


ABSENT = LockState(None, False)


class LockStore(Protocol):
    """What a catalog provides for its lock (see LocalCatalog and S3Catalog)."""

    location: str
    clock: Clock

    async def _read_lock(self) -> LockState: ...

    async def _swap_lock(self, info: LockInfo, expect: LockState) -> LockState | None:
        """Write ``info`` if the lock is still ``expect``; the new state, or None when
        another holder got there first."""
        ...

    async def _delete_lock(self, info: LockInfo) -> None: ...

    def _holder_gone(self, lock: LockInfo) -> bool: ...


async def kept_after_pause(store: LockStore, info: LockInfo) -> LockState | None:
    """After a write that cannot be made atomic: the lock is ours only if our token survives
    a pause (another process writing at the same moment would have replaced it)."""
    await asyncio.sleep(0.05)
    after = await store._read_lock()
    return after if after.info is not None and after.info.token == info.token else None


class Lease:
    """A held catalog lock. Call :meth:`check` before every destructive step."""

    def __init__(self, store: LockStore, info: LockInfo, state: LockState, ttl: timedelta):
        self._store = store
        self.info = info
        self._state = state
        self._ttl = ttl
        self.lost: str | None = None  # why the lock is no longer ours
        self._confirming: asyncio.Task[None] | None = None

    async def check(self, step: str = "its next step") -> None:
        """Raise Locked (exit 11) unless the lock is still ours: not taken over, not expired.

        Concurrent calls share one read of the lock."""
        if self.lost is None:
            task = self._confirming
            if task is None or task.done():
                task = self._confirming = asyncio.ensure_future(self._confirm())
            await asyncio.shield(task)
        if self.lost is not None:
            raise Locked(
                f"lost the catalog lock of {self._store.location}: {self.lost}; "
                f"stopped before {step}",
                hint="nothing after that step was done; rerun when the other holder is "
                "finished (a rerun finishes the job)",
            )

    async def _confirm(self) -> None:
        if self._store.clock.now() >= self.info.expires:
            self.lost = f"its lease ran out at {format_time(self.info.expires)} (not renewed)"
            return
        try:
            current = await self._store._read_lock()
        except (BackupError, OSError) as exc:  # cannot tell: keep going until the lease ends
            log.warning("could not read the catalog lock of %s: %s", self._store.location, exc)
            return
        if current.info is None or current.info.token != self.info.token:
            self.lost = _taken_by(current)

    async def renew(self) -> None:
        renewed = dataclasses.replace(self.info, expires=self._store.clock.now() + self._ttl)
        state = await self._store._swap_lock(renewed, self._state)
        if state is None:
            self.lost = _taken_by(await self._store._read_lock())
            return
        self.info, self._state = renewed, state

    async def keep_renewed(self) -> None:
        while self.lost is None:
            await asyncio.sleep(self._ttl.total_seconds() / 3)
            try:
                await self.renew()
            except (BackupError, OSError) as exc:  # the lease ends by itself if this goes on
                log.warning("could not renew the catalog lock of %s: %s", self._store.location, exc)


def _taken_by(current: LockState) -> str:
    if current.info is not None:
        held = current.info
        return f"{held.purpose} ({held.owner}, since {format_time(held.acquired)}) holds it now"
    return "it was removed or replaced" if not current.exists else "it was overwritten"


@contextlib.asynccontextmanager
async def hold(store: LockStore, purpose: str, ttl: timedelta = LOCK_TTL) -> AsyncIterator[Lease]:
    """Take the lock (Locked, exit 11, when another holder has it), renew it in the
    background, release it at the end. Yields the :class:`Lease`."""
    now = store.clock.now()
    info = LockInfo.new(purpose, now, ttl)
    current = await store._read_lock()
    held = current.info
    if held is not None and held.expires > now:
        if not store._holder_gone(held):
            raise Locked(
                f"the catalog {store.location} is locked by {held.purpose} "
                f"({held.owner}, since {format_time(held.acquired)})",
                hint="wait for it to finish; the lock expires at "
                f"{format_time(held.expires)} if its holder stopped",
            )
        log.warning(
            "taking over the catalog lock of %s: its holder, %s (%s), is no longer running",
            store.location,
            held.purpose,
            held.owner,
        )
    state = await store._swap_lock(info, current)
    if state is None:
        raise Locked(
            f"the catalog {store.location} was locked by another process just now",
            hint="wait for it to finish",
        )
    lease = Lease(store, info, state, ttl)
    renewer = asyncio.create_task(lease.keep_renewed())
    try:
        yield lease
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer
        if lease.lost is None:
            with contextlib.suppress(BackupError, OSError):
                await store._delete_lock(lease.info)
