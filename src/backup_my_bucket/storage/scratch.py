"""Scratch files of a run (listing spill files, a snapshot's working directory): named after
the host and process that own them, removed on every exit path, and swept when the owner was
killed before it could (``kill -9`` runs no cleanup).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tempfile
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host is running. When it cannot be told: True."""
    if os.name != "posix" or pid <= 0:
        return True  # (os.kill on Windows would terminate the process, not probe it)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # EPERM: it exists, under another user
    try:  # a zombie (killed, not yet reaped by its parent) holds nothing any more
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2 :][:1] != "Z"


_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def scratch_prefix(kind: str) -> str:
    """``bmb-<kind>-<host>-<pid>-``: the name prefix of this process's scratch files."""
    return f"bmb-{kind}-{_HOST}-{os.getpid()}-"


def sweep_stale(kind: str, directory: str | None = None) -> list[Path]:
    """Remove the scratch files and directories of ``kind`` that processes of this host left
    when they died; those of running processes (and of other hosts) stay."""
    removed = []
    for path in Path(directory or tempfile.gettempdir()).glob(f"bmb-{kind}-{_HOST}-*-*"):
        pid = path.name.split("-")[3]
        if not pid.isdigit() or int(pid) == os.getpid() or pid_alive(int(pid)):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed
