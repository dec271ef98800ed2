"""Streaming comparison of two key-sorted states (snapshots or a live bucket)."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import StorageError
from ..model import ObjectVersion
from ..units import format_time

ChangeKind = Literal["added", "removed", "changed"]


@dataclass(frozen=True, slots=True)
class Change:
    change: ChangeKind
    key: str
    old: ObjectVersion | None
    new: ObjectVersion | None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"change": self.change, "key": self.key}
        for side, v in (("old", self.old), ("new", self.new)):
            if v is not None:
                data[f"{side}_version_id"] = v.version_id
                data[f"{side}_size"] = v.size
                data[f"{side}_etag"] = v.etag
                data[f"{side}_last_modified"] = format_time(v.last_modified)
        return data


async def aiter_sync(items: Iterable[ObjectVersion]) -> AsyncIterator[ObjectVersion]:
    for item in items:
        yield item


async def _checked(items: AsyncIterable[ObjectVersion], side: str) -> AsyncIterator[ObjectVersion]:
    last: str | None = None
    async for item in items:
        if last is not None and item.key <= last:
            raise StorageError(f"{side} is not in strictly ascending key order at {item.key!r}")
        last = item.key
        yield item


def same_content(a: ObjectVersion, b: ObjectVersion) -> bool:
    return a.version_id == b.version_id or (
        a.size == b.size and a.etag == b.etag and a.etag is not None
    )


async def diff_states(
    old: AsyncIterable[ObjectVersion], new: AsyncIterable[ObjectVersion]
) -> AsyncIterator[Change]:
    """Merge-join two ascending states; memory stays constant whatever their size."""
    left, right = _checked(old, "the first state"), _checked(new, "the second state")
    a = await anext(left, None)
    b = await anext(right, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a.key < b.key):
            assert a is not None
            yield Change("removed", a.key, a, None)
            a = await anext(left, None)
        elif a is None or b.key < a.key:
            yield Change("added", b.key, None, b)
            b = await anext(right, None)
        else:
            if not same_content(a, b):
                yield Change("changed", a.key, a, b)
            a = await anext(left, None)
            b = await anext(right, None)
