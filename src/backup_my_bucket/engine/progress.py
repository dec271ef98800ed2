"""How engines report progress; the CLI draws it (count, bytes, rate and ETA on stderr).

Every phase starts with a label that says what is counted (``"restore: copying"``) and the
``unit`` counted (``"objects"``, ``"versions"``, ``"keys"``); totals may come later.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start(
        self,
        description: str,
        total: int | None = None,
        total_bytes: int | None = None,
        *,
        unit: str = "objects",
    ) -> None:
        """Begin a phase; totals may be unknown (None) and set later with :meth:`total`."""
        ...

    def total(self, total: int | None = None, total_bytes: int | None = None) -> None: ...

    def advance(self, items: int = 1, nbytes: int = 0) -> None: ...

    def finish(self) -> None: ...


class NullProgress:
    """Reports nothing (library use, tests, --json without a terminal)."""

    def start(
        self,
        description: str,
        total: int | None = None,
        total_bytes: int | None = None,
        *,
        unit: str = "objects",
    ) -> None:
        pass

    def total(self, total: int | None = None, total_bytes: int | None = None) -> None:
        pass

    def advance(self, items: int = 1, nbytes: int = 0) -> None:
        pass

    def finish(self) -> None:
        pass


class CountingProgress(NullProgress):
    """Counts what was reported; for tests."""

    def __init__(self) -> None:
        self.items = 0
        self.nbytes = 0
        self.phases: list[str] = []

    def start(
        self,
        description: str,
        total: int | None = None,
        total_bytes: int | None = None,
        *,
        unit: str = "objects",
    ) -> None:
        self.phases.append(description)

    def advance(self, items: int = 1, nbytes: int = 0) -> None:
        self.items += items
        self.nbytes += nbytes
