"""Processes the tests start, and what those started in turn."""

from __future__ import annotations

import contextlib

import psutil


def family(pid: int) -> list[psutil.Process]:
    """The process ``pid`` and every process under it (a server in a session of its own
    included: it is still a child); empty once ``pid`` is gone."""
    with contextlib.suppress(psutil.NoSuchProcess):
        parent = psutil.Process(pid)
        return [parent, *parent.children(recursive=True)]
    return []
