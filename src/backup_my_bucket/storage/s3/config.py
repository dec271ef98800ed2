"""S3Config: what one store connects to and how. Imported without botocore or aiohttp, so a
command can build its settings (and ``--help`` can run) without loading the HTTP stack."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FRESH_FOR = 30.0
"""What the CLI sets as ``S3Config.bucket_facts_ttl``: a command asks for a bucket's HeadBucket
and versioning status in each phase (sync, the catalog, the snapshot), a round trip each on
AWS; its store (one per command, one per daemon run) answers again from what it was told
within this many seconds. An error is never kept; a library user's store asks every time."""


@dataclass(frozen=True, slots=True)
class S3Config:
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    max_pool_connections: int = 64
    max_attempts: int = 8  # requests per operation at most, the first one included
    connect_timeout: float = 5.0  # a wrong port or host fails in seconds, not minutes
    read_timeout: float = 120.0
    fast_path: bool = True  # the lean path for copies and version listings
    # botocore's S3 addressing style; "auto": path style on a custom endpoint, botocore's own
    # choice on AWS (virtual-hosted where the bucket name allows it)
    addressing_style: Literal["auto", "path", "virtual"] = "auto"
    # seconds a bucket's answered HeadBucket and versioning status are reused (0: always ask);
    # the CLI sets FRESH_FOR for its commands, whose phases each ask again
    bucket_facts_ttl: float = 0.0

    def addressing(self) -> str:
        """botocore's addressing style: as configured; by default path style on a custom
        endpoint (most S3-compatible servers want it), botocore's own choice on AWS."""
        if self.addressing_style != "auto":
            return self.addressing_style
        return "path" if self.endpoint_url else "auto"
