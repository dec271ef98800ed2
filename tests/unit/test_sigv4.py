"""The fast path's requests and signer, offline: against botocore (the request it would send for
the same operation, and its S3SigV4Auth signature of ours) on generated requests, and against
the AWS SigV4 test-suite vectors that apply to S3 requests (tests/unit/data/aws4_testsuite)."""

from __future__ import annotations

import asyncio
import hashlib
import random
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials
import botocore.session
import pytest

from backup_my_bucket.model import VersionRef
from backup_my_bucket.storage.s3.address import Address
from backup_my_bucket.storage.s3.client import _resolver
from backup_my_bucket.storage.s3.sigv4 import EMPTY_SHA256, SigV4, canonical_query, quote
from backup_my_bucket.storage.s3.wire import (
    copy_request,
    get_request,
    head_request,
    list_versions_request,
    object_path,
    uploads_query,
    versioning_request,
)

DATA = Path(__file__).parent / "data" / "aws4_testsuite"
VECTORS = sorted(p.name for p in DATA.iterdir() if p.is_dir())
SUITE_KEYS = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")


def _read_request(text: str) -> tuple[str, str, str, dict[str, str]]:
    first, *lines = text.split("\n")
    method, target = first.rsplit(" ", 1)[0].split(" ", 1)
    headers: dict[str, str] = {}
    for line in lines:
        if not line:
            break  # a body follows (none in the vectors kept)
        name, value = line.split(":", 1)
        headers[name.lower()] = value
    path, _, query = target.partition("?")
    return method, path, query, headers


@pytest.mark.parametrize("name", VECTORS)
def test_aws_sigv4_test_suite(name: str) -> None:
    read = (DATA / name / f"{name}.req").read_text()
    expected_creq = (DATA / name / f"{name}.creq").read_text()
    method, path, query, headers = _read_request(read)
    for line in expected_creq.split("\n"):
        if line.startswith("x-amz-security-token:") and "x-amz-security-token" not in headers:
            headers["x-amz-security-token"] = line.split(":", 1)[1]  # see the README
    params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    signer = SigV4("us-east-1", "service")
    creq, signed = signer.canonical_request(
        method, quote(path), canonical_query(params), headers, EMPTY_SHA256
    )
    assert creq == expected_creq
    amz_date = headers["x-amz-date"]
    assert signer.string_to_sign(amz_date, creq) == (DATA / name / f"{name}.sts").read_text()
    authz = signer.authorization(*SUITE_KEYS, amz_date, creq, signed)
    assert authz == (DATA / name / f"{name}.authz").read_text()


def test_the_suite_covers_what_the_signer_must_get_right() -> None:
    """Header trimming, a session token, UTF-8 paths and queries, unreserved characters."""
    assert {"get-header-value-trim", "get-vanilla-with-session-token", "get-utf8",
            "get-vanilla-utf8-query", "get-unreserved", "get-space"} <= set(VECTORS)  # fmt: skip


# --- against botocore ------------------------------------------------------------------------

# (endpoint URL or None for AWS, region, botocore's addressing style)
ENDPOINTS = [
    ("http://127.0.0.1:8333", "eu-west-3", "path"),
    ("http://[::1]:9000", "eu-west-3", "path"),
    ("https://[2001:db8::1]", "eu-west-3", "path"),
    ("https://S3.Example.COM:443", "eu-west-3", "path"),
    ("http://minio.local:80/s3/prefix", "eu-west-3", "path"),
    ("https://gateway.example.net:8443/s3/v1/", "eu-west-3", "path"),
    ("https://s3.example.net:8443", "eu-west-3", "virtual"),
    ("http://s3.local:9000", "us-east-1", "virtual"),
    (None, "us-east-1", "auto"),
    (None, "eu-west-1", "auto"),
    (None, "ap-southeast-2", "auto"),
    (None, "cn-north-1", "auto"),
    (None, "us-gov-west-1", "auto"),
]
BUCKETS = ["b", "bkt-1", "my.bucket.x", "a" * 63, "Under_Score", "192.168.5.4", "x--y"]
KEY_CHARS = [
    *"abcXYZ019/-_.~ +%=&?#;:@!$'()*,[]\"<>^`{|}\\",
    "\n", "\t", "  ", "\u00e9", "\u20ac", "\U0001f600", "\u0080", "\u2028", "\x7f", "%2F",
]  # fmt: skip
ID_CHARS = list("abcXYZ019+/=._-~")
OPERATIONS = {
    "head": "HeadObject",
    "copy": "CopyObject",
    "list": "ListObjectVersions",
    "objects": "ListObjectsV2",
    "head_bucket": "HeadBucket",
    "versioning": "GetBucketVersioning",
    "get": "GetObject",
    "put": "PutObject",
    "delete": "DeleteObject",
    "uploads": "ListMultipartUploads",
}
FIXED = datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC)
AMZ_DATE = FIXED.strftime("%Y%m%dT%H%M%SZ")


