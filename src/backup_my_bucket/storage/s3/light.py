"""A store opened without botocore: when the fast path can serve every request on its own.

Building botocore's client costs ~0.25 s of CPU per process (aiobotocore and aiohttp imported,
the service model and endpoint rules loaded), before the first request; a command whose
requests the fast path serves (a no-op backup, ``snapshots``) never needs it. The store opens
*light* when everything botocore would decide for the fast path is known without it:

- a custom endpoint (``http://`` or ``https://``, a host, a plain path, no query) addressed in
  path style, in a valid region that is not a FIPS one: botocore's endpoint rules give
  ``origin + path + "/" + bucket``, signed for that region, for every bucket named in lower
  case letters, digits, dots and single hyphens (:func:`light_address`; any other name asks
  botocore's rules, after building the client);
- credentials known without botocore's chain: the keys given (``S3Config``), else, with no
  profile named, the environment's static keys, which are what the chain's first provider
  returns (botocore's ``EnvProvider``: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, the
  token of ``AWS_SECURITY_TOKEN`` or ``AWS_SESSION_TOKEN``; keys with an expiry refresh, so
  they stay with botocore);
- nothing botocore would read from a profile: no AWS config file, no ``AWS_PROFILE`` or
  ``AWS_DEFAULT_PROFILE``, no FIPS or dual-stack setting in the environment (botocore refuses
  both with a custom endpoint), no proxy for the endpoint's scheme.

Otherwise (:func:`light_start` says why, at debug level) the store builds botocore's client when
it opens, as before. A light store builds it the first time a request needs it (one the fast
path does not serve, a fallback); tests/unit/test_light.py checks each rule against botocore.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from .address import Address, proxy_settings
from .config import S3Config
from .sigv4 import canonical_host, quote

# botocore.utils.validate_region_name's pattern
_REGION = re.compile(r"^(?![0-9]+$)(?!-)[a-zA-Z0-9-]{,63}(?<!-)$")
# names botocore's rules take as plain buckets on a custom endpoint; "--" (S3 Express'
# "--x-s3", access point aliases...) and anything else ask botocore's rules
_PLAIN_BUCKET = re.compile(r"^[a-z0-9](?:[a-z0-9.]|-(?!-)){1,61}[a-z0-9]$")
_OFF = ("", "false")  # a FIPS or dual-stack setting with another value may turn it on


@dataclass(frozen=True, slots=True)
class StaticCredentials:
    """Keys that never refresh, shaped as botocore's credentials for the fast path's signer."""

    access_key: str
    secret_key: str
    token: str | None = None
    method: str = "explicit"

    def get_frozen_credentials(self) -> StaticCredentials:
        return self


@dataclass(frozen=True, slots=True)
class Light:
    """What a light store knows without botocore."""

    credentials: StaticCredentials
    region: str
    origin: str  # scheme://host[:port] as configured
    base: str  # the endpoint's path, ending with "/"
    host: str  # the Host header botocore signs
    ca_bundle: str | None  # AWS_CA_BUNDLE, for an HTTPS endpoint

    def address(self, bucket: str) -> Address | None:
        """The bucket's path-style endpoint, as botocore's rules resolve it; None for a name
        those rules may treat otherwise (botocore is asked)."""
        if not _PLAIN_BUCKET.match(bucket):
            return None
        return Address(self.origin, self.base + bucket, self.host, self.region)


def env_credentials(environ: Mapping[str, str]) -> StaticCredentials | str:
    """The static keys botocore's ``EnvProvider`` loads from ``environ``, or why it would not
    load static keys (none: the chain goes on; incomplete: it raises; an expiry: it refreshes)."""
    access = environ.get("AWS_ACCESS_KEY_ID", "")
    if not access:
        return "no AWS_ACCESS_KEY_ID in the environment (botocore's chain looks further)"
    secret = environ.get("AWS_SECRET_ACCESS_KEY", "")
    if not secret:
        return "AWS_ACCESS_KEY_ID without AWS_SECRET_ACCESS_KEY (botocore says so)"
    if environ.get("AWS_CREDENTIAL_EXPIRATION", ""):
        return "credentials with an expiry (botocore refreshes them)"
    tokens = (environ.get(name, "") for name in ("AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"))
    return StaticCredentials(access, secret, next((t for t in tokens if t), None), "env")


def light_start(cfg: S3Config, environ: Mapping[str, str] = os.environ) -> Light | str:
    """How ``cfg``'s store opens without botocore, or why it cannot."""
    if not cfg.fast_path:
        return "the fast path is off"
    url = cfg.endpoint_url
    if not url:
        return "AWS's endpoints (botocore's rules address each bucket)"
    if cfg.addressing() != "path":
        return "virtual-hosted addressing (botocore's rules address each bucket)"
    region = cfg.region or "us-east-1"
    if not _REGION.match(region) or "fips" in region:
        return f"the region {region!r} (botocore checks it)"
    parts = urllib.parse.urlsplit(url)
    if (
        not url.startswith(("http://", "https://"))
        or not parts.hostname
        or "@" in parts.netloc
        or parts.query
        or parts.fragment
        or "//" in parts.path
        or quote(parts.path) != parts.path
    ):
        return f"the endpoint {url!r} (botocore's rules read it)"
    for name in ("AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT"):
        if environ.get(name, "").strip().lower() not in _OFF:
            return f"{name} is set"
    if cfg.profile or environ.get("AWS_PROFILE") or environ.get("AWS_DEFAULT_PROFILE"):
        return "a named profile (botocore reads it)"
    config_file = environ.get("AWS_CONFIG_FILE") or "~/.aws/config"
    if os.path.exists(os.path.expanduser(config_file)):
        return f"an AWS config file, {config_file} (botocore reads it)"
    if proxy_settings().get(parts.scheme):
        return f"a proxy for {parts.scheme}:// (botocore's rules choose it per host)"
    credentials = _credentials(cfg, environ)
    if isinstance(credentials, str):
        return credentials
    return Light(
        credentials=credentials,
        region=region,
        origin=f"{parts.scheme}://{parts.netloc}",
        base=parts.path if parts.path.endswith("/") else parts.path + "/",
        host=canonical_host(url),
        ca_bundle=environ.get("AWS_CA_BUNDLE") or None,
    )


def _credentials(cfg: S3Config, environ: Mapping[str, str]) -> StaticCredentials | str:
    if cfg.access_key is not None or cfg.secret_key is not None:
        if not (cfg.access_key and cfg.secret_key):
            return "an incomplete key pair (botocore says so)"
        return StaticCredentials(cfg.access_key, cfg.secret_key)
    return env_credentials(environ)
