"""ListMultipartUploads, every page, as AWS and SeaweedFS answer it.

AWS pages by ``NextKeyMarker`` with ``NextUploadIdMarker`` and URL-encodes keys when asked.
SeaweedFS (4.x) differs in three ways, read in its ``listMultipartUploads``: a truncated
answer carries only ``NextUploadIdMarker`` (and a ``KeyMarker`` there filters on one key
instead of naming a position), uploads come in upload-id order, and it echoes
``EncodingType=url`` without encoding its keys.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

from ...errors import StorageError
from ...model import UNKNOWN_START, OpenUpload
from ..paging import Paging, paging_for
from .parse import parse_timestamp
from .wire import present
from .xmltext import ListingParseError, element_tree, local_name

Fetch = Callable[[Mapping[str, str]], Awaitable[Mapping[str, Any]]]


async def all_uploads(fetch: Fetch, bucket: str, server: str) -> list[OpenUpload]:
    """Every upload ``fetch`` pages through (it sends one request with the markers given and
    returns the answer as botocore parses it), in key order, then oldest first. ``server``:
    the endpoint's ``Server`` header."""
    uploads: dict[str, OpenUpload] = {}
    markers: dict[str, str] = {}
    seen: set[tuple[str, str]] = set()
    while True:
        answer = await fetch(markers)
        encoded = answer.get("EncodingType") == "url" and paging_for(server) is not Paging.TREE
        text = unquote_plus if encoded else str  # AWS writes a space as +, a + as %2B
        for upload in answer.get("Uploads", []):
            initiated = upload.get("Initiated")
            start = initiated.astimezone(UTC) if isinstance(initiated, datetime) else UNKNOWN_START
            uploads[str(upload["UploadId"])] = OpenUpload(
                text(upload["Key"]), str(upload["UploadId"]), start
            )
        if not answer.get("IsTruncated"):
            return sorted(uploads.values(), key=lambda u: (u.key, u.initiated, u.upload_id))
        position = (text(answer.get("NextKeyMarker") or ""), answer.get("NextUploadIdMarker") or "")
        if position == ("", "") or position in seen:
            raise StorageError(
                f"ListMultipartUploads on s3://{bucket}: a truncated answer that does not move on "
                f"(next key {position[0]!r}, next upload id {position[1]!r})"
            )
        seen.add(position)
        markers = present({"KeyMarker": position[0], "UploadIdMarker": position[1]})


def parse_uploads_xml(body: bytes) -> dict[str, Any]:
    """A ListMultipartUploadsResult as botocore parses it (the fields :func:`all_uploads`
    reads), for the fast path. Raises ListingParseError on a document it cannot read."""
    root = element_tree(body, "ListMultipartUploadsResult")
    answer: dict[str, Any] = {"Uploads": []}
    for child in root:
        name = local_name(child.tag)
        if name in ("EncodingType", "NextKeyMarker", "NextUploadIdMarker"):
            answer[name] = child.text or ""
        elif name == "IsTruncated":
            answer[name] = (child.text or "").strip() == "true"
        elif name == "Upload":
            fields = {local_name(field.tag): field.text or "" for field in child}
            if "Key" not in fields or "UploadId" not in fields:
                raise ListingParseError("an <Upload> without its Key or UploadId")
            upload: dict[str, Any] = {"Key": fields["Key"], "UploadId": fields["UploadId"]}
            if fields.get("Initiated"):
                try:
                    upload["Initiated"] = parse_timestamp(fields["Initiated"])
                except ValueError as exc:
                    raise ListingParseError(f"an odd Initiated: {exc}") from exc
            answer["Uploads"].append(upload)
    return answer
