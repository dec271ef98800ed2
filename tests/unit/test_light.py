"""A light store's rules (storage/s3/light.py) against botocore's own: the credentials its
``EnvProvider`` loads, the endpoint its rules resolve for each bucket, the regions it accepts,
and every setting that keeps a store from opening light."""

from __future__ import annotations

import itertools
import os
import random
import urllib.request
from pathlib import Path
from typing import Any

import botocore.config
import botocore.credentials
import botocore.exceptions
import botocore.session
import botocore.utils
import pytest

from backup_my_bucket.storage.s3 import S3Config
from backup_my_bucket.storage.s3.address import Address, environ_proxies, proxy_settings
from backup_my_bucket.storage.s3.client import _resolver
from backup_my_bucket.storage.s3.light import Light, env_credentials, light_start

NO_FILE = {"AWS_CONFIG_FILE": "/nonexistent/bmb-test/config"}  # not the machine's own
PROXIES = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXIES:
        monkeypatch.delenv(name, raising=False)


ENV_NAMES = (
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION",
)  # fmt: skip
ENV_VALUES: dict[str, list[str | None]] = {
    "AWS_ACCESS_KEY_ID": [None, "", "AKIDLIGHT"],
    "AWS_SECRET_ACCESS_KEY": [None, "", "s3cr3t/+="],
    "AWS_SESSION_TOKEN": [None, "", "session-token"],
    "AWS_SECURITY_TOKEN": [None, "", "security-token"],
    "AWS_CREDENTIAL_EXPIRATION": [None, "", "2099-01-01T00:00:00Z"],
}


def test_environment_keys_are_what_botocores_env_provider_loads() -> None:
    """Every combination of the five variables (absent, empty, set): static keys exactly when
    botocore's EnvProvider loads static keys, the same ones; otherwise a reason (botocore
    finds none, raises, or loads keys that refresh)."""
    static = 0
    for values in itertools.product(*(ENV_VALUES[n] for n in ENV_NAMES)):
        environ = {n: v for n, v in zip(ENV_NAMES, values, strict=True) if v is not None}
        ours = env_credentials(environ)
        try:
            theirs = botocore.credentials.EnvProvider(environ=environ).load()
        except botocore.exceptions.PartialCredentialsError:
            theirs = None
        if type(theirs) is botocore.credentials.Credentials:
            assert not isinstance(ours, str), environ
            frozen = theirs.get_frozen_credentials()
            theirs_keys = (frozen.access_key, frozen.secret_key, frozen.token)
            assert (ours.access_key, ours.secret_key, ours.token) == theirs_keys, environ
            static += 1
        else:
            assert isinstance(ours, str), environ
    assert static == 18  # 3 x 3 token values, an expiry absent or empty


# custom endpoints in path style, as tests/unit/test_sigv4.py uses them
ENDPOINTS = [
    "http://127.0.0.1:8333",
    "http://[::1]:9000",
    "https://[2001:db8::1]",
    "https://S3.Example.COM:443",
    "http://minio.local:80/s3/prefix",
    "https://gateway.example.net:8443/s3/v1/",
    "http://h:9000/",
]
ODD_BUCKETS = [
    "b", "ab", "abc", "Under_Score", "x--y", "a--x-s3", "bkt--op-s3", "a" * 63, "a" * 64,
    "-ab", "ab-", "a.b", "a..b", "192.168.5.4", "B", "a b", "b%2F", "arn:aws:s3:::b",
    "xn--abc", "bkt-s3alias", "my.bucket.x",
]  # fmt: skip


def _buckets(rng: random.Random) -> list[str]:
    chars = "abcz09.-"
    generated = ["".join(rng.choice(chars) for _ in range(rng.randint(3, 20))) for _ in range(120)]
    return ODD_BUCKETS + generated


async def test_light_addresses_are_botocores() -> None:
    """For every bucket name a light store addresses itself, botocore's endpoint rules give
    the same address (origin, path, signed host, signing region) for the operations the
    fast path sends; the names it leaves to botocore include every special one."""
    session = botocore.session.get_session()
    rng = random.Random(16)
    buckets = _buckets(rng)
    served: set[str] = set()
    for endpoint, region in itertools.product(ENDPOINTS, ["us-east-1", "eu-west-3"]):
        config = S3Config(endpoint_url=endpoint, region=region, access_key="AK", secret_key="S")
        light = light_start(config, NO_FILE)
        assert isinstance(light, Light), (endpoint, light)
        client = session.create_client(
            "s3", endpoint_url=endpoint, region_name=region, aws_access_key_id="AK",
            aws_secret_access_key="S", config=botocore.config.Config(
                s3={"addressing_style": "path"}, signature_version="s3v4"
            ),
        )  # fmt: skip
        resolve = _resolver(client)
        assert not isinstance(resolve, str)
        for bucket in buckets:
            ours = light.address(bucket)
            if ours is None:
                continue
            served.add(bucket)
            for op in ("HeadBucket", "GetObject", "PutObject", "ListObjectVersions"):
                theirs = await resolve(bucket, op)
                assert isinstance(theirs, Address), (endpoint, bucket, op, theirs)
                assert ours == theirs, (endpoint, bucket, op)
    assert {"abc", "my.bucket.x", "192.168.5.4", "a" * 63} <= served
    assert not served & {"x--y", "a--x-s3", "bkt--op-s3", "Under_Score", "B", "a" * 64, "ab"}
    assert len(served) > 50


