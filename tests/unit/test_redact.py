"""Redaction at the logging boundary: by value (every credential registered, in the encodings a
log line shows it in) and by name (whatever the value), in messages and tracebacks alike."""

from __future__ import annotations

import logging
import urllib.parse

from backup_my_bucket.storage.s3.redact import (
    MASK,
    RedactingFormatter,
    redact,
    remember,
    remember_credentials,
)

TOKEN = "IQoJb3JpZ2luX2VjEB0aCXVzLWVhc3QtMSJHMEUCIQ+/tok=="
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYzEXAMPLE"


def test_values_in_every_form_a_log_shows_them() -> None:
    remember("AKIDREDACTTEST01", SECRET, TOKEN, None, "abc")  # "abc": too short to tell
    lines = [
        f"headers={{'X-Custom': {TOKEN.encode()!r}}}",  # a bytes repr
        f"url=https://h/?X-Amz-Security-Token={urllib.parse.quote(TOKEN, safe='')}",
        f"<StringToSign>{SECRET}</StringToSign>",
        f"key={urllib.parse.quote_plus(SECRET)} id=AKIDREDACTTEST01",
        f"{TOKEN!r} in a repr",
    ]
    for line in lines:
        out = redact(line)
        for value in (SECRET, TOKEN, "AKIDREDACTTEST01", urllib.parse.quote(TOKEN, safe="")):
            assert value not in out, out
        assert MASK in out
    assert redact("abc def") == "abc def"


def test_names_whatever_the_value() -> None:
    cases = {
        "'X-Amz-Security-Token': b'never-registered-token-1'": "never-registered-token-1",
        "x-amz-security-token: plain-token-2": "plain-token-2",
        "?X-Amz-Credential=AKIAXX%2F20260101%2Fus-east-1&X-Amz-Signature=deadbeef": "deadbeef",
        "Authorization: AWS4-HMAC-SHA256 Credential=AKIAYY/2026/us-east-1/s3/aws4_request, "
        "SignedHeaders=host, Signature=0123abcd": "0123abcd",
        'aws_secret_access_key = "config-secret-3"': "config-secret-3",
        '{"SecretAccessKey": "process-secret-4", "SessionToken": "process-token-5"}': "secret-4",
        "S3Config(access_key='a', secret_key='dataclass-secret-6')": "dataclass-secret-6",
    }
    for line, secret in cases.items():
        assert secret not in redact(line), redact(line)
    assert "AKIAYY" not in redact(list(cases)[3]) and "AKIAXX" not in redact(list(cases)[2])
    assert "process-token-5" not in redact(list(cases)[5])
    # what is not a secret stays readable
    kept = "GET /bkt?versions&continuation-token=abc&prefix=p HTTP/1.1 SignedHeaders=host"
    assert redact(kept) == kept


def test_formatter_redacts_messages_and_tracebacks() -> None:
    class Credentials:
        access_key, secret_key, token = "AKIDFORMATTER01", "formatter-secret-7", "formatter-tok-8"

    remember_credentials(Credentials())
    formatter = RedactingFormatter("%(message)s")
    try:
        raise ValueError(f"failed with {Credentials.secret_key}")
    except ValueError:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "token %s", (Credentials.token,), exc_info=True
        )
        import sys

        record.exc_info = sys.exc_info()
    out = formatter.format(record)
    assert "ValueError" in out and "Traceback" in out
    for value in ("formatter-secret-7", "formatter-tok-8"):
        assert value not in out
