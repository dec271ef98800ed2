"""The opening of one store's botocore client: its session, credentials (each set registered
for redaction), retries, the hooks and, when the store opens with it, the fast path.

Imported only when a store builds its client (storage/s3/connection.py): aiobotocore and
aiohttp come with it (:mod:`.lazytls` first, so that aiohttp's default TLS contexts read no
certificates until one is used)."""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import os
from typing import Any

# isort: off
from . import lazytls  # noqa: F401  (first: aiohttp without its TLS contexts' certificates)
import botocore.exceptions
import botocore.loaders
from aiobotocore.config import AioConfig
from aiobotocore.credentials import AioCredentials
from aiobotocore.session import AioSession

# isort: on
from .address import Address, address, proxy_for
from .config import S3Config
from .errors import translate_error
from .fastpath import Resolver, _FastPath
from .hooks import _fixed_user_agent, _install_listing_hooks
from .parse import parse_timestamp
from .redact import remember, remember_credentials

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


class _DictJSONLoader(botocore.loaders.JSONFileLoader):
    """botocore's model files read into plain dicts (ordered since Python 3.7) rather than
    OrderedDicts: about half the decoding time of the ~1 MB of JSON every client loads."""

    def _load_file(self, full_path: str, open_method: Any) -> Any:
        if not os.path.isfile(full_path):
            return None
        with open_method(full_path, "rb") as fp:
            return json.loads(fp.read())


def _service_dirs(loader: Any, type_name: str) -> list[str]:
    """The services on botocore's data path, by directory name alone (its own listing also
    opens each of ~400 directories to look for ``type_name``; a service without that file
    still fails to load, with DataNotFoundError)."""
    found: set[str] = set()
    for path in loader._potential_locations():
        with os.scandir(path) as entries:
            found.update(entry.name for entry in entries if entry.is_dir())
    return sorted(found)


def _quick_loading(session: AioSession) -> None:
    """Make the client's start-up cheaper (~45 ms of CPU per process, measured on the
    ``open`` of a store); botocore's own loading stays where its internals differ."""
    loader = session.get_component("data_loader")
    if not hasattr(loader, "_potential_locations") or not hasattr(
        botocore.loaders.JSONFileLoader, "_load_file"
    ):
        log.debug("botocore's data loader stays as it is (its internals changed)")
        return
    loader.file_loader = _DictJSONLoader()
    loader.list_available_services = lambda type_name: _service_dirs(loader, type_name)


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


async def open_client(
    cfg: S3Config, stack: contextlib.AsyncExitStack, fast: Resolver | None = None
) -> tuple[Any, _FastPath | None, bool]:
    """The configured client (entered into ``stack``); with ``fast`` (where the fast path asks
    for a bucket's endpoint), its fast path if it can have one; whether the endpoint is to be
    probed before the first request (``Connection._reach``)."""
    try:
        session = AioSession(profile=cfg.profile)
        _quick_loading(session)
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
            s3={"addressing_style": cfg.addressing()},
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
                verify=False if _plain_http(cfg.endpoint_url) else None,
            )
        )
    except botocore.exceptions.BotoCoreError as exc:
        raise translate_error(exc, "configure", "-") from exc
    signer_credentials = getattr(getattr(client, "_request_signer", None), "_credentials", None)
    if signer_credentials is not None and signer_credentials is not credentials:
        _track(signer_credentials)  # a botocore that copied them: follow its copy too
    _install_listing_hooks(client.meta.events)
    _fixed_user_agent(client)
    fast_path = None if fast is None else _fast_path(cfg, session, client, credentials, fast)
    if fast_path is not None:
        stack.push_async_callback(fast_path.close)
    # without credentials no request goes out: the first one says so, before any connection
    probe = credentials is not None and bool(cfg.endpoint_url)
    if fast is None:  # a light store's: its fast path was opened without botocore
        log.debug("botocore's client for %s built on first need", cfg.endpoint_url or "AWS")
    else:
        log.info(
            "S3 client for %s (region %s, fast request path %s)",
            cfg.endpoint_url or "AWS",
            client.meta.region_name,
            "on" if fast_path is not None else "off",
        )
    return client, fast_path, probe


def _plain_http(endpoint_url: str | None) -> bool:
    """No TLS anywhere on the way (an http endpoint, no HTTPS proxy): botocore then needs no
    TLS context (building one reads the whole CA bundle)."""
    if not endpoint_url or not endpoint_url.startswith("http://"):
        return False
    proxy = proxy_for(endpoint_url)
    return not isinstance(proxy, str) and not (proxy[0] or "").startswith("https:")


def _resolver(client: Any) -> Resolver | str:
    """botocore's endpoint for a bucket and operation: its ruleset resolver, as its region
    redirector calls it (so a region it learned from a redirect is in the answer)."""
    resolver = getattr(client, "_ruleset_resolver", None)
    construct = getattr(resolver, "construct_endpoint", None)
    if construct is None:
        return "this botocore has no ruleset resolver to ask for endpoints"
    model = client.meta.service_model
    region = client.meta.region_name

    async def resolve(bucket: str, op: str) -> Address | str:
        try:
            endpoint = construct(model.operation_model(op), {"Bucket": bucket}, {})
            if inspect.isawaitable(endpoint):
                endpoint = await endpoint
            return address(endpoint.url, endpoint.headers, endpoint.properties, region)
        except Exception as exc:  # botocore's own request will report what its rules refuse
            return f"no endpoint from botocore ({type(exc).__name__}: {exc})"

    return resolve


def _fast_path(
    cfg: S3Config, session: AioSession, client: Any, credentials: Any, resolve: Resolver
) -> _FastPath | None:
    if not cfg.fast_path:
        log.debug("fast request path off: turned off by the settings")
        return None
    if credentials is None:
        log.debug("fast request path off: no credentials (botocore's requests will say so)")
        return None
    if isinstance(why := _resolver(client), str):
        log.debug("fast request path off: %s", why)
        return None
    ca_bundle = session.get_config_variable("ca_bundle")
    return _FastPath.of(
        cfg, resolve, credentials, ca_bundle if isinstance(ca_bundle, str) else None
    )
