"""Opening an S3Store without a server: credentials (clean errors, no chain for explicit keys),
the fast path's settings and the network settings it takes from botocore."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

import pytest
from aiobotocore.session import AioSession

from backup_my_bucket.errors import EndpointUnreachable, InvalidCredentials
from backup_my_bucket.model import VersionRef
from backup_my_bucket.storage.s3 import S3Config, S3Store
from backup_my_bucket.storage.s3.address import Address, address, proxy_for, tls_context

CERT = Path(__file__).parents[1] / "reliability" / "data" / "test-tls-cert.pem"
ENDPOINT = "http://127.0.0.1:9"  # nothing is sent while opening


@pytest.fixture
def no_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_") or name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.usefixtures("no_aws_env")
async def test_no_credentials_with_an_endpoint_is_a_credentials_error() -> None:
    async with S3Store(S3Config(endpoint_url=ENDPOINT)) as store:  # a command checks first
        assert store._fast is None
        for call in (store.list_versions_page("b"), store.copy(VersionRef("b", "k"), "b", "c")):
            with pytest.raises(InvalidCredentials) as raised:
                await call
            assert raised.value.hint and "AWS_ACCESS_KEY_ID" in raised.value.hint
    with pytest.raises(InvalidCredentials, match="incomplete"):
        await S3Store(S3Config(endpoint_url=ENDPOINT, access_key="AKIDONLY")).open()


@pytest.mark.usefixtures("no_aws_env")
async def test_explicit_keys_do_not_run_the_credential_chain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def chain(self: AioSession) -> None:
        raise AssertionError("the credential chain ran (instance metadata would be probed)")

    monkeypatch.setattr(AioSession, "get_credentials", chain)
    async with S3Store(
        S3Config(endpoint_url=ENDPOINT, access_key="AKIDEXPLICIT", secret_key="explicit-secret")
    ) as store:
        assert store._fast is not None


@pytest.mark.usefixtures("no_aws_env")
async def test_when_the_fast_path_is_on_and_off(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="backup_my_bucket")
    keys = {"access_key": "AKIDEXPLICIT", "secret_key": "explicit-secret"}
    async with S3Store(S3Config(endpoint_url=ENDPOINT, fast_path=False, **keys)) as store:
        assert store._fast is None
    assert "turned off by the settings" in caplog.text
    for config in (S3Config(region="eu-west-1", **keys), S3Config(endpoint_url=ENDPOINT, **keys)):
        async with S3Store(config) as store:  # AWS itself, a custom endpoint
            assert store._fast is not None and store._fast.enabled
    # an endpoint whose path needs encoding: botocore sends that bucket's requests
    odd = S3Config(endpoint_url="http://127.0.0.1:9/a b", **keys)
    async with S3Store(odd) as store:
        assert store._fast is not None
        assert await store._fast._address("bucket", "CopyObject") is None
    assert "needs encoding" in caplog.text


def _endpoint(url: str, **scheme: object) -> Address | str:
    auth = {"name": "sigv4", "signingName": "s3", "disableDoubleEncoding": True, **scheme}
    return address(url, {}, {"authSchemes": [auth]}, "us-east-1")


@pytest.mark.usefixtures("no_aws_env")
def test_addresses_follow_botocores_endpoint_and_network(monkeypatch: pytest.MonkeyPatch) -> None:
    where = _endpoint("https://bkt.s3.eu-west-1.amazonaws.com", signingRegion="eu-west-1")
    assert where == Address("https://bkt.s3.eu-west-1.amazonaws.com", "",
                            "bkt.s3.eu-west-1.amazonaws.com", "eu-west-1")  # fmt: skip
    assert where.target("/a%20b") == ("https://bkt.s3.eu-west-1.amazonaws.com/a%20b", "/a%20b")
    assert where.target("", "versions=") == (
        "https://bkt.s3.eu-west-1.amazonaws.com/?versions=",
        "/",
    )
    path = _endpoint("http://h:80/pre/fix/my.bucket")
    assert (path.origin, path.path, path.host, path.region) == (  # type: ignore[union-attr]
        "http://h:80", "/pre/fix/my.bucket", "h", "us-east-1")  # fmt: skip
    assert path.target("") == ("http://h:80/pre/fix/my.bucket", "/pre/fix/my.bucket")  # type: ignore[union-attr]
    for refused in (
        _endpoint("https://b.s3express-use1-az4.us-east-1.amazonaws.com", name="sigv4-s3express"),
        _endpoint("https://mrap.accesspoint.s3-global.amazonaws.com", name="sigv4a"),
        address("https://b.example", {"x-amz-extra": ["1"]}, {}, "us-east-1"),
        _endpoint("http://h/a b"),
    ):
        assert isinstance(refused, str), refused

    assert proxy_for("http://s3.internal:8333") == (None, {})
    monkeypatch.setenv("HTTP_PROXY", "http://user:pw@proxy.corp:3128")
    assert proxy_for("http://s3.internal:8333")[0] == "http://user:pw@proxy.corp:3128"
    # (aiohttp sends the proxy URL's user info as Proxy-Authorization, for botocore's requests
    # too: tests/reliability/test_request_path.py checks both at the proxy)
    monkeypatch.setenv("NO_PROXY", "s3.internal,.eu-west-1.amazonaws.com")
    assert proxy_for("http://s3.internal:8333") == (None, {})
    monkeypatch.setenv("HTTPS_PROXY", "https://proxy.corp:3129")
    assert isinstance(proxy_for("https://other.example:443"), str)  # TLS to the proxy: botocore
    assert isinstance(_endpoint("https://bkt.s3.us-east-2.amazonaws.com"), str)
    assert isinstance(_endpoint("https://bkt.s3.eu-west-1.amazonaws.com"), Address)  # NO_PROXY

    trusted = tls_context(str(CERT))
    subjects = [c["subject"] for c in trusted.get_ca_certs()]
    assert any("bmb test server" in str(s) for s in subjects)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(CERT))  # botocore's fallback, as it reads it
    assert len(tls_context(None).get_ca_certs()) == 1


@pytest.mark.usefixtures("no_aws_env")
async def test_an_endpoint_that_does_not_answer_fails_in_seconds_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A wrong port once waited a minute in silence (every retry of every request): the
    first request now connects once, within the connect timeout, and says where."""

    async def no_answer(*args: object, **kwargs: object) -> None:
        await asyncio.sleep(60)

    monkeypatch.setattr(asyncio, "open_connection", no_answer)
    config = S3Config(
        endpoint_url="http://192.0.2.7:9000", access_key="AKIDPROBE", secret_key="probe-secret",
        connect_timeout=0.2,
    )  # fmt: skip
    async with S3Store(config) as store:
        started = time.monotonic()
        with pytest.raises(EndpointUnreachable) as raised:
            await store.list_versions_page("b")
        assert time.monotonic() - started < 5
    assert raised.value.message == (
        "cannot connect to the S3 endpoint http://192.0.2.7:9000: no answer within 0.2 s"
    )
    assert raised.value.hint and "--endpoint-url" in raised.value.hint
