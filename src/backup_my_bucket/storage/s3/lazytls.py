"""aiohttp imported without loading its two default TLS contexts' certificates until a TLS
connection asks for one of them.

aiohttp builds two SSL contexts when it is imported (``aiohttp.connector``:
``_SSL_CONTEXT_VERIFIED`` and ``_SSL_CONTEXT_UNVERIFIED``), and each reads the system's whole
CA bundle (30-50 ms of CPU each here). Neither botocore's session nor the fast path uses them
(both build their own context, from botocore's bundle, and only for HTTPS); a command against
a plain-http endpoint never needs them at all. Importing this module imports aiohttp with
the certificates of those two contexts deferred, and loads them the first time aiohttp hands
one of them to a connection (``TCPConnector._get_ssl_context``), so every other user of
aiohttp's defaults (a webhook over HTTPS, ops/notify.py) gets them as before. When aiohttp
was imported already, or its internals are not those, nothing is deferred.

It leans on two private details of aiohttp (the module's two contexts, and
``_get_ssl_context`` as the one place that hands them out), so it only defers on the aiohttp
minor versions in ``TESTED``; on any other, aiohttp is imported as it is (its certificates
loaded at import, ~45 ms of CPU more) and nothing is patched. Were a later aiohttp to hand a
default context out by another path, that connection would fail its certificate check (no
CA loaded: it fails closed, it never trusts more). ``storage/s3/store.py`` imports this
first; tests/unit/test_startup.py checks both halves and the fallback, and fails on an
untested aiohttp so that the version is checked before it is added here.
"""

from __future__ import annotations

import ssl
import sys
import threading
from collections.abc import Callable
from typing import Any

_NAME = "set_default_verify_paths"
TESTED = ("3.14",)
"""aiohttp's minor versions whose internals this was checked against."""


def _import_aiohttp() -> bool:
    """Import aiohttp, its default contexts' certificates deferred; whether they were."""
    if "aiohttp" in sys.modules:
        return False
    load: Callable[[ssl.SSLContext], None] = getattr(ssl.SSLContext, _NAME)
    own = ssl.SSLContext.__dict__.get(_NAME)
    importer = threading.get_ident()
    deferred: list[ssl.SSLContext] = []

    def later(context: ssl.SSLContext) -> None:
        if threading.get_ident() == importer:
            deferred.append(context)
        else:
            load(context)

    setattr(ssl.SSLContext, _NAME, later)
    try:
        import aiohttp.connector as connector
    finally:
        if own is None:
            delattr(ssl.SSLContext, _NAME)
        else:
            setattr(ssl.SSLContext, _NAME, own)
    defaults = [getattr(connector, f"_SSL_CONTEXT_{n}", None) for n in ("VERIFIED", "UNVERIFIED")]
    get: Any = getattr(connector.TCPConnector, "_get_ssl_context", None)
    version = str(getattr(sys.modules["aiohttp"], "__version__", ""))
    known = version.rpartition(".")[0] in TESTED and get is not None
    if not known or not deferred or any(c not in defaults for c in deferred):
        for context in deferred:  # not the aiohttp this was written for: load them now
            load(context)
        return False
    lock = threading.Lock()

    def get_ssl_context(self: Any, req: Any) -> Any:
        context = get(self, req)
        if deferred and context is not None:
            with lock:
                while deferred:
                    load(deferred.pop())
        return context

    connector.TCPConnector._get_ssl_context = get_ssl_context  # type: ignore[method-assign]
    return True


DEFERRED = _import_aiohttp()