def test_region_names_are_checked_as_botocore_checks_them() -> None:
    rng = random.Random(3)
    samples = ["us-east-1", "eu-west-3", "a", "-a", "a-", "a_b", "x" * 63, "x" * 64, "", "us east"]
    samples += [
        "".join(rng.choice("ab-1_ .") for _ in range(rng.randint(1, 8))) for _ in range(300)
    ]
    for region in samples:
        config = S3Config(endpoint_url="http://h:1", region=region, access_key="A", secret_key="S")
        try:  # no region: botocore's client is made for us-east-1, as the fast path signs
            botocore.utils.validate_region_name(region or "us-east-1")
            valid = True
        except botocore.exceptions.InvalidRegionError:
            valid = False
        assert isinstance(light_start(config, NO_FILE), Light) == valid, region


KEYS = {"access_key": "AKIDLIGHT", "secret_key": "s3cr3t"}


@pytest.mark.parametrize(
    ("settings", "environ", "why"),
    [
        ({"fast_path": False}, {}, "the fast path is off"),
        ({"endpoint_url": None}, {}, "AWS's endpoints"),
        ({"addressing_style": "virtual"}, {}, "virtual-hosted"),
        ({"region": "fips-us-east-1"}, {}, "region"),
        ({"region": "us-east-1-fips"}, {}, "region"),
        ({"endpoint_url": "http://h:9000?x=1"}, {}, "endpoint"),
        ({"endpoint_url": "http://user:pw@h:9000"}, {}, "endpoint"),
        ({"endpoint_url": "http://h:9000/a%20b"}, {}, "endpoint"),
        ({"endpoint_url": "ftp://h:9000"}, {}, "endpoint"),
        ({}, {"AWS_USE_FIPS_ENDPOINT": "true"}, "AWS_USE_FIPS_ENDPOINT"),
        ({}, {"AWS_USE_DUALSTACK_ENDPOINT": "TRUE"}, "AWS_USE_DUALSTACK_ENDPOINT"),
        ({"profile": "other"}, {}, "profile"),
        ({}, {"AWS_PROFILE": "other"}, "profile"),
        ({}, {"AWS_DEFAULT_PROFILE": "other"}, "profile"),
        ({}, {"http_proxy": "http://proxy:3128"}, "proxy"),
        ({"secret_key": None}, {}, "incomplete"),
        ({"access_key": None, "secret_key": None}, {}, "AWS_ACCESS_KEY_ID"),
        (
            {"access_key": None, "secret_key": None},
            {
                "AWS_ACCESS_KEY_ID": "A",
                "AWS_SECRET_ACCESS_KEY": "S",
                "AWS_CREDENTIAL_EXPIRATION": "2099-01-01T00:00:00Z",
            },
            "expiry",
        ),
    ],
)
def test_what_keeps_a_store_from_opening_light(
    settings: dict[str, Any], environ: dict[str, str], why: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    base: dict[str, Any] = {"endpoint_url": "http://127.0.0.1:8333", "region": "us-east-1"}
    assert isinstance(light_start(S3Config(**base, **KEYS), NO_FILE), Light)
    for name, value in environ.items():
        if name in PROXIES:
            monkeypatch.setenv(name, value)  # read where botocore reads them
    found = light_start(S3Config(**{**base, **KEYS, **settings}), {**NO_FILE, **environ})
    assert isinstance(found, str) and why in found, found


def test_an_aws_config_file_keeps_botocore(tmp_path: Path) -> None:
    config = S3Config(endpoint_url="http://127.0.0.1:8333", **KEYS)
    assert isinstance(light_start(config, {"AWS_CONFIG_FILE": str(tmp_path / "none")}), Light)
    (tmp_path / "config").write_text("[default]\nuse_fips_endpoint = true\n")
    found = light_start(config, {"AWS_CONFIG_FILE": str(tmp_path / "config")})
    assert isinstance(found, str) and "config file" in found


def test_a_light_store_signs_with_the_keys_it_was_given() -> None:
    config = S3Config(endpoint_url="https://s3.example.net:8443/base", region="eu-west-3", **KEYS)
    light = light_start(config, {**NO_FILE, "AWS_CA_BUNDLE": "/b.pem", "AWS_ACCESS_KEY_ID": "X"})
    assert isinstance(light, Light)
    frozen = light.credentials.get_frozen_credentials()
    assert (frozen.access_key, frozen.secret_key, frozen.token) == ("AKIDLIGHT", "s3cr3t", None)
    assert light.ca_bundle == "/b.pem"
    where = light.address("bkt")
    assert where == Address("https://s3.example.net:8443", "/base/bkt", "s3.example.net:8443",
                            "eu-west-3")  # fmt: skip
    environ = {**NO_FILE, "AWS_ACCESS_KEY_ID": "E", "AWS_SECRET_ACCESS_KEY": "F",
               "AWS_SESSION_TOKEN": "T"}  # fmt: skip
    env = light_start(S3Config(endpoint_url="http://h:1"), environ)
    assert isinstance(env, Light)
    assert (env.credentials.access_key, env.credentials.token, env.region) == (
        "E",
        "T",
        "us-east-1",
    )


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"HTTP_PROXY": "http://proxy:3128"},
        {"https_proxy": "http://proxy:3129", "NO_PROXY": "127.0.0.1"},
        {"no_proxy": "*"},
        {"HTTP_PROXY": ""},
        {"all_proxy": "socks5://proxy:1080"},
    ],
)
def test_proxy_settings_are_urllibs_and_botocores(
    environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a *_proxy variable the answer is known without urllib.request; with one, it is
    urllib's; per URL, botocore's."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert proxy_settings() == urllib.request.getproxies()
    for url in ("http://127.0.0.1:8333", "https://s3.example.net", "http://h:9000/base"):
        assert environ_proxies(url) == botocore.utils.get_environ_proxies(url), url
