"""Sample object attributes and tags that every copy path must keep intact."""

from backup_my_bucket.model import ObjectAttrs

ATTRS = ObjectAttrs(
    content_type="text/x-bmb; charset=utf-8",
    content_encoding="identity",
    cache_control="max-age=60",
    content_disposition='attachment; filename="report.txt"',
    content_language="es-MX",
    expires="Thu, 01 Dec 2033 16:00:00 GMT",
    metadata={"owner": "ops", "x-sum": "abc123"},
)
TAGS = {"project": "bmb", "tier": "gold"}
