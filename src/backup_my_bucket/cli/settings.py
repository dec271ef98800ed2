"""The global options of one invocation, after flags, environment and config file were merged.

Light on purpose: ``cli/main.py`` builds its options from here before any command (and its
engines, the catalog, the S3 client) is imported.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..storage.paging import Paging

RERUN = "rerun the same command to continue: finished work is kept"
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
    # how listings run (App.listing: storage.listing.ListingOptions)
    list_page_size: int | None = None  # MaxKeys (None: the most a page holds)
    list_paging: Paging | None = None  # None: from the server
    audit: bool = True
    json: bool = False
    debug: bool = False
    fast_path: bool = True
    access_key: str | None = None  # not an option: for the embedded demo server only
    secret_key: str | None = None
