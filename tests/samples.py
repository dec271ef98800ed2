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

SUFFIX_BYTES = "-.! +"  # each sorts below '/': "img0-…" lists before "img0/…", walked after


def stem_layout(per: int = 300, groups: int = 5) -> list[str]:
    """Folders beside files that start with their name, at three depths, as websites hold
    them: ``img0-0000.jpg … img0.idx, img0/0000.jpg …``, the suffix byte cycling through
    ``-``, ``.``, ``!``, space and ``+``; then the same pattern inside ``img0/deep/`` and
    inside ``img0/deep/img1/deeper/`` (fewer keys each level). Sorted, no duplicates.
    """
    keys: set[str] = set()
    for depth, base in enumerate(("", "img0/deep/", "img0/deep/img1/deeper/")):
        count = max(1, per // (1 + 2 * depth))
        for g in range(groups):
            sep = SUFFIX_BYTES[(g + depth) % len(SUFFIX_BYTES)]
            keys.update(f"{base}img{g}{sep}{i:04d}.jpg" for i in range(count))
            keys.add(f"{base}img{g}.idx")
            keys.update(f"{base}img{g}/{i:04d}.jpg" for i in range(count))
    return sorted(keys)
