"""What a plan does with one key: the vocabulary shared by sync's and restore's plans."""

from __future__ import annotations

from enum import StrEnum


class ActionKind(StrEnum):
    COPY = "copy"
    DELETE = "delete"
    SKIP = "skip"