class _Captured(Exception):
    def __init__(self, request: Any) -> None:
        self.request = request


def _capture(request: Any, **_: Any) -> None:
    raise _Captured(request)


def _text(rng: random.Random, chars: list[str], low: int, high: int) -> str:
    return "".join(rng.choice(chars) for _ in range(rng.randint(low, high)))


def _credentials(rng: random.Random) -> tuple[str, str, str | None]:
    token = _text(rng, list("ABCxyz0189+/="), 16, 120) if rng.random() < 0.5 else None
    access = "AK" + _text(rng, list("ABCDEFG0123"), 8, 18)
    return access, _text(rng, list("abcXYZ019+/=-"), 20, 40), token


def _case(rng: random.Random, credentials: list[tuple[str, str, str | None]]) -> dict[str, Any]:
    case: dict[str, Any] = {
        "endpoint": rng.choice(ENDPOINTS),
        "bucket": rng.choice(BUCKETS),
        "credentials": rng.choice(credentials),
    }
    kind = rng.random()
    if kind < 0.25:  # the smaller requests of a command's set-up and catalog
        small = rng.choice(["head_bucket", "versioning", "get", "put", "delete", "uploads"])
        key = _text(rng, KEY_CHARS, 1, 40)
        version = _text(rng, ID_CHARS, 1, 32) if rng.random() < 0.5 else None
        if small == "get":
            start = rng.randint(0, 1000)
            ranged = (start, start + rng.randint(0, 5000)) if rng.random() < 0.5 else None
            case["get"] = (key, version, ranged)
        elif small == "put":
            conditions = rng.choice([{}, {"IfNoneMatch": "*"}, {"IfMatch": '"0a1b"'}])
            case["put"] = (key, rng.randbytes(rng.randint(0, 3000)), conditions)
        elif small == "uploads":
            markers = {"KeyMarker": key, "UploadIdMarker": version} if version else {}
            case["uploads"] = (_text(rng, KEY_CHARS, 0, 20), markers, rng.choice([2, 1000]))
        else:
            case[small] = key
        return case
    kind = rng.random()
    if kind < 0.3:
        version = _text(rng, ID_CHARS, 1, 32) if rng.random() < 0.7 else None
        case["head"] = (_text(rng, KEY_CHARS, 1, 40), version)
    elif kind < 0.65:
        version = _text(rng, ID_CHARS, 1, 32) if rng.random() < 0.8 else None
        case["copy"] = (
            rng.choice(["src", "other.bucket"]),
            _text(rng, KEY_CHARS, 1, 40),
            version,
            _text(rng, KEY_CHARS, 1, 40),
        )
    elif kind < 0.8:  # ListObjectsV2, the listing audit's
        params = {"list-type": "2", "max-keys": str(rng.choice([1, 1000])), "encoding-type": "url"}
        for name in ("prefix", "delimiter", "start-after", "continuation-token"):
            if rng.random() < 0.5:
                params[name] = _text(rng, KEY_CHARS, 1, 20)
        case["objects"] = params
    else:
        params = {"versions": "", "max-keys": str(rng.choice([1, 1000])), "encoding-type": "url"}
        for name in ("prefix", "delimiter", "key-marker"):
            if rng.random() < 0.5:
                params[name] = _text(rng, KEY_CHARS, 1, 20)
        if "key-marker" in params and rng.random() < 0.7:
            params["version-id-marker"] = _text(rng, ID_CHARS, 1, 32)
        case["list"] = params
    return case


