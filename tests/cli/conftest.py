"""CLI test helpers: run the real entry point in-process against the test server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from backup_my_bucket.cli import main as cli_main
from backup_my_bucket.storage.protocol import ObjectStore

from ..conftest import S3Server, unique_bucket


@pytest.fixture
def cli_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials and endpoint of the test server, as a user's environment would hold them."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="module")
def cluster(s3_server: S3Server) -> Iterator[str]:
    """A LocalCluster of 2 worker processes for the module (starting one costs seconds); its
    address as ``dask://HOST:PORT``. Its workers take their credentials from their own
    environment (set before they start, restarts too), never from the task."""
    import distributed

    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",  # its HTTP server on a free port (8787 may be taken)
        worker_dashboard_address=None,
        env=s3_server.env(),
    )
    try:
        yield "dask://" + cluster.scheduler_address.removeprefix("tcp://")
    finally:
        cluster.close()


async def bmb(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the CLI (in a thread: it runs its own event loop); return code, stdout, stderr."""
    capsys.readouterr()
    code = await asyncio.to_thread(cli_main.run, list(args))
    out, err = capsys.readouterr()
    return code, out, err


def dry_run_lines(out: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``--dry-run --json`` output: one object per planned action, then the summary object."""
    *actions, summary = (json.loads(line) for line in out.splitlines())
    assert all(set(a) == {"action", "key", "version_id", "size", "reason"} for a in actions)
    assert "action" not in summary
    return actions, summary


async def source_and_backup(store: ObjectStore, label: str) -> tuple[str, str]:
    """A fresh source bucket and a fresh versioned backup bucket."""
    source, backup = unique_bucket(f"{label}-src"), unique_bucket(f"{label}-bak")
    await store.create_bucket(source)
    await store.create_bucket(backup)
    await store.set_versioning(backup, True)
    return source, backup
