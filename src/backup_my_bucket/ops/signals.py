"""SIGTERM and SIGINT as a request to stop, for the daemon and `plan run` only.

Generic signal handling for one-shot commands is the CLI's business (Ctrl-C already becomes
exit 130 there); this stays local so both can be composed later.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator, Sequence


@contextlib.contextmanager
def stop_on_signals(
    stop: Callable[[str], None],
    signals: Sequence[signal.Signals] = (signal.SIGTERM, signal.SIGINT),
) -> Iterator[None]:
    """While inside, these signals call ``stop(name)`` instead of ending the process.

    Only the main thread can receive signals: elsewhere (a test running the CLI in a thread)
    nothing is installed.
    """
    loop = asyncio.get_running_loop()
    installed = []
    for sig in signals:
        try:
            loop.add_signal_handler(sig, stop, sig.name)
        except (ValueError, RuntimeError):  # not the main thread
            break
        installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
