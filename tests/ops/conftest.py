"""Plans on the in-memory store with a manual clock."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from backup_my_bucket.catalog import LocalCatalog
from backup_my_bucket.clock import ManualClock
from backup_my_bucket.model import ObjectVersion, VersionRef
from backup_my_bucket.ops.events import EventLog
from backup_my_bucket.ops.history import History
from backup_my_bucket.ops.metrics import PlanMetrics
from backup_my_bucket.ops.notify import Notifier
from backup_my_bucket.ops.plans import Plan, parse_plan
from backup_my_bucket.ops.runner import Connection, PlanRunner
from backup_my_bucket.storage.iterate import iter_versions
from backup_my_bucket.storage.memory import MemoryStore
from backup_my_bucket.storage.protocol import ObjectStore

from ..conftest import is_data

T0 = datetime(2026, 3, 1, tzinfo=UTC)


class GatedStore(MemoryStore):
    """A MemoryStore whose copies stop after ``pass_copies`` until ``gate`` is set: a sync
    held mid-way, deterministically."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__(clock)
        self.gate = asyncio.Event()
        self.gate.set()
        self.pass_copies = 0
        self.copies = 0
        self.held = asyncio.Event()  # set when a copy waits at the gate

    def close_gate(self, after: int) -> None:
        self.gate.clear()
        self.held.clear()
        self.pass_copies, self.copies = after, 0

    async def copy(self, source: VersionRef, bucket: str, key: str, **kw: Any) -> str:
        self.copies += 1
        if self.copies > self.pass_copies and not self.gate.is_set():
            self.held.set()
            await self.gate.wait()
        return await super().copy(source, bucket, key, **kw)


@dataclass
class World:
    """Buckets, catalog, history and a runner for plans, all in memory or in tmp_path."""

    tmp: Path
    clock: ManualClock
    store: GatedStore
    history: History
    events: list[dict[str, Any]] = field(default_factory=list)
    broken: set[str] = field(default_factory=set)  # plans whose source bucket is "gone"

    def catalog_dir(self, backup: str = "s3://bak") -> Path:
        """One catalog per backup location, as the tool keeps them (each in its location)."""
        return self.tmp / "catalog" / backup.removeprefix("s3://").strip("/").replace("/", "_")

    def catalog(self, backup: str = "s3://bak") -> LocalCatalog:
        return LocalCatalog(self.catalog_dir(backup), self.clock)

    @contextlib.asynccontextmanager
    async def connect(self, plan: Plan) -> AsyncIterator[Connection]:
        source: ObjectStore = MemoryStore(self.clock) if plan.name in self.broken else self.store
        catalog = self.catalog(str(plan.backup))
        yield Connection(backup=self.store, catalog=catalog, source=source, workers=4)

    def plan(self, name: str, **table: Any) -> Plan:
        table.setdefault("source", "s3://src")
        table.setdefault("backup", "s3://bak")
        return parse_plan(name, table)

    def runner(self, plans: list[Plan], *, see_more: str = "bmb") -> PlanRunner:
        metrics = PlanMetrics(plans, self.history)
        return PlanRunner(
            self.connect,
            self.history,
            self.clock,
            notifier=Notifier(self.clock, see_more=see_more),
            metrics=metrics,
            events=EventLog(_Collect(self.events), self.clock),
        )

    async def fill(self, bucket: str, count: int, prefix: str = "k") -> None:
        for i in range(count):
            await self.store.put(bucket, f"{prefix}{i:05d}", f"data {i}".encode())

    async def current(self, bucket: str) -> dict[str, ObjectVersion]:
        live: dict[str, ObjectVersion] = {}
        async for v in iter_versions(self.store, bucket):
            if v.is_latest and not v.is_delete_marker and is_data(v.key):
                live[v.key] = v
        return live


class _Collect:
    """A text stream that keeps the JSON events written to it."""

    def __init__(self, into: list[dict[str, Any]]) -> None:
        self.into = into

    def write(self, text: str) -> int:
        self.into.extend(json.loads(line) for line in text.splitlines() if line)
        return len(text)

    def flush(self) -> None:
        pass


@pytest.fixture
async def world(tmp_path: Path) -> World:
    clock = ManualClock(T0)
    store = GatedStore(clock)
    for bucket in ("src", "bak"):
        await store.create_bucket(bucket)
    await store.set_versioning("bak", True)
    return World(tmp_path, clock, store, History(tmp_path / "state"))


async def until(
    condition: Callable[[], bool | Awaitable[bool]], what: str = "", within: float = 10.0
) -> None:
    """Wait (real time, briefly) until ``condition`` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = condition()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await asyncio.sleep(0.005)