def _botocore_request(client: Any, case: dict[str, Any]) -> Any:
    try:
        if "head_bucket" in case:
            client.head_bucket(Bucket=case["bucket"])
        elif "versioning" in case:
            client.get_bucket_versioning(Bucket=case["bucket"])
        elif "uploads" in case:
            prefix, markers, most = case["uploads"]
            client.list_multipart_uploads(
                Bucket=case["bucket"], EncodingType="url", MaxUploads=most,
                **({"Prefix": prefix} if prefix else {}), **markers,
            )  # fmt: skip
        elif "get" in case:
            key, version, ranged = case["get"]
            extra = {"VersionId": version} if version else {}
            if ranged:
                extra["Range"] = f"bytes={ranged[0]}-{ranged[1]}"
            client.get_object(Bucket=case["bucket"], Key=key, **extra)
        elif "put" in case:
            key, body, conditions = case["put"]
            client.put_object(Bucket=case["bucket"], Key=key, Body=body, **conditions)
        elif "delete" in case:
            client.delete_object(Bucket=case["bucket"], Key=case["delete"])
        elif "head" in case:
            key, version = case["head"]
            client.head_object(
                Bucket=case["bucket"], Key=key, **({"VersionId": version} if version else {})
            )
        elif "copy" in case:
            src_bucket, src_key, version, key = case["copy"]
            source = {"Bucket": src_bucket, "Key": src_key}
            if version is not None:
                source["VersionId"] = version
            client.copy_object(
                Bucket=case["bucket"],
                Key=key,
                CopySource=source,
                MetadataDirective="COPY",
                TaggingDirective="COPY",
            )
        elif "objects" in case:
            names = {"prefix": "Prefix", "delimiter": "Delimiter", "start-after": "StartAfter",
                     "continuation-token": "ContinuationToken"}  # fmt: skip
            params = case["objects"]
            client.list_objects_v2(
                Bucket=case["bucket"],
                MaxKeys=int(params["max-keys"]),
                EncodingType="url",
                **{names[n]: v for n, v in params.items() if n in names},
            )
        else:
            names = {"prefix": "Prefix", "delimiter": "Delimiter", "key-marker": "KeyMarker",
                     "version-id-marker": "VersionIdMarker"}  # fmt: skip
            params = case["list"]
            client.list_object_versions(
                Bucket=case["bucket"],
                MaxKeys=int(params["max-keys"]),
                EncodingType="url",
                **{names[n]: v for n, v in params.items() if n in names},
            )
    except _Captured as captured:
        return captured.request
    raise AssertionError("no request was sent")


def _query_pairs(url: str) -> list[str]:
    query = urllib.parse.urlsplit(url).query
    return sorted(p if "=" in p else p + "=" for p in query.split("&") if p)


