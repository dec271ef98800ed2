"""The pieces of a listing: key ranges (units), the key history under construction, counts.

A :class:`Unit` lists the keys of one range ``(after, until]`` under a ``prefix``; the
listing (:mod:`.listing`) keeps units in a list in key order, and on a tree-walking server
(:mod:`.treewalk`) a unit may also list a single key, or skip directories other units list.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ..errors import StorageError
from ..model import KeyHistory, ObjectVersion, VersionPage

R = TypeVar("R")


def before(a: str | None, b: str | None) -> str | None:
    """The smaller of two inclusive upper bounds (None: unbounded)."""
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


@dataclass(eq=False)
class Unit(Generic[R]):
    after: str  # listed up to this key (exclusive bound in S3 KeyMarker terms)
    until: str | None  # inclusive upper bound; None: to the end
    prefix: str  # every key of the range starts with it; the listing's Prefix
    wire: str = ""  # the KeyMarker to send (TREE: may differ from ``after``)
    inside: str = ""  # listing is inside ``after``'s versions, after this version id
    cleared: frozenset[str] = frozenset()  # directories other units list, or absent ones
    point: str | None = None  # TREE: this unit lists the one key (Prefix=key.versions)
    nulls: list[ObjectVersion] = field(default_factory=list)  # the point's null version, seen
    first_page: VersionPage | None = None  # a page already fetched for this unit
    rows: deque[R] = field(default_factory=deque)
    spilled: list[int] = field(default_factory=list)  # offsets of pickled chunks
    spill_file: str | None = None
    done: bool = False
    is_head: bool = False
    next: Unit[R] | None = None


@dataclass
class ListingStats:
    pages: int = 0
    versions: int = 0
    units: int = 1
    spilled_rows: int = 0
    descents: int = 0  # TREE: units split around a directory or a stem
    points: int = 0  # TREE: single keys listed through Prefix=key.versions
    relisted: int = 0  # TREE: versions listed again after an untrusted page end
    probes: int = 0  # TREE: small requests that check a directory has no stem beside it

    def add(self, other: ListingStats) -> None:
        """Count what ``other`` counted (a range listed elsewhere) here too."""
        for name, value in vars(other).items():
            setattr(self, name, getattr(self, name) + value)


def kept(unit: Unit[R], entries: Sequence[ObjectVersion]) -> list[ObjectVersion]:
    """The entries of a page that belong to the unit and come after what it listed."""
    out = []
    for entry in entries:
        key = entry.key
        if key < unit.after or (key == unit.after and not unit.inside):
            continue
        if not key.startswith(unit.prefix):
            continue  # SeaweedFS matches the Prefix against ``k.versions``
        if unit.cleared and any(key.startswith(d + "/") for d in unit.cleared):
            continue
        out.append(entry)
    return out


class History:
    """Versions of one key as they arrive, page after page, in one unit."""

    def __init__(self, bucket: str, emit: Callable[[KeyHistory], None]) -> None:
        self.bucket = bucket
        self.emit = emit
        self.key: str | None = None
        self.group: list[ObjectVersion] = []

    def take(self, entry: ObjectVersion) -> None:
        if entry.key != self.key:
            if self.key is not None:
                if entry.key < self.key:
                    raise StorageError(
                        f"s3://{self.bucket}: version listing out of order "
                        f"({entry.key!r} after {self.key!r})"
                    )
                self.emit(KeyHistory(self.key, tuple(self.group)))
            self.key, self.group = entry.key, []
        self.group.append(entry)

    def close(self) -> None:
        if self.key is not None:
            self.emit(KeyHistory(self.key, tuple(self.group)))
            self.key = None
