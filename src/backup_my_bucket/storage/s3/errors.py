"""botocore's exceptions translated into the project's exception tree, credentials redacted."""

from __future__ import annotations

import sys
from collections.abc import Callable

import botocore.exceptions

from ...errors import (
    AccessDenied,
    BackupError,
    BucketNotFound,
    EndpointUnreachable,
    InvalidCredentials,
    ObjectNotFound,
    PreconditionFailed,
    StorageError,
)
from .redact import redact

_NOT_FOUND_CODES = {"NoSuchKey", "NoSuchVersion", "404", "NotFound", "MethodNotAllowed"}
_DENIED_CODES = {"AccessDenied", "403", "Forbidden", "AllAccessDisabled"}
_CREDENTIAL_CODES = {
    "InvalidAccessKeyId": "the S3 server does not know the access key id",
    "SignatureDoesNotMatch": "the secret access key does not match the access key id",
    "ExpiredToken": "the session token has expired",
    "InvalidToken": "the session token is not valid",
    "TokenRefreshRequired": "the session token must be refreshed",
}


def _where(bucket: str, key: str | None, version_id: str | None) -> str:
    where = f"s3://{bucket}/{key}" if key is not None else f"s3://{bucket}"
    return where + (f" (version {version_id})" if version_id else "")


def translate_error(
    exc: Exception,
    op: str,
    bucket: str,
    key: str | None = None,
    version_id: str | None = None,
    scrub: Callable[[str], str] = redact,
) -> BackupError:
    """Map a botocore exception to the project's exception tree."""
    where = _where(bucket, key, version_id)
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = scrub(str(error.get("Message", "") or code))
        if code == "NoSuchBucket":
            return BucketNotFound(bucket)
        if code in _NOT_FOUND_CODES:
            if key is None:
                return BucketNotFound(bucket)
            return ObjectNotFound(bucket, key, version_id)
        if code in _DENIED_CODES:
            return AccessDenied(
                f"access denied: {op} on {where}",
                hint=f"the credentials in use need permission for s3:{op} on this bucket",
            )
        if code in _CREDENTIAL_CODES:
            clock = " (a signature also fails when this machine's clock is wrong)"
            return InvalidCredentials(
                f"wrong credentials: {_CREDENTIAL_CODES[code]} ({code}, for {op} on {where})",
                hint="check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or --profile, for "
                "this endpoint" + (clock if code == "SignatureDoesNotMatch" else ""),
            )
        if code in {"PreconditionFailed", "ConditionalRequestConflict"}:
            return PreconditionFailed(f"{op} on {where}: the object changed ({code})")
        return StorageError(f"{op} on {where} failed: {code}: {message}")
    if isinstance(exc, botocore.exceptions.PartialCredentialsError):
        return InvalidCredentials(
            f"incomplete AWS credentials: {scrub(str(exc))}",
            hint="give both the access key id and the secret access key",
        )
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return InvalidCredentials(
            "no AWS credentials found",
            hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or pass --profile "
            "(a custom --endpoint-url needs credentials too)",
        )
    if isinstance(exc, botocore.exceptions.ProfileNotFound):
        return InvalidCredentials(scrub(str(exc)), hint="check --profile and ~/.aws/config")
    if isinstance(
        exc,
        botocore.exceptions.EndpointConnectionError
        | botocore.exceptions.ConnectionClosedError
        | botocore.exceptions.ConnectTimeoutError,
    ):
        return EndpointUnreachable(
            f"cannot reach the S3 endpoint for {op} on {where}: {scrub(str(exc))}",
            hint="check --endpoint-url (is a server listening there?) and the network",
        )
    if isinstance(exc, botocore.exceptions.BotoCoreError | OSError):
        return StorageError(f"{op} on {where} failed: {scrub(str(exc))}")
    if unreadable_answer(exc):
        return StorageError(f"{op} on {where}: the server's answer could not be read")
    raise exc  # a bug, not an S3 condition: let it surface


def unreadable_answer(exc: BaseException) -> bool:
    """botocore could not parse the server's answer (``ResponseParserError``, which is not a
    BotoCoreError); its module is loaded once botocore's client is, and not before."""
    parsers = sys.modules.get("botocore.parsers")
    return parsers is not None and isinstance(exc, parsers.ResponseParserError)
