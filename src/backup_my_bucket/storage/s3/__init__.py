"""S3Store: the ObjectStore on real S3 (or any S3-compatible server) through aiobotocore.

This package is the only place that imports botocore or aiobotocore. Everything it raises is
a :mod:`backup_my_bucket.errors` exception; botocore's types never leave it. Its modules:

- :mod:`.store`: :class:`S3Store`, the protocol's operations, over :mod:`.connection`: the
  fast path and the botocore client (built when a request first needs it), the
  first-request probe, error translation, the bucket facts a command may reuse;
- :mod:`.config`: :class:`S3Config` (light: no botocore, no aiohttp);
- :mod:`.light`: when a store opens without botocore (a custom endpoint in path style, keys
  given or in the environment, no profile to read);
- :mod:`.client`: the building of the botocore client (credentials, retries, hooks, and the
  fast path of a store that is not light);
- :mod:`.fastpath`: the fast request path (``_FastPath``: botocore's addressing, network
  settings, retries and backoff over :mod:`.http11`, our HTTP/1.1 client), :mod:`.wire`
  (its requests as botocore builds them), :mod:`.answers` (what their answers mean) and
  :mod:`.sigv4`, its signer;
- :mod:`.parse`: the timestamp parser and the ListObjectVersions parser; :mod:`.parse_objects`
  the ListObjectsV2 parser; :mod:`.xmltext` the reading of S3's XML they share;
- :mod:`.hooks`: botocore event surgery (listing ``before-parse`` hooks, 200-error check,
  User-Agent);
- :mod:`.errors`: error translation; :mod:`.redact`: credentials kept out of every text;
- :mod:`.attrs`: object attributes and tags to and from S3's fields.

Speed notes (measured; see docs/performance.md):
- one shared client per store, its connection pool at least as large as the concurrency;
- botocore's adaptive retry mode (client-side rate limiting on 503 SlowDown);
- ListObjectVersions / ListObjectsV2 bodies are parsed here in one pass (a single regular
  expression scan per page, ElementTree for a page that looks unusual), through botocore's
  ``before-parse`` event, and botocore is handed an empty body. That keeps the interleaved
  order of versions and delete markers (botocore splits them into two lists, losing the
  order within a key when timestamps tie) and costs a fraction of botocore's parse.
  botocore's own check of every 200 for an embedded error (a full expat parse) is skipped
  for these two: the hook checks the document is complete instead;
- every other timestamp goes through a ``datetime.fromisoformat`` based parser;
- CopyObject with the COPY directives (sync's and restore's hot path), the listings, HEAD,
  and the smaller requests of a command's set-up and catalog (HeadBucket,
  GetBucketVersioning, GetObject, PutObject, DeleteObject) skip botocore's request pipeline
  (:mod:`.fastpath`); the User-Agent is rendered once per client instead of twice per request.

Imports are lazy: ``S3Config`` and the light modules (:mod:`.redact`, :mod:`.sigv4`) load
without botocore, aiobotocore or aiohttp; ``storage.s3.S3Store`` loads botocore's exceptions
and our fast path; aiobotocore and aiohttp (~0.2 s of CPU to import, and ~0.05 s more to
build the client) come with :mod:`.client`, the first time a store needs botocore's client.
A no-op backup or ``snapshots`` against a custom endpoint never does
(tests/unit/test_startup.py, tests/cli/test_light_cli.py).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .config import S3Config

if TYPE_CHECKING:
    from .errors import translate_error
    from .parse import EMPTY_MD5, parse_timestamp, parse_versions_xml
    from .parse_objects import parse_objects_xml
    from .store import S3Store

_LAZY = {
    "S3Store": ".store",
    "translate_error": ".errors",
    "EMPTY_MD5": ".parse",
    "parse_objects_xml": ".parse_objects",
    "parse_timestamp": ".parse",
    "parse_versions_xml": ".parse",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "EMPTY_MD5",
    "S3Config",
    "S3Store",
    "parse_objects_xml",
    "parse_timestamp",
    "parse_versions_xml",
    "translate_error",
]
