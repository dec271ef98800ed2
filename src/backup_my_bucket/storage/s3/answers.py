"""What an answer to a fast request means: the result, another attempt (:class:`Retry`:
throttling, 5xx, a dropped connection), botocore's turn (:class:`Fallback`: anything the fast
path was not written for, a region redirect), or botocore's error at once (:class:`Refused`:
a conditional write's 412). Errors take botocore's shapes, so the store translates them as it
translates botocore's own."""

from __future__ import annotations

import re
from collections.abc import Mapping

import botocore.exceptions

from .hooks import THROTTLE_CODES

_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_TRANSIENT_CODES = frozenset({
    "InternalError", "ServiceUnavailable", "RequestTimeout", "RequestTimeoutException",
    "PriorRequestNotComplete",
})  # fmt: skip
# the bucket is in another region, or moved: botocore's redirector follows (botocore/utils.py)
_REDIRECT_CODES = frozenset({
    "PermanentRedirect", "TemporaryRedirect", "AuthorizationHeaderMalformed",
    "IllegalLocationConstraintException",
})  # fmt: skip
# definitive answers about the request's object: they say nothing about the fast path itself
# (405: AWS's HEAD of a delete marker's version)
_DEFINITIVE_STATUS = frozenset({404, 405, 409, 412})
_CODE = re.compile(rb"<Code>([^<]*)</Code>")
_MESSAGE = re.compile(rb"<Message>([^<]*)</Message>")


class Retry(Exception):
    """One attempt failed in a way worth another (throttling, 5xx, a dropped connection)."""

    def __init__(self, reason: str, error: Exception, throttled: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.error, self.throttled = reason, error, throttled


class Refused(Exception):
    """A definitive refusal (a conditional request's 412): botocore's error, raised as is."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class Fallback(Exception):
    """An answer the fast path was not written for: botocore repeats the request.
    ``redirect``: the bucket is elsewhere (botocore follows, the fast path asks again)."""

    def __init__(self, reason: str, suspicious: bool = True, redirect: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.suspicious, self.redirect = reason, suspicious, redirect


def unreached(url: str, exc: BaseException) -> Retry:
    """A request that got no whole answer: retried, and botocore's error when none is left."""
    error = botocore.exceptions.EndpointConnectionError(endpoint_url=url, error=exc)
    return Retry(f"{type(exc).__name__}: {exc}", error)


def judge(
    op: str, status: int, body: bytes, headers: Mapping[str, str]
) -> Retry | Fallback | Refused:
    """What an answer not taken as ``ok`` (or a 200 holding an error, as 500) means for the
    fast path."""
    found = _CODE.search(body)
    code = found.group(1).decode(errors="replace") if found else str(status)
    reason = f"HTTP {status} {code}"
    region = headers.get("x-amz-bucket-region")
    if status in (301, 302, 307) or code in _REDIRECT_CODES or (region and status == 400):
        return Fallback(f"{reason}: the bucket's region is {region or 'elsewhere'}",
                         suspicious=False, redirect=True)  # fmt: skip
    if status == 412 and code == "PreconditionFailed":  # botocore raises it as it comes
        return Refused(client_error(op, status, code, body))
    throttled = code in THROTTLE_CODES or status in (429, 503)
    if status in _RETRY_STATUS or throttled or code in _TRANSIENT_CODES:
        return Retry(reason, client_error(op, status, code, body), throttled)
    return Fallback(reason, suspicious=status not in _DEFINITIVE_STATUS)


def client_error(op: str, status: int, code: str, body: bytes) -> Exception:
    """botocore's ClientError for an error answer."""
    message = _MESSAGE.search(body)
    return botocore.exceptions.ClientError(
        {
            "Error": {
                "Code": code,
                "Message": message.group(1).decode(errors="replace") if message else code,
            },
            "ResponseMetadata": {"HTTPStatusCode": status},  # type: ignore[typeddict-item]
        },
        op,
    )
