"""The change feed: what each replica's engine applied, in order, for clients that decide in-process.

The engine tails the outbox (`gateway/db/stream.py`); every batch it applies becomes one `Change` here:
the outbox position it reached and the tenants it touched (a policy change touches everyone). The SDK's
local decision mode follows the feed over Server-Sent Events (`GET /v1/changes`) and reloads the
tenants' decision bundles a change names.

Positions are outbox positions, so they are comparable across replicas: a client that reconnects to
another replica resumes with `Last-Event-ID`. A replica remembers the last `capacity` changes; a client
further behind (or one that reconnects after the replica rebuilt its index) gets a `reset` and reloads
everything it holds. That is always correct, only slower.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Change:
    seq: int  # this replica's own counter: one connection follows it, so nothing is sent twice
    position: int  # the outbox position: what a client resumes from on any replica
    tenants: frozenset[str]
    policy: bool = False  # every tenant's decisions may have changed

    def concerns(self, tenant_id: str | None) -> bool:
        """Whether a caller scoped to `tenant_id` (None: a platform key, sees all) must hear of it."""
        return tenant_id is None or self.policy or tenant_id in self.tenants


class ChangeFeed:
    def __init__(self, capacity: int = 4096) -> None:
        self._changes: deque[Change] = deque(maxlen=capacity)
        # Every position at or above the floor is answerable from memory; below it, a client must reset.
        self.floor = 0
        self.position = 0
        self.seq = 0
        self.floor_seq = 0
        self._arrived = asyncio.Event()
        # Set when the server is shutting down: open streams end now (clients resume with Last-Event-ID
        # elsewhere) instead of holding the graceful shutdown for up to `changes_stream_max_seconds`.
        self.closed = False

    def close(self) -> None:
        self.closed = True
        self._wake()

    def reset(self, position: int) -> None:
        """The index was rebuilt from scratch: nothing before `position` can be replayed from memory."""
        self._changes.clear()
        self.floor = self.position = position
        self.seq += 1
        self.floor_seq = self.seq
        self._wake()

    def publish(self, position: int, tenants: Iterable[str], *, policy: bool = False) -> None:
        """What the engine just applied. A repair (anti-entropy) has no new outbox row: it is published at
        the current position, which a resuming client replays (positions resume inclusively)."""
        self.seq += 1
        change = Change(self.seq, max(position, self.position), frozenset(tenants), policy)
        if len(self._changes) == self._changes.maxlen:
            dropped = self._changes[0]
            self.floor, self.floor_seq = dropped.position + 1, dropped.seq
        self._changes.append(change)
        self.position = change.position
        self._wake()

    def after(self, seq: int) -> list[Change] | None:
        """Changes after this replica's `seq` (one connection's cursor); None when they were dropped or
        the index was rebuilt meanwhile."""
        if seq < self.floor_seq:
            return None
        return [c for c in self._changes if c.seq > seq]

    def resume(self, position: int) -> list[Change] | None:
        """Changes at or after outbox `position` (a client's Last-Event-ID, from any replica); None when
        they are no longer kept. Inclusive: hearing of a change twice costs one reload, missing it costs a
        wrong answer."""
        if position < self.floor:
            return None
        return [c for c in self._changes if c.position >= position]

    async def wait(self, seconds: float) -> None:
        """Until the next change (or reset) arrives, at most `seconds`."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._arrived.wait(), seconds)

    def _wake(self) -> None:
        # A fresh event per arrival: every waiter of the old one wakes, later waiters wait for the next.
        arrived, self._arrived = self._arrived, asyncio.Event()
        arrived.set()


def close_on_exit_signals(feed: ChangeFeed) -> None:
    """Close `feed` as soon as the process is told to stop (SIGTERM, SIGINT), then let the server's own
    handler run. Both servers drain open connections before the app's lifespan shutdown runs, so the
    lifespan would be too late. Call it from the lifespan's start-up, after the server set its handlers:
    granian's worker sets them on the event loop (`loop.add_signal_handler`), uvicorn with
    `signal.signal`; each is chained, never replaced."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        handle = getattr(loop, "_signal_handlers", {}).get(sig)
        if handle is not None:

            def on_loop(handle: asyncio.Handle = handle) -> None:
                feed.close()
                handle._run()

            loop.add_signal_handler(sig, on_loop)
            continue
        previous = signal.getsignal(sig)
        if not callable(previous) or threading.current_thread() is not threading.main_thread():
            continue

        def on_signal(signum: int, frame: Any, previous: Callable[[int, Any], Any] = previous) -> None:
            with contextlib.suppress(RuntimeError):  # that loop may be closed by now
                loop.call_soon_threadsafe(feed.close)
            previous(signum, frame)

        signal.signal(sig, on_signal)
