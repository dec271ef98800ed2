"""The C allocator's thresholds (engine/allocator.py): under Dask's nanny setting
(``MALLOC_TRIM_THRESHOLD_=65536``) every 256 KiB socket read of a few bytes, asyncio's
pattern, maps fresh pages; once tuned, reads reuse the heap."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
from pathlib import Path

from backup_my_bucket.engine import allocator

ROOT = Path(__file__).resolve().parents[2]
READ = 256 * 1024  # asyncio's selector transport reads this much at a time


def read_faults(reads: int = 200) -> float:
    """Page faults per socket read of 100 bytes into a fresh 256 KiB buffer, in this process."""
    sender, receiver = socket.socketpair()
    try:
        for _ in range(10):  # the buffers a first read allocates are not what is measured
            sender.send(b"x" * 100)
            receiver.recv(READ)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(reads):
            sender.send(b"x" * 100)
            receiver.recv(READ)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    finally:
        sender.close()
        receiver.close()
    return (after - before) / reads


def test_under_dasks_setting_reads_map_pages_until_the_thresholds_are_raised() -> None:
    code = (
        "from tests.engine.test_allocator import read_faults\n"
        "from backup_my_bucket.engine import allocator\n"
        "before = read_faults()\n"
        "print(before, allocator.tune(), read_faults(), allocator.tune())\n"
    )
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536"}  # what Dask's nanny sets
    run = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    before, tuned, after, again = run.stdout.split()
    if not allocator.glibc():  # another C library: nothing to set, nothing set
        assert (tuned, again) == ("False", "False")
        return
    assert float(before) >= 1.0  # an mmap, faults, an mremap and an munmap per read
    assert (tuned, again) == ("True", "True")
    assert float(after) < 0.1
