"""The state one CLI invocation shares between its commands: settings, output, stores."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from ..clock import SYSTEM_CLOCK, Clock
from ..storage.protocol import ObjectStore
from ..storage.s3 import S3Config, S3Store
from .output import Output

T = TypeVar("T")
Side = Literal["source", "backup"]
DEFAULT_WORKERS = 32


@dataclass(frozen=True, slots=True)
class Settings:
    """The global options, after flags, environment and config file were merged."""

    endpoint_url: str | None = None
    source_endpoint_url: str | None = None
    backup_endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None
    catalog: str | None = None
    workers: int = DEFAULT_WORKERS
    json: bool = False
    debug: bool = False


class App:
    """Opens one S3 client per distinct endpoint and closes them all when the command ends."""

    def __init__(self, settings: Settings, output: Output, clock: Clock = SYSTEM_CLOCK) -> None:
        self.settings = settings
        self.output = output
        self.clock = clock
        self._stores: dict[S3Config, S3Store] = {}

    def s3_config(self, side: Side) -> S3Config:
        s = self.settings
        endpoint = (s.source_endpoint_url if side == "source" else s.backup_endpoint_url) or (
            s.endpoint_url
        )
        return S3Config(
            endpoint_url=endpoint,
            region=s.region,
            profile=s.profile,
            # listing tasks run beside the workers; the pool must never be the bottleneck
            max_pool_connections=s.workers + 16,
        )

    async def store(self, side: Side) -> ObjectStore:
        config = self.s3_config(side)
        store = self._stores.get(config)
        if store is None:
            store = S3Store(config)
            await store.open()
            self._stores[config] = store
        return store

    def same_endpoint(self) -> bool:
        return self.s3_config("source") == self.s3_config("backup")

    def run(self, main: Callable[[], Awaitable[T]]) -> T:
        """Run one command's coroutine; always close the clients."""

        async def wrapper() -> T:
            try:
                return await main()
            finally:
                for store in self._stores.values():
                    await store.close()
                self._stores.clear()

        return asyncio.run(wrapper())
