"""Which keys a command touches: a prefix and ``--include``/``--exclude`` globs."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase


@dataclass(frozen=True, slots=True)
class KeyFilter:
    """Relative keys under ``prefix`` that match some ``include`` glob (or there are none) and
    no ``exclude`` glob. Globs match the whole relative key; ``*`` also matches ``/``.

    Keys out of scope are left alone entirely: neither copied nor deleted.
    """

    prefix: str = ""
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def matches(self, key: str) -> bool:
        if not key.startswith(self.prefix):
            return False
        if self.include and not any(fnmatchcase(key, glob) for glob in self.include):
            return False
        return not any(fnmatchcase(key, glob) for glob in self.exclude)

    __call__ = matches


ALL_KEYS = KeyFilter()
