"""The state one CLI invocation shares between its commands: settings, output, stores."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import platformdirs

from ..catalog.catalog import APP_NAME, Catalog, LocalCatalog, S3Catalog, default_catalog_dir
from ..clock import SYSTEM_CLOCK, Clock
from ..engine.progress import Progress
from ..errors import Interrupted, Terminated, UsageError
from ..model import S3Url
from ..ops.signals import stop_on_signals
from ..storage.protocol import ObjectStore
from ..storage.s3 import S3Config, S3Store
from .output import Output
from .progress import make_progress

log = logging.getLogger(__name__)
T = TypeVar("T")
RERUN = "rerun the same command to continue: finished work is kept"
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
    fast_path: bool = True
    access_key: str | None = None  # not an option: for the embedded demo server only
    secret_key: str | None = None


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
            access_key=s.access_key,
            secret_key=s.secret_key,
            # listing tasks run beside the workers; the pool must never be the bottleneck
            max_pool_connections=s.workers + 16,
            fast_path=s.fast_path,
        )

    async def store(self, side: Side) -> ObjectStore:
        config = self.s3_config(side)
        store = self._stores.get(config)
        if store is None:
            store = S3Store(config)
            await store.open()
            self._stores[config] = store
        return store

    def catalog_url(self) -> S3Url | None:
        """The catalog's S3 location when --catalog names one."""
        location = self.settings.catalog
        return S3Url.parse(location) if location and location.startswith("s3://") else None

    async def catalog(self, backup: S3Url | None) -> Catalog:
        """The catalog from --catalog, else the default one of the backup location.

        Without either, a user with a single catalog on this machine gets that one.
        """
        catalog = await self._catalog(backup)
        log.info("catalog: %s", catalog.location)
        return catalog

    async def _catalog(self, backup: S3Url | None) -> Catalog:
        url = self.catalog_url()
        if url is not None:
            cache = Path(platformdirs.user_cache_dir(APP_NAME)) / "index-cache"
            return S3Catalog(await self.store("backup"), url, cache, self.clock)
        if self.settings.catalog:
            return LocalCatalog(Path(self.settings.catalog), self.clock)
        if backup is not None:
            return LocalCatalog(
                default_catalog_dir(self.s3_config("backup").endpoint_url, backup), self.clock
            )
        found = known_catalogs()
        if len(found) == 1:
            return LocalCatalog(found[0], self.clock)
        if not found:
            raise UsageError(
                "no catalog found on this machine",
                hint="pass --backup s3://bucket (its default catalog) or --catalog PATH|s3://...",
            )
        raise UsageError(
            "several catalogs exist on this machine: " + ", ".join(str(p) for p in found[:5]),
            hint="say which with --backup s3://bucket or --catalog PATH",
        )

    def progress(self) -> Progress:
        """Progress on stderr for people; nothing for machines (--json) or pipes."""
        return make_progress(self.output)

    def same_endpoint(self) -> bool:
        return self.s3_config("source") == self.s3_config("backup")

    def run(self, main: Callable[[], Awaitable[T]]) -> T:
        """Run one command's coroutine; always close the clients.

        SIGTERM (systemd, Kubernetes, CI) stops it as Ctrl-C does: the command's task is
        cancelled, so every ``finally`` runs (a restore's journal is flushed and synced, a
        lock released), then :class:`Terminated` (exit 143); Ctrl-C gives
        :class:`Interrupted` (exit 130). A rerun continues where it stopped."""
        stopped: list[str] = []

        async def wrapper() -> T:
            task = asyncio.current_task()
            assert task is not None

            def stop(name: str) -> None:
                if not stopped:  # a second signal must not cancel the clean-up too
                    log.info("%s received: stopping", name)
                    stopped.append(name)
                    task.cancel()

            try:
                with stop_on_signals(stop, (signal.SIGTERM,)):
                    return await main()
            finally:
                await self.aclose()

        try:
            return asyncio.run(wrapper())
        except asyncio.CancelledError:
            if not stopped:
                raise
            raise Terminated(f"stopped by {stopped[0]}", hint=RERUN) from None
        except KeyboardInterrupt:
            raise Interrupted("interrupted", hint=RERUN) from None

    async def aclose(self) -> None:
        """Close the clients this app opened (``run`` does it; long-lived callers too)."""
        for store in self._stores.values():
            await store.close()
        self._stores.clear()


def known_catalogs() -> list[Path]:
    """Default catalog directories that hold at least one snapshot."""
    root = Path(platformdirs.user_data_dir(APP_NAME)) / "catalogs"
    return sorted(p.parent for p in root.glob("*/*/snapshots") if any(p.glob("*.json")))
