"""S3Config and the opening of one store's botocore client: credentials (each set registered
for redaction), retries, the hooks and the fast path."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import urllib.parse
from typing import Any

import botocore.exceptions
import botocore.utils
from aiobotocore.config import AioConfig
from aiobotocore.credentials import AioCredentials
from aiobotocore.session import AioSession

from ...errors import EndpointUnreachable
from .config import S3Config
from .errors import translate_error
from .fastpath import Network, _FastPath, network
from .hooks import _fixed_user_agent, _install_listing_hooks
from .parse import parse_timestamp
from .redact import remember, remember_credentials
from .sigv4 import quote

log = logging.getLogger(__name__)


def _track(credentials: Any) -> None:
    """Register each credential set for redaction when it is used (refreshes included):
    botocore's signer and the fast path both take them from ``get_frozen_credentials``."""
    get = credentials.get_frozen_credentials

    async def tracked() -> Any:
        frozen = get()
        if hasattr(frozen, "__await__"):
            frozen = await frozen
        remember_credentials(frozen)
        return frozen

    credentials.get_frozen_credentials = tracked


async def _credentials(session: AioSession, cfg: S3Config) -> Any:
    """Explicit keys as given (no credential chain, no instance-metadata probe); otherwise
    botocore's chain (None if it found none: the first request fails with our credentials
    error, after what a command checks first)."""
    if cfg.access_key is not None or cfg.secret_key is not None:
        if not (cfg.access_key and cfg.secret_key):
            raise botocore.exceptions.PartialCredentialsError(
                provider="explicit",
                cred_var="secret_key" if cfg.access_key else "access_key",
            )
        remember(cfg.access_key, cfg.secret_key)
        return AioCredentials(cfg.access_key, cfg.secret_key, method="explicit")
    credentials = await session.get_credentials()
    if credentials is None:
        return None
    _track(credentials)
    remember_credentials(await credentials.get_frozen_credentials())
    return credentials


async def probe_endpoint(endpoint_url: str, seconds: float) -> None:
    """Connect to a custom endpoint once, before its first request: a wrong port, host or scheme
    fails now, naming the endpoint, instead of after every retry of every request
    (``max_attempts`` x ``connect_timeout``, a minute of silence). Skipped behind a proxy
    (the proxy connects), and for AWS's own endpoints."""
    if botocore.utils.get_environ_proxies(endpoint_url):
        return
    parts = urllib.parse.urlsplit(endpoint_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, port), seconds)
    except TimeoutError:
        reason = f"no answer within {seconds:g} s"
    except socket.gaierror:
        reason = f"the host name {parts.hostname!r} does not resolve"
    except OSError as exc:  # asyncio's own text is "Connect call failed (...)": say why
        reason = (os.strerror(exc.errno) if exc.errno else exc.strerror) or type(exc).__name__
        reason = reason[0].lower() + reason[1:]
    else:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return
    raise EndpointUnreachable(
        f"cannot connect to the S3 endpoint {endpoint_url}: {reason}",
        hint="is an S3 server listening there? check --endpoint-url (or AWS_ENDPOINT_URL): "
        "scheme, host and port",
    )


async def open_client(
    cfg: S3Config, stack: contextlib.AsyncExitStack
) -> tuple[Any, _FastPath | None, bool]:
    """The configured client (entered into ``stack``), its fast path if any, and whether
    the endpoint is to be probed before the first request (:func:`probe_endpoint`)."""
    try:
        session = AioSession(profile=cfg.profile)
        try:
            session.get_component("response_parser_factory").set_parser_defaults(
                timestamp_parser=parse_timestamp
            )
        except (AttributeError, TypeError, ValueError) as exc:
            log.debug("botocore's own timestamp parser stays (%s)", exc)
        credentials = await _credentials(session, cfg)
        aio_config = AioConfig(
            max_pool_connections=cfg.max_pool_connections,
            retries={"mode": "adaptive", "total_max_attempts": cfg.max_attempts},
            connect_timeout=cfg.connect_timeout,
            read_timeout=cfg.read_timeout,
            s3={"addressing_style": "path" if cfg.endpoint_url else "auto"},
            signature_version="s3v4",
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        client = await stack.enter_async_context(
            session.create_client(
                "s3",
                endpoint_url=cfg.endpoint_url,
                region_name=cfg.region or "us-east-1",
                aws_access_key_id=cfg.access_key,
                aws_secret_access_key=cfg.secret_key,
                config=aio_config,
            )
        )
    except botocore.exceptions.BotoCoreError as exc:
        raise translate_error(exc, "configure", "-") from exc
    signer_credentials = getattr(getattr(client, "_request_signer", None), "_credentials", None)
    if signer_credentials is not None and signer_credentials is not credentials:
        _track(signer_credentials)  # a botocore that copied them: follow its copy too
    _install_listing_hooks(client.meta.events)
    _fixed_user_agent(client)
    fast = await _fast_path(cfg, session, credentials)
    if fast is not None:
        stack.push_async_callback(fast.close)
    # without credentials no request goes out: the first one says so, before any connection
    probe = credentials is not None and bool(cfg.endpoint_url)
    log.info(
        "S3 client for %s (region %s, fast request path %s)",
        cfg.endpoint_url or "AWS",
        client.meta.region_name,
        "on" if fast is not None else "off",
    )
    return client, fast, probe


async def _fast_path(cfg: S3Config, session: AioSession, credentials: Any) -> _FastPath | None:
    if not cfg.endpoint_url:
        return None  # AWS itself: virtual-hosted addressing, botocore's endpoint rules
    if not cfg.fast_path:
        log.debug("fast request path off: turned off by the settings")
        return None
    if credentials is None:
        log.debug("fast request path off: no credentials (botocore's requests will say so)")
        return None
    path = urllib.parse.urlsplit(cfg.endpoint_url).path
    if quote(path) != path:
        log.debug("fast request path off: the endpoint's path %r needs encoding", path)
        return None
    ca_bundle = session.get_config_variable("ca_bundle")
    try:
        net = network(cfg.endpoint_url, ca_bundle if isinstance(ca_bundle, str) else None)
    except (OSError, ValueError) as exc:  # an unreadable bundle: botocore reports it
        net = f"{type(exc).__name__}: {exc}"
    if not isinstance(net, Network):
        log.debug("fast request path off for %s: %s", cfg.endpoint_url, net)
        return None
    if net.proxy:
        log.debug("fast request path for %s goes through the proxy as botocore", cfg.endpoint_url)
    return _FastPath(
        cfg.endpoint_url,
        cfg.region or "us-east-1",
        credentials,
        pool=cfg.max_pool_connections,
        max_attempts=cfg.max_attempts,
        net=net,
        connect_timeout=cfg.connect_timeout,
        read_timeout=cfg.read_timeout,
    )
