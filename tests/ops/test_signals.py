"""stop_on_signals nests: the innermost use gets the signal, leaving restores the outer."""

from __future__ import annotations

import asyncio
import os
import signal

from backup_my_bucket.ops.signals import stop_on_signals


async def test_the_innermost_use_gets_the_signal_and_leaving_restores_the_outer() -> None:
    before = signal.getsignal(signal.SIGTERM)
    outer: list[str] = []
    inner: list[str] = []
    with stop_on_signals(outer.append, (signal.SIGTERM,)):
        assert signal.getsignal(signal.SIGTERM) is not before  # installed: safe to send
        with stop_on_signals(inner.append, (signal.SIGTERM,)):
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(0.1)
        assert (outer, inner) == ([], ["SIGTERM"])
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0.1)
        assert (outer, inner) == (["SIGTERM"], ["SIGTERM"])
    assert signal.getsignal(signal.SIGTERM) is before
