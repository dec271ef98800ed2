"""The global options of one invocation, after flags, environment and config file were merged.

Light on purpose: ``cli/main.py`` builds its options from here before any command (and its
engines, the catalog, the S3 client) is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import UsageError
from ..storage.paging import Paging

LOCAL, DASK_SCHEME = "local", "dask://"
RERUN = "rerun the same command to continue: finished work is kept"
DEFAULT_LIST_WORKERS = 32  # concurrent listing requests (16–32 do best: docs/performance.md)
# copies and deletes, per endpoint: adapted within [low, high] from start (engine/pace.py)
COPY_LOW, COPY_START, COPY_HIGH = 16, 128, 256  # 128-256 did best here (performance.md)


@dataclass(frozen=True, slots=True)
class Settings:
    """The global options, after flags, environment and config file were merged."""

    endpoint_url: str | None = None
    source_endpoint_url: str | None = None
    backup_endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None
    catalog: str | None = None
    workers: int = DEFAULT_LIST_WORKERS  # listing requests at once
    copy_workers: int | None = None  # copies/deletes at once; None: adapted per endpoint
    # how listings run (App.listing: storage.listing.ListingOptions)
    list_page_size: int | None = None  # MaxKeys (None: the most a page holds)
    list_paging: Paging | None = None  # None: from the server
    audit: bool = True
    json: bool = False
    debug: bool = False
    fast_path: bool = True
    addressing_style: Literal["auto", "path", "virtual"] = "auto"
    executor: str = LOCAL  # where work units run: local, or dask://HOST:PORT (engine/executor.py)
    access_key: str | None = None  # not an option: for the embedded demo server only
    secret_key: str | None = None

    @property
    def copy_bounds(self) -> tuple[int, int, int]:
        """(start, low, high) of the copy and delete pools: pinned, or the adaptive range."""
        if self.copy_workers:
            return self.copy_workers, self.copy_workers, self.copy_workers
        return COPY_START, COPY_LOW, COPY_HIGH


def check_executor(text: str) -> str:
    """``local`` or ``dask://HOST:PORT`` (engine/executor.py), as given; else a usage error."""
    if text == LOCAL:
        return text
    if text.startswith(DASK_SCHEME):
        host, _, port = text[len(DASK_SCHEME) :].rpartition(":")
        if host and port.isdigit() and 0 < int(port) < 65536:
            return text
    raise UsageError(
        f"not an executor: {text!r}",
        hint="--executor local (this process) or --executor dask://HOST:PORT (a Dask "
        "scheduler, e.g. dask://127.0.0.1:8786)",
    )


def workers_settings(
    workers: int | None, list_workers: int | None, copy_workers: int | None
) -> tuple[int, int | None]:
    """(listing, copies) from the options: ``--workers`` pins every phase, ``--list-workers``
    and ``--copy-workers`` each one; copies None: adapted."""
    return list_workers or workers or DEFAULT_LIST_WORKERS, copy_workers or workers
