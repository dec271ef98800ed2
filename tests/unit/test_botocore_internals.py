"""The botocore internals S3Store relies on, pinned: when one moves in a new botocore this
fails loudly (pyproject.toml caps aiobotocore/botocore to the versions these ran with), while
at run time the piece that needs it turns itself off (a debug line) instead of breaking."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import botocore.handlers
import pytest

from backup_my_bucket.storage.s3 import S3Config, hooks, parse_timestamp
from backup_my_bucket.storage.s3.client import _resolver, open_client

CONFIG = S3Config(endpoint_url="http://127.0.0.1:9", access_key="AKIDPIN", secret_key="pinned")


async def _client() -> tuple[Any, contextlib.AsyncExitStack]:
    stack = contextlib.AsyncExitStack()
    client, _, _ = await open_client(CONFIG, stack)
    return client, stack


async def test_the_signer_signs_with_the_credentials_object_we_track() -> None:
    """Redaction of refreshed credentials wraps get_frozen_credentials of that object."""
    client, stack = await _client()
    async with stack:
        credentials = client._request_signer._credentials
        assert credentials is not None
        frozen = await credentials.get_frozen_credentials()
        assert (frozen.access_key, frozen.secret_key) == ("AKIDPIN", "pinned")


async def test_user_agent_creator_and_its_per_request_handler() -> None:
    client, stack = await _client()
    async with stack:
        creator = client._user_agent_creator
        assert callable(creator.to_string) and "Botocore" in creator.to_string()
        assert callable(creator.rebuild_and_replace_user_agent_handler)


def test_the_200_error_check_botocore_registers_for_s3() -> None:
    stock = botocore.handlers._handle_200_error
    assert any(
        event == "before-parse.s3.*" and handler is stock
        for event, handler, *_ in botocore.handlers.BUILTIN_HANDLERS
    )


async def test_parser_factory_defaults_take_our_timestamp_parser() -> None:
    client, stack = await _client()
    async with stack:
        before = parse_timestamp.cache_info().misses
        shape = client.meta.service_model.operation_model("HeadObject").output_shape
        # the endpoint parses every answer with a parser from the session's factory
        parser = client._endpoint._response_parser_factory.create_parser("rest-xml")
        parsed = await parser.parse(
            {"status_code": 200, "headers": {"Last-Modified": "Mon, 30 Nov 2026 01:02:03 GMT"},
             "body": b""},
            shape,
        )  # fmt: skip
        assert parsed["LastModified"].year == 2026
        assert parse_timestamp.cache_info().misses == before + 1


async def test_the_ruleset_resolver_the_fast_path_asks_for_endpoints() -> None:
    """The fast path resolves each bucket's endpoint as botocore's region redirector does:
    ``client._ruleset_resolver.construct_endpoint`` (awaitable in aiobotocore); that its
    answer follows the region the redirector cached is tested with AWS-shaped redirects in
    tests/reliability/test_virtual_hosted.py."""
    client, stack = await _client()
    async with stack:
        model = client.meta.service_model.operation_model("CopyObject")
        endpoint = await client._ruleset_resolver.construct_endpoint(model, {"Bucket": "b"}, {})
        assert endpoint.url == "http://127.0.0.1:9/b" and endpoint.headers == {}
        assert endpoint.properties["authSchemes"][0]["signingRegion"] == "us-east-1"
        resolve = _resolver(client)
        assert not isinstance(resolve, str)
        where = await resolve("b", "CopyObject")
        assert not isinstance(where, str) and (where.origin, where.path) == (
            "http://127.0.0.1:9",
            "/b",
        )

    class Bare:
        pass

    assert isinstance(_resolver(Bare()), str)  # without it: the fast path is off, and says why


async def test_without_the_internals_the_hooks_turn_themselves_off(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="backup_my_bucket")
    monkeypatch.delattr(botocore.handlers, "_handle_200_error")

    class Bare:
        meta = None

    hooks._fixed_user_agent(Bare())
    _, stack = await _client()
    await stack.aclose()
    assert "User-Agent per request" in caplog.text and "check of every 200" in caplog.text


def test_the_quick_loader_reads_the_same_models_as_botocores_own() -> None:
    """_quick_loading swaps botocore's JSON reading and its service listing (start-up): the
    S3 model, the endpoint rules and the service names it finds are botocore's own."""
    from collections import OrderedDict

    import botocore.session

    from backup_my_bucket.storage.s3.client import _quick_loading

    plain = botocore.session.get_session().get_component("data_loader")
    quick_session = botocore.session.get_session()
    _quick_loading(quick_session)  # type: ignore[arg-type]  # the same loader component
    quick = quick_session.get_component("data_loader")
    assert type(plain.load_data("_retry")) is OrderedDict
    assert type(quick.load_data("_retry")) is dict  # read by ours, not botocore's
    for type_name in ("service-2", "endpoint-rule-set-1"):
        assert quick.load_service_model("s3", type_name) == plain.load_service_model(
            "s3", type_name
        )
    assert quick.load_data("endpoints") == plain.load_data("endpoints")
    assert set(plain.list_available_services("service-2")) <= set(
        quick.list_available_services("service-2")
    )
    assert {"s3", "sts", "sso"} <= set(quick.list_available_services("service-2"))
