"""Shared fixtures: the real S3 server (SeaweedFS) and stores over it or in memory.

The server starts once per test session on free loopback ports and is killed at the end.
``BMB_TEST_ENDPOINT`` (with ``BMB_TEST_ACCESS_KEY``/``BMB_TEST_SECRET_KEY``, and
``BMB_TEST_DOMAIN`` if it serves virtual-hosted names) points the suite at another server
instead. When ``CI`` is set, an unavailable server fails the run: S3 tests are
never skipped into a green build.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from backup_my_bucket.catalog.location import RESERVED
from backup_my_bucket.clock import SYSTEM_CLOCK
from backup_my_bucket.engine.cut import server_now, wait_past
from backup_my_bucket.errors import BackupError, BucketNotFound
from backup_my_bucket.localserver import LocalS3Server
from backup_my_bucket.storage.memory import MemoryStore
from backup_my_bucket.storage.protocol import ObjectStore
from backup_my_bucket.storage.s3 import S3Config, S3Store

# A suite started as a background job (``cmd &`` in a script) inherits SIGINT ignored, and so
# would every CLI it starts (Python keeps an ignored SIGINT ignored): the tests that press
# Ctrl-C would see it do nothing. A handler, unlike SIG_IGN, is not inherited through exec.
signal.signal(signal.SIGINT, signal.default_int_handler)

TEST_ACCESS_KEY = "bmbtestaccess"
TEST_SECRET_KEY = "bmb-test-secret-Zq8x"  # recognisable: it must never appear in any output
# the shared server also answers virtual-hosted requests, Host: {bucket}.s3.localhost[:port]
# (tests/reliability/test_virtual_hosted.py resolves those names to loopback)
TEST_DOMAIN = "s3.localhost"


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    access_key: str
    secret_key: str
    local: LocalS3Server | None = field(default=None, compare=False)  # when we started it
    domain: str | None = None  # the suffix of virtual-hosted names it serves, if any

    def config(self, **overrides: object) -> S3Config:
        base = S3Config(
            endpoint_url=self.endpoint_url,
            region="us-east-1",
            access_key=self.access_key,
            secret_key=self.secret_key,
        )
        return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]

    def env(self) -> dict[str, str]:
        """Environment for a CLI subprocess talking to this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": "us-east-1",
        }