async def test_requests_and_signatures_equal_botocores(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our URL (botocore's endpoint for the bucket: virtual-hosted or path style, regional, on
    AWS as on custom endpoints), copy source, query and x-amz-content-sha256 are those of
    botocore's own request for the operation, and botocore's S3 signer signs ours as we do."""
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: FIXED.replace(tzinfo=None))
    session = botocore.session.get_session()
    rng = random.Random(14)
    clients: dict[tuple[Any, ...], Any] = {}
    credentials = [_credentials(rng) for _ in range(6)]
    cases = [_case(rng, credentials) for _ in range(700)]
    styles: set[str] = set()
    for case in cases:
        (endpoint, region, style), (access, secret, token) = case["endpoint"], case["credentials"]
        client = clients.get((case["endpoint"], case["credentials"]))
        if client is None:
            client = session.create_client(
                "s3",
                endpoint_url=endpoint,
                region_name=region,
                aws_access_key_id=access,
                aws_secret_access_key=secret,
                aws_session_token=token,
                config=botocore.config.Config(  # as storage/s3/client.py configures ours
                    s3={"addressing_style": style},
                    signature_version="s3v4",
                    request_checksum_calculation="when_required",
                ),
            )
            client.meta.events.register_last("before-send.s3", _capture)
            clients[case["endpoint"], case["credentials"]] = client
        theirs = _botocore_request(client, case)
        resolve = _resolver(client)
        assert not isinstance(resolve, str)
        op = next(o for k, o in OPERATIONS.items() if k in case)
        where = await resolve(case["bucket"], op)
        assert isinstance(where, Address), (case, where)

        body = b""
        if "head_bucket" in case:
            path, query, extra, method = "", "", {}, "HEAD"
        elif "versioning" in case:
            (path, query), extra, method = versioning_request(), {}, "GET"
        elif "uploads" in case:
            path, query = list_versions_request(uploads_query(*case["uploads"]))
            extra, method = {}, "GET"
        elif "get" in case:
            path, query, extra = get_request(*case["get"])
            method = "GET"
        elif "put" in case:
            key, body, conditions = case["put"]
            path, query, method = object_path(key), "", "PUT"
            extra = {"if-none-match" if n == "IfNoneMatch" else "if-match": v
                     for n, v in conditions.items()}  # fmt: skip
        elif "delete" in case:
            path, query, extra, method = object_path(case["delete"]), "", {}, "DELETE"
        elif "head" in case:
            path, query = head_request(*case["head"])
            extra, method = {}, "HEAD"
        elif "copy" in case:
            src_bucket, src_key, version, key = case["copy"]
            path, extra = copy_request(VersionRef(src_bucket, src_key, version), key)
            query, method = "", "PUT"
            sent = theirs.headers["x-amz-copy-source"]
            sent = sent.decode() if isinstance(sent, bytes) else sent
            assert extra["x-amz-copy-source"] == sent, case
        else:  # the two listings share the request builder
            path, query = list_versions_request(case.get("list", case.get("objects")))
            extra, method = {}, "GET"
        frozen = botocore.credentials.ReadOnlyCredentials(access, secret, token)
        payload_hash = hashlib.sha256(body).hexdigest()
        if body:  # as the fast path gives it
            extra["x-amz-content-sha256"] = payload_hash
        url, signed_path = where.target(path, query)  # as the fast path signs it
        ours = SigV4(where.region).headers(
            frozen, method, where.host, signed_path, query, extra, AMZ_DATE
        )
        # the same resource and parameters as botocore's own request for the operation
        assert url.split("?")[0] == theirs.url.split("?")[0], case
        assert _query_pairs(url) == _query_pairs(theirs.url), case
        assert method == theirs.method, case
        for name, value in extra.items():  # the same conditions and range, as botocore sends
            sent = theirs.headers[name]
            assert value == (sent.decode() if isinstance(sent, bytes) else sent), case
        # the payload hash botocore sends: the body's (the empty body's), over HTTPS too
        sha256 = theirs.headers["X-Amz-Content-SHA256"]
        assert ours["x-amz-content-sha256"] == sha256.decode() == payload_hash, case
        assert "put" in case or payload_hash == EMPTY_SHA256
        assert f"/{where.region}/s3/aws4_request" in theirs.headers["Authorization"].decode()
        virtual = urllib.parse.urlsplit(url).hostname.startswith(case["bucket"].lower() + ".")
        styles.add(f"{'aws' if endpoint is None else 'custom'} {'virtual' if virtual else 'path'}")

        # and botocore's S3 signer signs our request exactly as we do
        request = botocore.awsrequest.AWSRequest(
            method=method, url=url, headers=dict(extra), data=body
        )
        botocore.auth.S3SigV4Auth(frozen, "s3", where.region).add_auth(request)
        assert ours["authorization"] == request.headers["Authorization"], case
        assert ours.get("x-amz-security-token") == request.headers.get("X-Amz-Security-Token")
        assert ours["x-amz-content-sha256"] == request.headers["X-Amz-Content-SHA256"]
    assert all(sum(kind in c for c in cases) > 50 for kind in ("copy", "list", "head", "objects"))
    assert all(sum(kind in c for c in cases) > 20 for kind in ("get", "put", "delete", "uploads"))
    assert any(c["credentials"][2] for c in cases) and any("+" in str(c.get("copy")) for c in cases)
    assert styles == {"aws virtual", "aws path", "custom virtual", "custom path"}


def test_aws_addressing_follows_botocores_rules() -> None:
    """The endpoints the fast path takes on AWS, as botocore's ruleset resolves them."""
    session = botocore.session.get_session()
    expected = {
        ("us-east-1", "bkt-1"): "https://bkt-1.s3.amazonaws.com",
        ("us-east-1", "my.bucket"): "https://s3.amazonaws.com/my.bucket",
        ("eu-west-1", "bkt-1"): "https://bkt-1.s3.eu-west-1.amazonaws.com",
        ("eu-west-1", "my.bucket"): "https://s3.eu-west-1.amazonaws.com/my.bucket",
        ("eu-west-1", "Under_Score"): "https://s3.eu-west-1.amazonaws.com/Under_Score",
        ("cn-north-1", "bkt-1"): "https://bkt-1.s3.cn-north-1.amazonaws.com.cn",
    }
    for (region, bucket), url in expected.items():
        client = session.create_client(
            "s3", region_name=region, aws_access_key_id="AK", aws_secret_access_key="SK",
            config=botocore.config.Config(signature_version="s3v4"),
        )  # fmt: skip
        resolve = _resolver(client)
        assert not isinstance(resolve, str)
        where = asyncio.run(resolve(bucket, "CopyObject"))
        assert isinstance(where, Address) and where.origin + where.path == url
        assert where.region == region and where.tls


def test_header_values_are_signed_in_canonical_form() -> None:
    headers = {"host": "h", "x-amz-date": AMZ_DATE, "x-amz-meta": "  a   b \t c  "}
    creq, _ = SigV4.canonical_request("GET", "/", "", headers, EMPTY_SHA256)
    assert "x-amz-meta:a b c\n" in creq
