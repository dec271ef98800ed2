"""The fast path on AWS-shaped endpoints: virtual-hosted style over HTTPS, and AWS's region
redirects handed to botocore.

- SeaweedFS serves virtual-hosted requests (``-s3.domainName=s3.localhost``, conftest) behind a
  local TLS terminator (the fault proxy with the test certificate, which holds
  ``*.s3.localhost``); ``bucket.s3.localhost`` resolves to loopback through a test resolver
  (``socket.getaddrinfo``, which both aiohttp stacks use). The store and the CLI process copy
  and list there through the fast path, addressed as botocore addresses them.
- A stub in front of SeaweedFS answers like AWS does when a request is signed for the wrong
  region (301 PermanentRedirect, 307 TemporaryRedirect, 400 AuthorizationHeaderMalformed, with
  AWS's documented bodies and ``x-amz-bucket-region``): botocore takes the request over and
  completes it in the bucket's region, and the fast path goes on signing for that region.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from backup_my_bucket.model import VersionRef
from backup_my_bucket.storage.s3 import S3Store

from ..conftest import S3Server, unique_bucket
from .faultproxy import FaultProxy

pytestmark = pytest.mark.s3

DATA = Path(__file__).parent / "data"
CERT, KEY = DATA / "test-tls-cert.pem", DATA / "test-tls-key.pem"
FAST = "(fast path)"  # in the User-Agent of the fast path's requests
KEY_NAME = "dir/a b+c%~é"


def _loopback(domain: str) -> Any:
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and (host == domain or host.endswith("." + domain)):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    return getaddrinfo


@pytest.fixture
def domain(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    if not s3_server.domain:
        pytest.fail("the test server serves no virtual-hosted names (set BMB_TEST_DOMAIN)")
    monkeypatch.setattr(socket, "getaddrinfo", _loopback(s3_server.domain))
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("AWS_CA_BUNDLE", str(CERT))
    return s3_server.domain


@pytest.fixture
def tls_terminator(s3_server: S3Server) -> Iterator[FaultProxy]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(CERT, KEY)
    with FaultProxy(s3_server.endpoint_url, rate=0, tls=context) as proxy:
        yield proxy


def _vhost_url(proxy: FaultProxy, domain: str) -> str:
    return f"https://{domain}:{proxy.port}"


async def test_virtual_hosted_https_through_the_fast_path(
    s3_server: S3Server, domain: str, tls_terminator: FaultProxy
) -> None:
    config = s3_server.config(
        endpoint_url=_vhost_url(tls_terminator, domain), addressing_style="virtual"
    )
    plain, dotted = unique_bucket("vh"), unique_bucket("vh.dot")
    async with S3Store(config) as store:
        for bucket in (plain, dotted):
            await store.create_bucket(bucket)
            await store.set_versioning(bucket, True)
            version = await store.put(bucket, KEY_NAME, b"data")
            copied = await store.copy(VersionRef(bucket, KEY_NAME, version), bucket, "copy é")
            page = await store.list_versions_page(bucket)
            assert {(e.key, e.version_id) for e in page.entries if e.key == "copy é"} == {
                ("copy é", copied)
            }
            assert {e.key for e in page.entries} == {KEY_NAME, "copy é"}
        assert store._fast is not None and (store._fast.copies, store._fast.listings) == (2, 2)
        where = await store._fast._address(plain, "CopyObject")
        assert where is not None and where.host == f"{plain}.{domain}:{tls_terminator.port}"
        where = await store._fast._address(dotted, "CopyObject")  # dots over HTTPS: path style
        assert where is not None and where.path == f"/{dotted}"
    fast = [(method, path) for method, path, agent, _ in tls_terminator.stats.log if FAST in agent]
    assert fast == [
        ("PUT", "/dir/a%20b%2Bc%25~%C3%A9"),  # virtual-hosted: the bucket is in the host name
        ("PUT", "/copy%20%C3%A9"),
        ("GET", "/?encoding-type=url&max-keys=1000&versions="),
        ("PUT", f"/{dotted}/dir/a%20b%2Bc%25~%C3%A9"),
        ("PUT", f"/{dotted}/copy%20%C3%A9"),
        ("GET", f"/{dotted}?encoding-type=url&max-keys=1000&versions="),
    ]


RESOLVER = (
    "import socket, sys\n"
    "real = socket.getaddrinfo\n"
    "def getaddrinfo(host, *a, **k):\n"
    "    if isinstance(host, str) and (host == {d!r} or host.endswith('.' + {d!r})):\n"
    "        host = '127.0.0.1'\n"
    "    return real(host, *a, **k)\n"
    "socket.getaddrinfo = getaddrinfo\n"
    "from backup_my_bucket.cli.main import main\n"
    "main()\n"
)


async def test_cli_backup_on_a_virtual_hosted_https_endpoint(
    s3_server: S3Server, s3_store: S3Store, domain: str, tls_terminator: FaultProxy, tmp_path: Path
) -> None:
    """The real process: `bmb --addressing-style virtual backup` over HTTPS copies and lists
    through the fast path, nothing falls back."""
    src, bkp = unique_bucket("vh-src"), unique_bucket("vh-bkp")
    for bucket in (src, bkp):
        await s3_store.create_bucket(bucket)
    await s3_store.set_versioning(bkp, True)
    for i in range(5):
        await s3_store.put(src, f"img0/{i}", b"x" * i)
    await s3_store.put(src, "img0-1.idx", b"i")
    env = {**os.environ, **s3_server.env(), "AWS_ENDPOINT_URL": _vhost_url(tls_terminator, domain)}
    args = ["--debug", "--addressing-style", "virtual", "--catalog", str(tmp_path / "cat")]
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", RESOLVER.format(d=domain), *args, "backup",
         "--source", f"s3://{src}", "--backup", f"s3://{bkp}"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "copied 6 objects" in done.stdout
    assert "falls back" not in done.stderr and "goes to botocore" not in done.stderr
    fast = [(m, p) for m, p, agent, _ in tls_terminator.stats.log if FAST in agent]
    catalog = [(m, p) for m, p in fast if p.startswith("/.backup-my-bucket/")]
    copies = [(m, p) for m, p in fast if m == "PUT" and (m, p) not in catalog]
    assert len(copies) == 6 and any(m == "GET" for m, _ in fast)
    assert any(m == "PUT" for m, _ in catalog)  # the bucket's record of its catalog
    assert all(not p.startswith(f"/{bkp}") for _, p in fast)  # virtual-hosted, all of them


# --- AWS's region redirects ------------------------------------------------------------------

HOME = "eu-west-1"
_ANSWERS = {
    301: (
        "PermanentRedirect",
        "The bucket you are attempting to access must be addressed using the specified "
        "endpoint. Please send all future requests to this endpoint.",
        "<Endpoint>{bucket}.s3.eu-west-1.amazonaws.com</Endpoint><Bucket>{bucket}</Bucket>",
    ),
    307: (
        "TemporaryRedirect",
        "Please re-send this request to the specified temporary endpoint. Continue to use the "
        "original request endpoint for future requests.",
        "<Endpoint>{bucket}.s3-eu-west-1.amazonaws.com</Endpoint><Bucket>{bucket}</Bucket>",
    ),
    400: (
        "AuthorizationHeaderMalformed",
        "The authorization header is malformed; the region '{region}' is wrong; expecting "
        "'eu-west-1'",
        "<Region>eu-west-1</Region>",
    ),
}


class RegionStub(FaultProxy):
    """Forwards requests signed for :data:`HOME`; answers the others as AWS answers a request
    signed for, or sent to, the wrong region (``status``: 301, 307 or 400). ``seen``: the
    signing region of each request, with the status answered, and whether it was a fast one."""

    def __init__(self, upstream: str, status: int) -> None:
        super().__init__(upstream, rate=0)
        self.status = status
        self.seen: list[tuple[str, int, bool]] = []

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        scope = request.headers.get("Authorization", "").split("Credential=")[-1].split("/")
        region = scope[2] if len(scope) > 2 else ""
        fast = FAST in request.headers.get("User-Agent", "")
        if region == HOME:
            self.seen.append((region, 200, fast))
            return await super()._handle(request)
        self.seen.append((region, self.status, fast))
        path = urllib.parse.urlsplit(request.raw_path).path
        bucket = path.lstrip("/").split("/")[0]
        code, message, extra = _ANSWERS[self.status]
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message>{extra}"
            "<RequestId>4442587FB7D0A2F9</RequestId><HostId>dGVzdA==</HostId></Error>"
        ).format(bucket=bucket, region=region)
        headers = {"x-amz-request-id": "4442587FB7D0A2F9", "x-amz-id-2": "dGVzdA=="}
        if self.status != 400:  # the redirects name the region; the 400 says it in its body
            headers["x-amz-bucket-region"] = HOME
        # (AWS's 307 also carries a Location: aiobotocore's aiohttp session follows it by
        # itself, without the Authorization header when the host differs, so botocore's
        # redirector never sees that 307. An aiobotocore behaviour, the same with or without
        # the fast path; left out here.)
        return web.Response(
            status=self.status, body=body.encode(), headers=headers, content_type="application/xml"
        )


@pytest.mark.parametrize("status", [301, 307, 400])
async def test_region_redirects_go_to_botocore_and_the_fast_path_follows(
    s3_server: S3Server, s3_store: S3Store, status: int
) -> None:
    bucket = unique_bucket(f"redir{status}")
    await s3_store.create_bucket(bucket)
    await s3_store.set_versioning(bucket, True)
    version = await s3_store.put(bucket, KEY_NAME, b"data")
    source = VersionRef(bucket, KEY_NAME, version)
    with RegionStub(s3_server.endpoint_url, status) as stub:
        config = s3_server.config(endpoint_url=stub.url, region="us-east-1")
        async with S3Store(config) as store:
            assert await store.copy(source, bucket, "first")  # redirected: botocore completes it
            assert store._fast is not None and store._fast.copies == 0
            assert stub.seen == [
                ("us-east-1", status, True),  # the fast path, in the client's region
                ("us-east-1", status, False),  # botocore takes the request over
                (HOME, 200, False),  # and sends it again, signed for the bucket's region
            ]
            del stub.seen[:]
            await store.copy(source, bucket, "second")  # the fast path, in the right region
            page = await store.list_versions_page(bucket)
            assert {e.key for e in page.entries} == {KEY_NAME, "first", "second"}
            assert (store._fast.copies, store._fast.listings) == (1, 1)
            assert stub.seen == [(HOME, 200, True), (HOME, 200, True)]
            assert store._fast.enabled
