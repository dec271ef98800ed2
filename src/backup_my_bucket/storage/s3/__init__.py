"""S3Store: the ObjectStore on real S3 (or any S3-compatible server); see :mod:`.store`."""

from .store import (
    EMPTY_MD5,
    S3Config,
    S3Store,
    parse_objects_xml,
    parse_timestamp,
    parse_versions_xml,
    translate_error,
)

__all__ = [
    "EMPTY_MD5",
    "S3Config",
    "S3Store",
    "parse_objects_xml",
    "parse_timestamp",
    "parse_versions_xml",
    "translate_error",
]
