"""The C allocator's thresholds in a Dask worker process (engine/cluster_worker.py applies them).

asyncio reads a socket up to 256 KiB at a time (its selector transport's ``max_size``):
Python asks malloc for 256 KiB, then shrinks the block to what arrived. glibc serves a
request at or above its *mmap threshold* (128 KiB to begin with) with a mapping of its own,
so every read costs an mmap, page faults on the pages written, an mremap and an munmap —
unless the threshold has risen, which glibc does by itself as a program frees large
blocks, *but not once* ``MALLOC_TRIM_THRESHOLD_`` or ``MALLOC_MMAP_THRESHOLD_`` is set in the
environment. Dask's nanny sets ``MALLOC_TRIM_THRESHOLD_=65536`` in every worker process it
starts (``distributed.nanny.pre-spawn-environ``), so a worker paid two page faults and
~0.05 ms of CPU per copy (~20 % of a copy) that the same copies do not cost in-process
(docs/scale.md, "The cluster's overhead").

:func:`tune` sets the mmap threshold above those reads (1 MiB) and the trim threshold to
twice that, glibc's own rule when it adapts them: at most ~2 MiB of freed memory stays with
the process instead of going back to the system at once. It only raises what the
environment set, and does nothing on other C libraries.
"""

from __future__ import annotations

import ctypes
import os

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 20
"""Above asyncio's 256 KiB socket reads (and TLS's): those come from the heap, reused."""

_tuned = False


def _environ_bytes(name: str) -> int:
    try:
        return int(os.environ.get(name, "0"))
    except ValueError:
        return 0


def glibc() -> bool:
    """This process runs on the GNU C library (whose ``mallopt`` takes these parameters)."""
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (AttributeError, ValueError, OSError):  # not POSIX, or not glibc
        return False


def tune() -> bool:
    """Raise this process's mmap and trim thresholds (once); True when they are set."""
    global _tuned
    if not _tuned and glibc():
        mmap = max(MMAP_THRESHOLD, _environ_bytes("MALLOC_MMAP_THRESHOLD_"))
        trim = max(2 * mmap, _environ_bytes("MALLOC_TRIM_THRESHOLD_"))
        mallopt = ctypes.CDLL(None).mallopt
        mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        _tuned = bool(mallopt(M_MMAP_THRESHOLD, mmap)) and bool(mallopt(M_TRIM_THRESHOLD, trim))
    return _tuned
