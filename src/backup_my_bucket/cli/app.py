"""The state one CLI invocation shares between its commands: settings, output, stores."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Literal, TypeVar

from ..catalog.catalog import Catalog
from ..catalog.finder import Finder, unmigrated
from ..clock import SYSTEM_CLOCK, Clock
from ..engine.executor import Executor, open_executor
from ..engine.pace import Pace
from ..engine.progress import Progress
from ..engine.versions import require_versioning
from ..errors import Interrupted, Terminated, UsageError
from ..model import S3Url
from ..ops.signals import stop_on_signals
from ..storage.listing import ListingOptions
from ..storage.protocol import MAX_PAGE, ObjectStore
from ..storage.s3 import S3Config
from ..storage.s3.config import FRESH_FOR
from .output import Output
from .progress import make_progress
from .settings import RERUN, Settings

if TYPE_CHECKING:
    from ..storage.s3 import S3Store

log = logging.getLogger(__name__)
T = TypeVar("T")
Side = Literal["source", "backup"]


class App:
    """Opens one S3 client per distinct endpoint and closes them all when the command ends."""

    def __init__(self, settings: Settings, output: Output, clock: Clock = SYSTEM_CLOCK) -> None:
        self.settings = settings
        self.listing = ListingOptions(
            page_size=settings.list_page_size or MAX_PAGE,
            paging=settings.list_paging,
            audit=settings.audit,
            clock=clock,
        )
        self.output = output
        self.clock = clock
        self._stores: dict[S3Config, S3Store] = {}
        self._paces: dict[S3Config, Pace] = {}
        self._executor: Executor | None = None

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
            # listing tasks run beside the copies; the pool must never be the bottleneck
            max_pool_connections=max(s.workers, s.copy_bounds[2]) + 16,
            fast_path=s.fast_path,
            addressing_style=s.addressing_style,
            bucket_facts_ttl=FRESH_FOR,
        )

    async def store(self, side: Side) -> ObjectStore:
        config = self.s3_config(side)
        store = self._stores.get(config)
        if store is None:
            from ..storage.s3 import S3Store  # botocore and aiohttp: only once a store opens

            store = S3Store(config)
            await store.open()
            self._stores[config] = store
        return store

    async def executor(self) -> Executor:
        """Where the engines' work units run (--executor), connected on first use."""
        if self._executor is None:
            self._executor = await open_executor(self.settings.executor)
            log.info("executor: %s", self.settings.executor)
        return self._executor

    async def finder(self) -> Finder:
        """Opens catalogs; S3 ones through the backup side's store."""
        return Finder(await self.store("backup"), self.clock)

    def copies(self, side: Side) -> Pace:
        """How many copies and deletes run at once against ``side``'s endpoint: pinned by
        --copy-workers (or --workers), else adapted; one per endpoint, shared by the
        command's pools, backing off on the throttled answers that endpoint's store counts."""
        config = self.s3_config(side)
        pace = self._paces.get(config)
        if pace is None:

            def throttles() -> int:
                store = self._stores.get(config)
                return store.throttled if store is not None else 0

            start, low, high = self.settings.copy_bounds
            pace = Pace(start, low, high, clock=self.clock, throttles=throttles)
            self._paces[config] = pace
        return pace

    async def catalog(self, backup: S3Url | None, *, writing: bool = False) -> Catalog:
        """The catalog of ``backup``: the one its bucket names (default: in the backup bucket,
        under .backup-my-bucket/), or --catalog. Writing commands refuse any other catalog
        than the named one, and name theirs when the bucket names none yet.

        Without --backup, --catalog alone opens that catalog for reading."""
        finder = await self.finder()
        explicit = self.settings.catalog
        if backup is None:
            if explicit is None:
                raise UsageError(
                    "which backup? snapshots live with the backup: pass --backup s3://bucket",
                    hint="or --catalog PATH|s3://... to read a catalog kept elsewhere",
                )
            catalog = finder.open(explicit)
            log.info("catalog: %s", catalog.location)
            return catalog
        if writing:  # before anything is written there (the bucket's record of its catalog)
            await finder.store.check_bucket(backup.bucket)
            await require_versioning(finder.store, backup.bucket)
        catalog = await finder.for_backup(backup, explicit, writing=writing)
        for old in await unmigrated(catalog, backup):
            self.output.warn(
                f"{len(old.ids)} snapshot(s) of {backup} are still only in the old local "
                f"catalog {old.path}: move them with `bmb catalog migrate --backup {backup}`"
            )
        log.info("catalog: %s", catalog.location)
        return catalog

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
        if self._executor is not None:
            executor, self._executor = self._executor, None
            await executor.aclose()
        for store in self._stores.values():
            await store.close()
        self._stores.clear()
