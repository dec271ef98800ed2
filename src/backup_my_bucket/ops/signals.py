"""Signals as a request to stop, inside an event loop.

Every command's loop stops on SIGTERM through it (cli/app.py: the command's task is
cancelled, exit 143); the daemon also stops on SIGINT at a safe point. Nested uses compose:
leaving restores the handler that was there before (the outer use's, or the process's).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator, Sequence
from typing import Any

# the main thread's uses, innermost last per signal; the loop calls the innermost
_stops: dict[signal.Signals, list[Callable[[str], None]]] = {}
_before: dict[signal.Signals, Any] = {}  # the process's handler before the first use


def _dispatch(sig: signal.Signals) -> None:
    _stops[sig][-1](sig.name)


@contextlib.contextmanager
def stop_on_signals(
    stop: Callable[[str], None],
    signals: Sequence[signal.Signals] = (signal.SIGTERM, signal.SIGINT),
) -> Iterator[None]:
    """While inside, these signals call ``stop(name)`` instead of ending the process (the
    innermost use's ``stop`` when uses nest).

    Only the main thread can receive signals: elsewhere (a test running the CLI in a thread)
    nothing is installed.
    """
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in signals:
        if not _stops.get(sig):
            before = signal.getsignal(sig)
            try:
                loop.add_signal_handler(sig, _dispatch, sig)
            except (ValueError, RuntimeError):  # not the main thread
                break
            _before[sig] = before
        _stops.setdefault(sig, []).append(stop)
        installed.append(sig)
    try:
        yield
    finally:
        for sig in reversed(installed):
            _stops[sig].pop()
            if not _stops[sig]:
                loop.remove_signal_handler(sig)  # leaves SIG_DFL (Python's own for SIGINT)
                before = _before.pop(sig, None)
                if before is not None:
                    signal.signal(sig, before)
