"""Which part of a version page can be trusted, and where to resume, on a tree-walking server.

SeaweedFS (docs/design.md, "Paging a tree-walking server"; :mod:`.seaweedfs_model`) answers a
page with the S3-smallest MaxKeys of the first MaxKeys+1 versions its *walk* meets, and the
walk's order differs from key order in two ways only:

- a directory ``x`` (keys ``x/…``) is walked before its siblings ``x<c>…`` with ``c < '/'``
  (``x-1``, ``x.y``, ``x 2``…), which sort before ``x/`` as keys;
- a versioned key ``x`` (the directory ``x.versions``) is walked after ``x/…`` and after
  siblings ``x<c>…`` with ``c < '.'`` (and some with ``c == '.'``), although ``x`` sorts first.

So, for a page whose last key is ``m``, every key that sorts below ``m`` is in the page unless
the walk reaches it after ``m``: only the key ``m[:i]`` and the keys ``m[:i] + c…``
(``c < '/'``) where ``m[i] <= '/'`` can be such. :func:`risks` lists them above the position
already listed, smallest first; everything below the first is complete.

A walk resumes at a KeyMarker by starting each directory level at the marker's component
(inclusive): a directory ``d`` whose name is a proper prefix of that component, followed by a
character below ``'/'``, is skipped although its keys sort after the marker. Such a marker is
*unsafe* unless another unit lists ``d/`` (``cleared``): :func:`hazards`, :func:`is_safe`.
A marker the listing sends is never below its Prefix (SeaweedFS 4.48 answers an empty page).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from enum import StrEnum

MAX_CHAR = "\U0010ffff"
SEP = "/"


class Paging(StrEnum):
    """How a listing pages: NAIVE follows the server's markers, TREE is SeaweedFS-safe (light:
    ``cli/main.py`` offers its values before anything heavy is imported)."""

    NAIVE = "naive"
    TREE = "tree"


def paging_for(server: str) -> Paging:
    """The paging a server needs, from how it names itself (its ``Server`` header)."""
    return Paging.TREE if "seaweedfs" in server.lower() else Paging.NAIVE


KEY_ORDER_SERVERS = ("amazons3", "minio", "memorystore")
"""Servers known to list ListObjectsV2 in key order, by the start of their ``Server`` name
(MemoryStore: this package's fake of AWS)."""


def lists_in_key_order(server: str, told: Paging | None = None) -> bool:
    """Whether a ListObjectsV2 walk may be split by StartAfter: only where the server is known
    to list in key order, or the user said so (``told`` NAIVE, ``--list-paging naive``, to a
    server not recognised as SeaweedFS). Any other name may be a proxy's (nginx writes its
    own ``Server``) in front of a tree-walking server, where a range cut by key loses keys;
    there the walk goes in one sequence by the server's own continuation token (rule 23)."""
    if told is Paging.NAIVE and paging_for(server) is Paging.NAIVE:
        return True
    return server.lower().startswith(KEY_ORDER_SERVERS)


def _interior(text: str, i: int) -> bool:
    """Whether index i is inside a path component (not its first character)."""
    return i >= 1 and text[i - 1] != SEP


def hazards(marker: str, prefix: str) -> list[str]:
    """Directories a walk resuming at ``marker`` skips although their keys sort after it.

    Shallowest first: ``marker[:i]`` for each index i past the prefix, inside a component,
    where the marker's character is below ``'/'``.
    """
    if not marker.startswith(prefix):
        return []
    return [
        marker[:i]
        for i in range(len(prefix), len(marker))
        if marker[i] < SEP and _interior(marker, i)
    ]


def is_safe(marker: str, prefix: str, cleared: Collection[str]) -> bool:
    """A resume at ``marker`` lists every key after it, except under ``cleared`` dirs."""
    return all(d in cleared for d in hazards(marker, prefix))


def split_key(last_key: str, until: str | None, common: str = "") -> str | None:
    """A key m with last_key < m < until that cuts off the keys after last_key's branch."""
    cuts = split_keys(last_key, until, common)
    return cuts[0] if cuts else None


def split_keys(last_key: str, until: str | None, common: str = "", deepest: int = 0) -> list[str]:
    """Cut points between last_key and until, one per trie level, shallowest (largest) first.

    Level d cuts at ``last_key[:d+1] + MAX``: everything after last_key's branch at that
    depth. The first level is where last_key leaves ``until`` (or ``common``); levels go
    down to ``deepest`` (the depth where the page just listed was still branching).
    """
    bound = until or ""
    depth = len(common)
    while depth < len(last_key) and depth < len(bound) and last_key[depth] == bound[depth]:
        depth += 1
    cuts: list[str] = []
    for level in range(depth, max(depth, deepest) + 1):
        if level >= len(last_key) or last_key[level] == MAX_CHAR:
            break
        cut = last_key[: level + 1] + MAX_CHAR
        if not last_key < cut or (until is not None and not cut < until):
            break
        if cuts and not cut < cuts[-1]:
            break
        cuts.append(cut)
    return cuts


_RUNS = ("0123456789", "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
GUESSES = 4  # letters guessed per level at one split (digits: up to 9); later splits go on


def siblings(cut: str, upper: str | None) -> list[str]:
    """Guessed next siblings of the trie node a level cut closes, ascending.

    For ``cut = stem + MAX`` with ``stem = base + c``: ``base + c' + MAX`` for the characters
    c' after c in its run (the digits; at most :data:`GUESSES` lower-case or upper-case
    letters: names made of words are sparse), each below ``upper``.
    They are consecutive code points, so the keys between two such cuts are exactly those that
    start with the larger one's stem: the prefix each unit lists with stays exact.
    """
    stem = cut[: -len(MAX_CHAR)]
    if not stem or not cut.endswith(MAX_CHAR):
        return []
    base, c = stem[:-1], stem[-1]
    for run in _RUNS:
        at = run.find(c)
        if at < 0:
            continue
        found: list[str] = []
        for char in run[at + 1 : at + 1 + (9 if run[0] == "0" else GUESSES)]:
            sibling = base + char + MAX_CHAR
            if upper is not None and not sibling < upper:
                break
            found.append(sibling)
        return found
    return []


def fan_out(cuts: list[str], until: str | None, budget: int) -> list[str]:
    """Level cuts (:func:`split_keys`, largest first) with guessed siblings between them, at
    most ``budget`` cuts in all, largest first.

    A level's rest (``base + c'…`` for c' after c) is often a run of siblings as large as the
    page just listed (``d0001/``, ``d0002/``… after ``d0000/``): one unit per guessed sibling
    lists them at once instead of one after another. Siblings go to the shallowest levels
    first (the largest subtrees), one per level in turn, each level's nearest first, so a
    level's siblings stay contiguous from its cut; a guess that names nothing costs one
    request that answers an empty page.
    """
    spare = budget - len(cuts)
    if spare <= 0:
        return cuts
    options: list[list[str]] = []
    upper = until
    for cut in cuts:
        options.append(siblings(cut, upper))
        upper = cut
    taken = [0] * len(cuts)
    while spare > 0:
        before = spare
        for i, found in enumerate(options):
            if spare > 0 and taken[i] < len(found):
                taken[i] += 1
                spare -= 1
        if spare == before:
            break
    merged: list[str] = []
    for cut, found, count in zip(cuts, options, taken, strict=True):
        merged.extend(reversed(found[:count]))
        merged.append(cut)
    return merged


def predecessor(bound: str) -> str:
    """A marker just below ``bound`` of the ``X + MAX`` form: lists from ``bound`` on."""
    last = bound[-1]
    if last == "\0":
        return bound[:-1]
    return bound[:-1] + chr(ord(last) - 1) + MAX_CHAR


class RiskKind(StrEnum):
    POINT = "point"
    """The key ``at`` (if versioned) may be walked after the page's last key."""
    DIR = "dir"
    """``at`` is a directory the page ended in: ``at`` and its siblings ``at<c>…`` (c < '/')
    are walked after its contents."""


@dataclass(frozen=True, slots=True)
class Risk:
    kind: RiskKind
    at: str = ""  # keys strictly below ``at`` (and above the listed position) are complete
    trapped: bool = False  # nothing above the listed position is complete


def risks(
    last_key: str, after: str, inside: bool, prefix: str, *, stems: bool = True
) -> Iterator[Risk]:
    """The keys above the listed position that a page ending at ``last_key`` may have missed,
    smallest first.

    The position is ``after`` (every key below it listed; ``after`` itself too, unless
    ``inside``: listing is inside its versions). Keys of the page below the first risk's
    ``at`` are complete; without any risk the whole page is. A key the page holds below
    ``last_key`` may still be a risk: the walk collects MaxKeys+1 versions and the page holds
    the smallest MaxKeys, so a key walked after ``last_key`` can be there with some of its
    versions only. ``stems=False``: the bucket was never versioned, so no key is a
    ``.versions`` directory and only directories can be walked out of order.
    """
    m = last_key
    common = 0
    limit = min(len(after), len(m))
    while common < limit and after[common] == m[common]:
        common += 1
    for i in range(max(len(prefix), 1), len(m)):
        if m[i] > SEP or not _interior(m, i) or i < common:
            continue
        x = m[:i]
        kind = RiskKind.DIR if m[i] == SEP else RiskKind.POINT
        if kind is RiskKind.POINT and not stems:
            continue
        if i == common:
            if kind is RiskKind.DIR:
                yield Risk(kind, x, trapped=True)  # after is x or a sibling of it
            elif after == x and inside:
                yield Risk(kind, x, trapped=True)  # x's remaining versions
            continue
        yield Risk(kind, x)
