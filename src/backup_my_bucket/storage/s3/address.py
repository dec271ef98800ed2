"""Where the fast path sends one bucket's requests, and how it signs them: botocore's answer.

For each bucket and operation the fast path asks botocore's endpoint ruleset resolver (the same
call botocore's own region redirector makes) for the endpoint, and follows it:

- on AWS, virtual-hosted style (``https://bucket.s3.eu-west-1.amazonaws.com``, and
  ``https://bucket.s3.amazonaws.com`` for us-east-1 with botocore's default global endpoint),
  path style where botocore uses it (a bucket name that is not a DNS label, or holds dots over
  HTTPS: ``https://s3.eu-west-1.amazonaws.com/my.bucket``), the other partitions
  (``amazonaws.com.cn``...), FIPS or dual-stack when configured;
- on a custom endpoint, the configured addressing style (path by default, virtual-hosted with
  ``addressing_style = virtual``: ``https://bucket.s3.example.net``);
- the region botocore learned for the bucket from a redirect (its cache of bucket regions),
  for the URL and the signature.

Only plain SigV4 for ``s3`` is served; anything else botocore's endpoint asks for (SigV4a
multi-region access points, S3 Express sessions, extra endpoint headers, a path that needs
encoding) stays with botocore, for that bucket only.

The network settings are botocore's, per URL: the proxy it would take for that host
(``HTTP(S)_PROXY``, ``NO_PROXY``) and the CA bundle it would trust (``AWS_CA_BUNDLE``, the
profile's ``ca_bundle``, ``REQUESTS_CA_BUNDLE``, else its own), resolved by its own functions.
A proxy it cannot use the same way (TLS to the proxy) leaves that host to botocore.
"""

from __future__ import annotations

import functools
import os
import ssl
import sys
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .sigv4 import canonical_host, quote


def proxy_settings() -> dict[str, str]:
    """The proxies urllib finds (``urllib.request.getproxies``: botocore's source), by scheme;
    on Linux without a ``*_proxy`` variable, known to be none without importing urllib.request
    (http.client, email: a few milliseconds of every command's start-up)."""
    if sys.platform not in ("darwin", "win32") and not any(
        value and name.lower().endswith("_proxy") for name, value in os.environ.items()
    ):
        return {}
    import urllib.request

    return urllib.request.getproxies()


def environ_proxies(url: str) -> dict[str, str]:
    """botocore's ``get_environ_proxies``; without any proxy setting (its answer is then
    empty whatever the URL), botocore is not imported to say so."""
    if not proxy_settings():
        return {}
    import botocore.utils

    found: dict[str, str] = botocore.utils.get_environ_proxies(url)
    return found


def proxy_for(url: str) -> tuple[str | None, dict[str, str]] | str:
    """The proxy botocore would take for ``url`` and its headers, or why we cannot follow."""
    proxies_found = environ_proxies(url)
    if not proxies_found:
        return None, {}
    import botocore.httpsession

    proxies = botocore.httpsession.ProxyConfiguration(proxies=proxies_found)
    proxy = proxies.proxy_url_for(url)
    if proxy and not proxy.startswith("http:"):
        scheme = urllib.parse.urlsplit(proxy).scheme
        return f"the endpoint's proxy is {scheme}://, not plain HTTP (botocore takes it alone)"
    return proxy or None, dict(proxies.proxy_headers_for(url))


def tls_context(ca_bundle: str | None) -> ssl.SSLContext:
    """The trust botocore's endpoint verifies against: the session's bundle (``AWS_CA_BUNDLE``
    or the profile's), else ``REQUESTS_CA_BUNDLE``, else botocore's own."""
    import botocore.httpsession

    verify: Any = ca_bundle or os.environ.get("REQUESTS_CA_BUNDLE") or True
    tls: ssl.SSLContext = botocore.httpsession.create_urllib3_context()
    tls.verify_mode = ssl.CERT_REQUIRED
    tls.check_hostname = True
    cafile = botocore.httpsession.get_cert_path(verify)
    if cafile:
        tls.load_verify_locations(cafile)
    return tls


def join_path(base: str, url_path: str) -> str:
    """An operation's path under the endpoint's, as botocore joins them (``_urljoin``)."""
    if not url_path or url_path == "/":
        return base or "/"
    if base.endswith("/") and url_path.startswith("/"):
        return base[:-1] + url_path
    return base + url_path


@dataclass(frozen=True)
class Address:
    """One bucket's endpoint as botocore resolved it: where requests go, how they are signed."""

    origin: str  # scheme://host[:port]
    path: str  # the endpoint's path ('' when virtual-hosted, '/bucket' in path style)
    host: str  # the Host header botocore signs
    region: str  # the signing region
    proxy: str | None = None
    proxy_headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def tls(self) -> bool:
        return self.origin.startswith("https:")

    @functools.cached_property
    def socket(self) -> tuple[str, int]:
        """The host name (no brackets) and port to connect to."""
        parts = urllib.parse.urlsplit(self.origin)
        return parts.hostname or "", parts.port or (443 if self.tls else 80)

    def target(self, url_path: str, query: str = "") -> tuple[str, str]:
        """(the request's URL, its path as signed) for an operation's path and query."""
        path = join_path(self.path, url_path)
        return self.origin + path + (f"?{query}" if query else ""), path


def address(
    url: str, headers: Mapping[str, Any], properties: Mapping[str, Any], region: str
) -> Address | str:
    """The :class:`Address` of a resolved endpoint (botocore's ``url``, ``headers`` and
    ``properties``), or why the fast path leaves it to botocore. ``region``: the client's,
    signed with when the endpoint names none."""
    if headers:
        return f"the endpoint asks for headers of its own ({', '.join(sorted(headers))})"
    schemes = properties.get("authSchemes") or [{"name": "sigv4", "signingName": "s3"}]
    scheme = schemes[0]
    name = str(scheme.get("name", "")).split("#")[-1]
    if name != "sigv4" or scheme.get("signingName", "s3") != "s3":
        return f"the endpoint signs with {name or 'an unknown scheme'}, not SigV4 for s3"
    if scheme.get("disableDoubleEncoding") is False:
        return "the endpoint asks for double-encoded paths"
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        return f"unexpected endpoint URL {url!r}"
    if quote(parts.path) != parts.path:
        return f"the endpoint's path {parts.path!r} needs encoding"
    origin = f"{parts.scheme}://{parts.netloc}"
    proxy = proxy_for(origin)
    if isinstance(proxy, str):
        return proxy
    return Address(
        origin=origin,
        path=parts.path,
        host=canonical_host(url),
        region=str(scheme.get("signingRegion") or region),
        proxy=proxy[0],
        proxy_headers=proxy[1],
    )
