"""Waiting for a nudge with a timeout, safely cancellable.

WARNING: do not use `asyncio.wait_for(event.wait(), timeout)` for this on Python 3.11: a cancellation
that arrives while the event is already set is swallowed there (fixed in 3.12), so a background loop
`while True: await wait_for(...)` survives `task.cancel()` and the app's shutdown hangs forever.
`asyncio.timeout` has no such race.
"""

from __future__ import annotations

import asyncio
import contextlib


async def wait_for_nudge(event: asyncio.Event, timeout_seconds: float) -> None:
    """Return when `event` is set or after `timeout_seconds`, whichever comes first."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_seconds):
            await event.wait()
