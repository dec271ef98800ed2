"""Which keys a command touches: a folder, ``--include``/``--exclude`` globs, and the rule
that two locations a command reads and writes never overlap."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from ..errors import UsageError
from ..model import S3Url, folder, in_folder


@dataclass(frozen=True, slots=True)
class KeyFilter:
    """Relative keys in the folder ``prefix`` (``docs`` means ``docs/``, see
    :func:`~backup_my_bucket.model.folder`) that match some ``include`` glob (or there are
    none) and no ``exclude`` glob. Globs match the whole relative key; ``*`` also matches ``/``.

    Keys out of scope are left alone entirely: neither copied nor deleted.
    """

    prefix: str = ""
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefix", folder(self.prefix))

    def matches(self, key: str) -> bool:
        if not in_folder(key, self.prefix):
            return False
        if self.include and not any(fnmatchcase(key, glob) for glob in self.include):
            return False
        return not any(fnmatchcase(key, glob) for glob in self.exclude)

    __call__ = matches


ALL_KEYS = KeyFilter()


def refuse_overlap(read: tuple[str, S3Url], written: tuple[str, S3Url], hint: str) -> None:
    """Refuse (exit 2) a command whose ``written`` location overlaps the one it reads from:
    the same bucket with one folder inside the other, or the same folder. Writing there
    changes what is being read (a backup inside its source would back itself up; a restore
    into its backup would rewrite the history it restores from). Each side: (name, URL)."""
    (read_name, read_url), (written_name, written_url) = read, written
    if read_url.overlaps(written_url):
        raise UsageError(
            f"{written_name} {written_url} overlaps {read_name} {read_url} (the same bucket, "
            "and one folder inside the other or the same)",
            hint=hint,
        )
