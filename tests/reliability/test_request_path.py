"""The fast request path follows the user's network settings and the retry setting: every
request through a configured HTTP proxy, TLS trusted through AWS_CA_BUNDLE, at most
``max_attempts`` requests per operation under a steady 503 SlowDown, and every fallback to
botocore logged with its reason (a systematic one turns the fast path off)."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import ssl
import subprocess
import sys
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from backup_my_bucket.errors import StorageError
from backup_my_bucket.model import VersionRef
from backup_my_bucket.storage.retry import RETRY_GATE
from backup_my_bucket.storage.s3 import S3Store, fastpath
from backup_my_bucket.storage.s3.sigv4 import SigV4

from ..conftest import S3Server, unique_bucket
from .faultproxy import FaultProxy

pytestmark = pytest.mark.s3

DATA = Path(__file__).parent / "data"
CERT, KEY = DATA / "test-tls-cert.pem", DATA / "test-tls-key.pem"
FAST = "(fast path)"  # in the User-Agent of the fast path's requests


def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


async def _fill(store: S3Store) -> tuple[str, str]:
    bucket = unique_bucket("path")
    await store.create_bucket(bucket)
    await store.set_versioning(bucket, True)
    return bucket, await store.put(bucket, "dir/a b+c%~", b"data")


async def _copy_and_list(store: S3Store, bucket: str, version: str) -> None:
    await store.copy(VersionRef(bucket, "dir/a b+c%~", version), bucket, "copy")
    page = await store.list_versions_page(bucket)
    assert {e.key for e in page.entries} == {"dir/a b+c%~", "copy"}


@pytest.fixture
def unreachable_endpoint(s3_server: S3Server) -> str:
    """The test server under a name nobody resolves: only a proxy can reach it."""
    port = urllib.parse.urlsplit(s3_server.endpoint_url).port
    return f"http://bmb-s3.invalid:{port}"


async def test_store_requests_all_go_through_the_proxy(
    s3_server: S3Server, unreachable_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_proxy_env(monkeypatch)
    with FaultProxy(s3_server.endpoint_url, rate=0) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url.replace("://", "://user:p%25w@"))
        async with S3Store(s3_server.config(endpoint_url=unreachable_endpoint)) as store:
            bucket, version = await _fill(store)
            await _copy_and_list(store, bucket, version)
            assert store._fast is not None and (store._fast.copies, store._fast.listings) == (1, 1)
    fast = [entry for entry in proxy.stats.log if FAST in entry[2]]
    assert [method for method, *_ in fast] == ["PUT", "PUT", "GET"]  # put, copy, listing
    assert len(proxy.stats.log) == 5  # create, versioning (botocore) + the three fast ones
    basic = "Basic " + base64.b64encode(b"user:p%w").decode()  # the proxy's own credentials
    assert {entry[3] for entry in proxy.stats.log} == {basic}


async def test_cli_through_an_http_proxy(
    s3_server: S3Server, s3_store: S3Store, unreachable_endpoint: str, tmp_path: Path
) -> None:
    """The real process, as a user behind a company proxy runs it: every request of a backup
    (sync, snapshot) goes through the proxy, none falls back, and the fast path is used."""
    src, bkp = unique_bucket("px-src"), unique_bucket("px-bkp")
    for bucket in (src, bkp):
        await s3_store.create_bucket(bucket)
    for i in range(5):
        await s3_store.put(src, f"img0/{i}", b"x" * i)
    with FaultProxy(s3_server.endpoint_url, rate=0) as proxy:
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env.update(s3_server.env(), AWS_ENDPOINT_URL=unreachable_endpoint, HTTP_PROXY=proxy.url)

        def bmb(*args: str) -> str:
            done = subprocess.run(
                [sys.executable, "-m", "backup_my_bucket", "--debug", *args],
                capture_output=True, text=True, env=env, timeout=120, check=False,
            )  # fmt: skip
            assert done.returncode == 0, done.stdout + done.stderr
            return done.stdout + done.stderr

        pair = ["--source", f"s3://{src}", "--backup", f"s3://{bkp}"]
        output = await asyncio.to_thread(bmb, "init", *pair, "--yes")
        output += await asyncio.to_thread(bmb, "--catalog", str(tmp_path / "cat"), "backup", *pair)
    assert "falls back" not in output and "fast request path off" not in output
    fast = sum(FAST in agent for _, _, agent, _ in proxy.stats.log)
    sent = output.count("Sending http request")  # botocore's requests, logged under --debug
    assert fast >= 5 and sent > 0  # five copies (and listings) on the fast path
    assert len(proxy.stats.log) == sent + fast


@pytest.fixture
def tls_proxy(s3_server: S3Server) -> AsyncIterator[FaultProxy]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(CERT, KEY)
    with FaultProxy(s3_server.endpoint_url, rate=0, tls=context) as proxy:
        yield proxy  # type: ignore[misc]


async def test_tls_endpoint_trusted_through_aws_ca_bundle(
    s3_server: S3Server,
    tls_proxy: FaultProxy,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _no_proxy_env(monkeypatch)
    monkeypatch.setenv("AWS_CA_BUNDLE", str(CERT))
    caplog.set_level(logging.DEBUG, logger="backup_my_bucket")
    async with S3Store(s3_server.config(endpoint_url=tls_proxy.url)) as store:
        bucket, version = await _fill(store)
        await _copy_and_list(store, bucket, version)
        assert store._fast is not None and (store._fast.copies, store._fast.listings) == (1, 1)
    assert "falls back" not in caplog.text

    monkeypatch.delenv("AWS_CA_BUNDLE")  # the test certificate is trusted by nobody now
    async with S3Store(s3_server.config(endpoint_url=tls_proxy.url, max_attempts=1)) as store:
        with pytest.raises(StorageError):
            await store.list_versions_page(bucket)
    # the certificate failure goes to botocore, which reports it as the user's error
    assert "falls back to botocore: SSLCertVerificationError" in caplog.text


async def _requests(proxy: FaultProxy, call: Callable[[], Awaitable[Any]]) -> tuple[int, str]:
    before = len(proxy.stats.log)
    with pytest.raises(StorageError) as failed:
        await call()
    return len(proxy.stats.log) - before, str(failed.value)


async def test_steady_slowdown_is_bounded_by_the_retry_setting(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _no_proxy_env(monkeypatch)
    caplog.set_level(logging.DEBUG, logger="backup_my_bucket")
    monkeypatch.setattr(fastpath, "BACKOFF_BASE", 0.05)  # botocore's own backoff stays
    with FaultProxy(s3_server.endpoint_url, rate=0, faults=("slowdown",)) as proxy:
        async with S3Store(s3_server.config(endpoint_url=proxy.url, max_attempts=3)) as store:
            bucket, version = await _fill(store)
            proxy.rate = 1.0  # every request from now on: 503 SlowDown
            source = VersionRef(bucket, "dir/a b+c%~", version)
            for call in (
                lambda: store.copy(source, bucket, "copy"),  # the fast path
                lambda: store.list_versions_page(bucket),  # the fast path
                lambda: store.head(bucket, "dir/a b+c%~"),  # botocore
                lambda: store.put(bucket, "k", b"x"),  # botocore
            ):
                count, message = await _requests(proxy, call)
                assert count == 3 and ("SlowDown" in message or "503" in message), message
            assert store._fast is not None and store._fast.enabled
            assert store.throttled == 12  # every 503 counted, fast or not: the pools back off
    assert "falls back" not in caplog.text  # a throttled request is not sent twice


async def test_each_retry_of_the_fast_path_waits_for_its_tasks_pace(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cluster unit paces its items' requests (engine/rate.py): the retries of a throttled
    request wait for the same pace, set in the task that sends it."""
    _no_proxy_env(monkeypatch)
    monkeypatch.setattr(fastpath, "BACKOFF_BASE", 0.01)
    waits: list[int] = []

    async def pace() -> None:
        waits.append(len(proxy.stats.log))

    with FaultProxy(s3_server.endpoint_url, rate=0, faults=("slowdown",)) as proxy:
        async with S3Store(s3_server.config(endpoint_url=proxy.url, max_attempts=3)) as store:
            bucket, version = await _fill(store)
            proxy.rate = 1.0
            sent = len(proxy.stats.log)
            gate = RETRY_GATE.set(pace)
            try:
                with pytest.raises(StorageError):
                    await store.copy(VersionRef(bucket, "dir/a b+c%~", version), bucket, "c")
            finally:
                RETRY_GATE.reset(gate)
    assert waits == [sent + 1, sent + 2]  # before the second and the third attempt


async def test_fallbacks_are_logged_and_a_systematic_one_turns_the_fast_path_off(
    s3_store: S3Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="backup_my_bucket")
    config = s3_store.config
    async with S3Store(config) as store:
        bucket, version = await _fill(store)
        signature = SigV4.authorization

        def wrong(self: SigV4, *args: Any) -> str:
            return signature(self, *args)[:-4] + "0000"

        monkeypatch.setattr(SigV4, "authorization", wrong)
        source = VersionRef(bucket, "dir/a b+c%~", version)
        for i in range(fastpath.GIVE_UP):
            assert store._fast is not None and store._fast.enabled
            await store.copy(source, bucket, f"copy{i}")  # botocore serves it
        assert not store._fast.enabled and store._fast.copies == 0
    assert caplog.text.count("falls back to botocore: HTTP 403 SignatureDoesNotMatch") == 16
    assert "fast path off for" in caplog.text
