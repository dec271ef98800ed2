"""S3Store: the ObjectStore on real S3 (or any S3-compatible server) through aiobotocore.

This package is the only place that imports botocore or aiobotocore. Everything it raises is
a :mod:`backup_my_bucket.errors` exception; botocore's types never leave it. Its modules:

- :mod:`.store`: :class:`S3Store` and :class:`S3Config`;
- :mod:`.fastpath`: the fast request path (``_SigV4`` signer, ``_FastPath`` aiohttp client);
- :mod:`.parse`: the timestamp parser and the listing XML parsers;
- :mod:`.hooks`: botocore event surgery (listing ``before-parse`` hooks, 200-error check,
  User-Agent);
- :mod:`.errors`: error translation and credential scrubbing;
- :mod:`.attrs`: object attributes and tags to and from S3's fields.

Speed notes (measured; see docs/performance.md):
- one shared client per store, its connection pool at least as large as the concurrency;
- botocore's adaptive retry mode (client-side rate limiting on 503 SlowDown);
- ListObjectVersions / ListObjectsV2 bodies are parsed here in one pass (a single regular
  expression scan for versions, ElementTree for objects), through botocore's ``before-parse``
  event, and botocore is handed an empty body. That keeps the interleaved order of versions
  and delete markers (botocore splits them into two lists, losing the order within a key when
  timestamps tie) and costs a fraction of botocore's parse. botocore's own check of every 200
  for an embedded error (a full expat parse) is skipped for these two: the hook checks
  the document is complete instead;
- every other timestamp goes through a ``datetime.fromisoformat`` based parser;
- CopyObject with the COPY directives (sync's and restore's hot path) and ListObjectVersions
  (every engine's) skip botocore's request pipeline on custom endpoints (:class:`_FastPath`),
  falling back to it for anything but a clean, complete 200;
  the User-Agent is rendered once per client instead of twice per request.
"""

from .errors import translate_error
from .parse import EMPTY_MD5, parse_objects_xml, parse_timestamp, parse_versions_xml
from .store import S3Config, S3Store

__all__ = [
    "EMPTY_MD5",
    "S3Config",
    "S3Store",
    "parse_objects_xml",
    "parse_timestamp",
    "parse_versions_xml",
    "translate_error",
]
