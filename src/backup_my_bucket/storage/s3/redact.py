"""Credentials kept out of every text that may reach a user: logs, error messages, tracebacks.

Two nets, applied together by :func:`redact`:

- by value: every credential this process has held (static keys, session tokens, each set a
  refresh brought) is registered here by the store before it signs with it
  (:func:`remember`), and every occurrence is replaced, raw or in the encodings a log line
  shows it in (URL-quoted, ``repr`` escaped, XML escaped);
- by name: the value after ``Authorization``'s ``Credential=``/``Signature=``, the
  ``X-Amz-Security-Token``/``X-Amz-Credential``/``X-Amz-Signature`` headers and query
  parameters, and the ``aws_secret_access_key``/``SecretAccessKey``/``SessionToken`` style
  fields of configuration and credential documents, whatever their value, including the
  ``b'...'`` form of a bytes ``repr``.

:class:`RedactingFormatter` applies both at the logging boundary (the CLI's handler uses it;
a library user can too), to the message and the formatted traceback alike.
"""

from __future__ import annotations

import logging
import re
import threading
import urllib.parse
from collections.abc import Iterable

MASK = "***"
_MIN_LENGTH = 4  # shorter values cannot be told from ordinary text

_lock = threading.Lock()
_known: set[str] = set()  # the credential values held so far
_variants: tuple[str, ...] = ()  # every form of them to replace, longest first

# a value in a quoted repr (b'...' or '...'), a JSON string, or bare up to a separator
_VALUE = r"""(?:b?'[^']*'|b?"[^"]*"|[^'"\s,&;}]+)"""
_NAME_PATTERNS = (
    re.compile(
        r"(?i)((?:x-amz-security-token|x-amz-credential|x-amz-signature|aws_secret_access_key|"
        r"aws_session_token|aws_security_token|secretaccesskey|sessiontoken|secret_key|"
        r"session_token)['\"]?\s*[:=]\s*)" + _VALUE
    ),
    re.compile(r"(?i)((?<![-\w])(?:credential|signature)=)[^\s,&'\"]+"),
)


def remember(*values: str | None) -> None:
    """Register credential values (keys, tokens) to redact from now on."""
    global _variants
    fresh = {v for v in values if v and len(v) >= _MIN_LENGTH and v not in _known}
    if not fresh:
        return
    with _lock:
        _known.update(fresh)
        forms: set[str] = set()
        for value in _known:
            forms.update(_forms(value))
        _variants = tuple(sorted(forms, key=len, reverse=True))


def remember_credentials(credentials: object) -> None:
    """Register a botocore credentials object's (frozen) values."""
    remember(
        getattr(credentials, "access_key", None),
        getattr(credentials, "secret_key", None),
        getattr(credentials, "token", None),
    )


def _forms(value: str) -> Iterable[str]:
    yield value
    yield urllib.parse.quote(value, safe="")
    yield urllib.parse.quote(value, safe="-_.~/")
    yield urllib.parse.quote_plus(value, safe="")
    yield repr(value)[1:-1]
    yield repr(value.encode())[2:-1]
    xml = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    yield xml.replace('"', "&quot;")
    yield xml.replace('"', "&#34;")


def redact(text: str) -> str:
    """``text`` without any registered credential value or named secret field."""
    for form in _variants:
        if form in text:
            text = text.replace(form, MASK)
    for pattern in _NAME_PATTERNS:
        text = pattern.sub(rf"\1{MASK}", text)
    return text


class RedactingFormatter(logging.Formatter):
    """A formatter whose output (message, traceback, stack) went through :func:`redact`."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