@pytest.fixture(autouse=True)
def _private_user_dirs(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tests never read or write the real user's config, data (catalogs) or cache."""
    home = tmp_path_factory.mktemp("home")
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(var, str(home / var.lower()))
    for var in ("AWS_ENDPOINT_URL", "BMB_ENDPOINT_URL", "BMB_CATALOG", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"S3 test server unavailable in CI: {reason}", pytrace=False)
    pytest.skip(f"S3 test server unavailable: {reason}")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    endpoint = os.environ.get("BMB_TEST_ENDPOINT")
    if endpoint:
        yield S3Server(
            endpoint,
            os.environ.get("BMB_TEST_ACCESS_KEY", TEST_ACCESS_KEY),
            os.environ.get("BMB_TEST_SECRET_KEY", TEST_SECRET_KEY),
            domain=os.environ.get("BMB_TEST_DOMAIN"),
        )
        return
    server = LocalS3Server(
        tmp_path_factory.mktemp("seaweedfs"),
        access_key=TEST_ACCESS_KEY,
        secret_key=TEST_SECRET_KEY,
        domain_name=TEST_DOMAIN,
    )
    try:
        server.start()
    except BackupError as exc:
        _unavailable(f"{exc.message} ({exc.hint})")
    try:
        yield S3Server(server.endpoint_url, TEST_ACCESS_KEY, TEST_SECRET_KEY, server, TEST_DOMAIN)
    finally:
        server.stop()


@pytest.fixture(scope="session")
async def readonly_s3_server(s3_server: S3Server) -> S3Server:
    """Credentials on the test server that may read and list, but not write or delete:
    ``BMB_TEST_READONLY_ACCESS_KEY``/``..._SECRET_KEY`` for another server."""
    if os.environ.get("BMB_TEST_READONLY_ACCESS_KEY"):
        return dataclasses.replace(
            s3_server,
            access_key=os.environ["BMB_TEST_READONLY_ACCESS_KEY"],
            secret_key=os.environ.get("BMB_TEST_READONLY_SECRET_KEY", ""),
        )
    if s3_server.local is None:
        _unavailable("read-only credentials: set BMB_TEST_READONLY_ACCESS_KEY/_SECRET_KEY")
    assert s3_server.local is not None
    server = dataclasses.replace(
        s3_server, access_key="bmbtestreader", secret_key="bmb-test-reader-Kd2w"
    )
    s3_server.local.add_identity("reader", server.access_key, server.secret_key, ["Read", "List"])
    store = S3Store(server.config())
    await store.open()
    try:
        for _ in range(100):  # the S3 server reloads its identities within a second or two
            try:
                await store.list_objects_page("bmb-readonly-probe")
            except BucketNotFound:
                return server
            except BackupError:
                await asyncio.sleep(0.1)
        raise AssertionError("the read-only identity never became valid")
    finally:
        await store.close()


@pytest.fixture(scope="session")
async def s3_store(s3_server: S3Server) -> AsyncIterator[S3Store]:
    store = S3Store(s3_server.config(max_pool_connections=64))
    await store.open()
    yield store
    await store.close()


_names = itertools.count()


async def writes_settled(store: ObjectStore, bucket: str) -> None:
    """Wait until the second of the writes made so far has ended on the store's clock: a
    snapshot cuts there (engine/cut.py), so only then does it hold them."""
    clock = store.clock if isinstance(store, MemoryStore) else SYSTEM_CLOCK
    await wait_past(store, bucket, clock, await server_now(store, bucket, clock))


def unique_bucket(label: str = "t") -> str:
    """A fresh, valid bucket name per call (lower case, 3-63 characters)."""
    return f"{label}-{os.getpid()}-{next(_names)}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(params=["memory", pytest.param("seaweedfs", marks=pytest.mark.s3)])
def store(request: pytest.FixtureRequest) -> ObjectStore:
    """The same test against the in-memory fake and the real server."""
    if request.param == "memory":
        return MemoryStore()
    s3: ObjectStore = request.getfixturevalue("s3_store")  # sync here: the loop is not running
    return s3


BucketFactory = Callable[..., Awaitable[str]]


@pytest.fixture
def make_bucket(store: ObjectStore) -> BucketFactory:
    async def make(label: str = "t", *, versioned: bool = True) -> str:
        name = unique_bucket(label)
        await store.create_bucket(name)
        if versioned:
            await store.set_versioning(name, True)
        return name

    return make


def is_data(key: str) -> bool:
    """Whether ``key`` is backed-up data, not a backup location's reserved folder (its
    catalog and records: ``.backup-my-bucket/`` at the bucket's root or under a folder)."""
    return f"/{RESERVED}" not in f"/{key}"


def is_seaweedfs(store: ObjectStore) -> bool:
    return isinstance(store, S3Store) and not os.environ.get("BMB_TEST_ENDPOINT")


@pytest.fixture(scope="session")
def second_s3_server(
    s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[S3Server]:
    """Another SeaweedFS with the same credentials: a different endpoint, for cross-endpoint
    copies (bytes must stream through the client)."""
    server = LocalS3Server(
        tmp_path_factory.mktemp("seaweedfs2"),
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
    )
    try:
        server.start()
    except BackupError as exc:
        _unavailable(f"{exc.message} ({exc.hint})")
    try:
        yield S3Server(server.endpoint_url, s3_server.access_key, s3_server.secret_key)
    finally:
        server.stop()


@pytest.fixture(scope="session")
async def second_s3_store(second_s3_server: S3Server) -> AsyncIterator[S3Store]:
    store = S3Store(second_s3_server.config(max_pool_connections=32))
    await store.open()
    yield store
    await store.close()


@dataclass
class Received:
    """One request the receiver got."""

    method: str
    path: str
    query: dict[str, str]
    body: str


@dataclass
class Receiver:
    """A local HTTP server standing in for healthchecks and a JSON webhook (apprise json://)."""

    url: str
    requests: list[Received]

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    requests: list[Received] = []

    async def record(request: web.Request) -> web.Response:
        body = await request.text()
        requests.append(Received(request.method, request.path, dict(request.query), body))
        return web.Response(text="OK")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield Receiver(f"http://{host}:{port}", requests)
    finally:
        await runner.cleanup()
