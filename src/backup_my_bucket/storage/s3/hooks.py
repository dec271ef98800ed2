"""Surgery on the botocore client: the listing ``before-parse`` hooks, botocore's check of
every 200 for an embedded error (skipped for the two listings) and a User-Agent rendered
once per client. Relies on botocore internals; each piece turns itself off without them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ...model import ObjectPage, VersionPage
from .parse import parse_versions_xml
from .parse_objects import parse_objects_xml
from .xmltext import ListingParseError

log = logging.getLogger(__name__)
_PAGE = "BmbPage"  # where the before-parse hook leaves its parse in the response dict


# botocore checks every 200 answer for an embedded S3 error by parsing the whole body with
# expat: on a 1,000-entry listing page that costs several times our own parse. The two listing
# hooks make the same check themselves (a complete document, not an <Error>), so the stock
# check is skipped for them and kept for every other operation.
_LISTING_ROOTS = {"ListObjectVersions": b"ListVersionsResult", "ListObjectsV2": b"ListBucketResult"}


def _make_listing_hook(
    parse: Callable[[bytes], VersionPage] | Callable[[bytes], ObjectPage], root: bytes
) -> Callable[..., None]:
    closing = b"</" + root + b">"

    def hook(
        response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any
    ) -> None:
        if response_dict.get("status_code", 500) >= 300:
            return  # botocore parses errors as usual
        body: bytes = response_dict["body"]
        if not body.rstrip().endswith(closing):
            # an <Error> in a 200, or a body cut short: botocore's rule, a 500 to retry
            response_dict["status_code"] = 500
            return
        try:
            customized_response_dict[_PAGE] = parse(body)
        except ListingParseError as exc:  # retried like a page cut short
            log.debug("listing page unparsable, retried: %s", exc)
            response_dict["status_code"] = 500
            return
        response_dict["body"] = b""  # nothing left for botocore's slow parser to do

    return hook


def _install_listing_hooks(events: Any) -> None:
    events.register_first(
        "before-parse.s3.ListObjectVersions",
        _make_listing_hook(parse_versions_xml, _LISTING_ROOTS["ListObjectVersions"]),
    )
    events.register_first(
        "before-parse.s3.ListObjectsV2",
        _make_listing_hook(parse_objects_xml, _LISTING_ROOTS["ListObjectsV2"]),
    )
    import botocore.handlers  # with the client, never before

    stock: Callable[..., None] | None = getattr(botocore.handlers, "_handle_200_error", None)
    if stock is None:
        log.debug("botocore's check of every 200 stays for listings (its internals moved)")
        return  # another botocore: its own check stays, merely slower

    def check_200_error_except_listings(operation_model: Any, **kwargs: Any) -> None:
        if operation_model.name not in _LISTING_ROOTS:
            stock(operation_model=operation_model, **kwargs)

    events.unregister("before-parse.s3.*", stock)
    events.register_first("before-parse.s3.*", check_200_error_except_listings)


def _fixed_user_agent(client: Any) -> None:
    """Build the User-Agent once per client, not twice per request.

    botocore renders it for every request and again in a ``request-created`` handler, which
    cost ~10 % of the client CPU of a server-side copy. The string only varies with feature
    flags that are fixed for our client, so the first rendering is kept.
    """
    creator = getattr(client, "_user_agent_creator", None)
    rebuild = getattr(creator, "rebuild_and_replace_user_agent_handler", None)
    if creator is None or rebuild is None:  # a botocore without them: nothing to save
        log.debug("botocore renders the User-Agent per request (its internals moved)")
        return
    rendered = creator.to_string()
    client.meta.events.unregister("request-created.s3", rebuild)
    creator.to_string = lambda: rendered


THROTTLE_CODES = frozenset({
    "SlowDown", "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled",
    "RequestLimitExceeded", "TooManyRequests", "TooManyRequestsException",
    "BandwidthLimitExceeded", "RequestThrottledException", "ProvisionedThroughputExceededException",
})  # fmt: skip


def _count_throttles(events: Any, counted: Callable[[], None]) -> None:
    """Call ``counted`` for every throttled answer botocore gets (503 SlowDown and the like),
    before its retry handler decides: the store's count paces the copy pools (engine/pace.py).
    Answers nothing, so botocore's own retry decision stands."""

    def on_answer(response: Any = None, **_: Any) -> None:
        if response is None:
            return
        status = getattr(response[0], "status_code", None)
        code = (response[1] or {}).get("Error", {}).get("Code")
        if status in (429, 503) or code in THROTTLE_CODES:
            counted()

    events.register_first("needs-retry.s3", on_answer)
