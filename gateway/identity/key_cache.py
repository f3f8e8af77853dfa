"""The per-replica API-key cache: keeps the database off the per-request path, without letting a revoked
key back in.

* **Fresh** entries (younger than `ttl_seconds`) answer without the database.
* **Invalidation is versioned.** Every invalidation bumps a generation counter; a fill records the
  generation before it reads the database and is stored only if no invalidation happened meanwhile. A
  request that read a key as active just before its revocation committed can therefore not put it back
  into the cache after the invalidation ran (its own answer is the one that read the old state).
* **Invalidation runs after commit** (`gateway.db.session.after_commit`): dropping an entry while the
  revoking transaction is still open lets a request in between read the still-active row and cache it.
* **One read per key at a time** (`fill`): when an entry expires under load, every request in flight
  misses at once; they all await the same database read instead of sending one each (32 connections
  made 32 concurrent reads every `ttl_seconds`, a 100-300 ms stall: `benchmarks/profile_check_stalls.py`).
  A fill is shared only within one generation: a request that arrives after an invalidation starts its
  own read, so it cannot be handed a result read before the revocation.
* **Refresh ahead**: a hit older than `REFRESH_AT` of the TTL starts that read in the background (once)
  and is answered from the cache, so a key in steady use never expires under its callers. An entry is
  still never served past `ttl_seconds` from its fill.
* **Stale** entries (up to `max_stale_seconds`, the decision index's staleness bound) are kept for a
  database outage only: a known key keeps working while the database is unreachable, an unknown one is
  refused with 503 (`identity/http.py`).

Time is the injected `Clock`, so a test moves it. Other replicas drop a deprovisioned tenant's keys when
their revocation list reads `access.revoked` from the outbox (its poll interval, or at once when the
Redis nudge arrives); a key revoked by hand is dropped on this replica at once (after commit) and on the
others when their revocation list reads `api_key.revoked` the same way.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.kernel.auth import Principal
from gateway.kernel.clock import Clock

MAX_ENTRIES = 10_000
REFRESH_AT = 0.8  # of the TTL: a hit this old starts a background refresh
log = logging.getLogger("tiergate.identity")
_all_caches: weakref.WeakSet[KeyCache] = weakref.WeakSet()


@dataclass(frozen=True, slots=True)
class _Entry:
    principal: Principal
    filled_at: datetime


class KeyCache:
    def __init__(self, clock: Clock, *, ttl_seconds: float = 5.0, max_stale_seconds: float = 30.0) -> None:
        self.clock = clock
        self.ttl = timedelta(seconds=ttl_seconds)
        self.max_stale = timedelta(seconds=max(ttl_seconds, max_stale_seconds))
        self._entries: dict[str, _Entry] = {}
        self._generation = 0
        # Reads in flight, by (digest, generation): concurrent misses of one key share one read.
        self._fills: dict[tuple[str, int], asyncio.Task[Principal]] = {}
        _all_caches.add(self)

    @property
    def generation(self) -> int:
        """Read before a fill; hand it back to `store`."""
        return self._generation

    def _younger_than(self, digest: str, age: timedelta) -> Principal | None:
        entry = self._entries.get(digest)
        if entry is None or self.clock.now() - entry.filled_at >= age:
            return None
        return entry.principal

    def fresh(self, digest: str) -> Principal | None:
        return self._younger_than(digest, self.ttl)

    def stale(self, digest: str) -> Principal | None:
        """A known key's last answer, within the outage bound; only when the database cannot answer."""
        return self._younger_than(digest, self.max_stale)

    def refresh_due(self, digest: str) -> bool:
        """A fresh entry old enough to be re-read in the background (see `refresh`)."""
        entry = self._entries.get(digest)
        return entry is not None and self.clock.now() - entry.filled_at >= self.ttl * REFRESH_AT

    def fill(self, digest: str, read: Callable[[], Awaitable[Principal]]) -> Awaitable[Principal]:
        """The key's principal from `read` (the database), stored unless invalidated meanwhile; a fill of
        the same key already running in this generation is joined instead of starting another."""
        # Shielded: a caller that goes away (client disconnect) must not cancel the read others await.
        return asyncio.shield(self._start(digest, read))

    def refresh(self, digest: str, read: Callable[[], Awaitable[Principal]]) -> None:
        """Start (or join) a fill in the background; its failure is left to the next miss to see."""
        self._start(digest, read)

    def _start(self, digest: str, read: Callable[[], Awaitable[Principal]]) -> asyncio.Task[Principal]:
        generation = self._generation  # before the read: an invalidation meanwhile voids this fill
        key = (digest, generation)
        task = self._fills.get(key)
        if task is None:
            task = asyncio.ensure_future(self._read_and_store(digest, read, generation))
            self._fills[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        return task

    async def _read_and_store(
        self, digest: str, read: Callable[[], Awaitable[Principal]], generation: int
    ) -> Principal:
        principal = await read()
        self.store(digest, principal, generation)
        return principal

    def _finished(self, key: tuple[str, int], task: asyncio.Task[Principal]) -> None:
        self._fills.pop(key, None)
        if not task.cancelled() and task.exception() is not None:  # retrieved: a refresh nobody awaited
            log.debug("API key read failed: %r", task.exception())

    def store(self, digest: str, principal: Principal, generation: int) -> bool:
        """Cache a fill unless an invalidation happened since it began (then the fill may be stale)."""
        if generation != self._generation:
            return False
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[digest] = _Entry(principal, self.clock.now())
        return True

    def _drop(self, matches: Callable[[Principal], bool]) -> None:
        self._generation += 1
        for digest, entry in list(self._entries.items()):
            if matches(entry.principal):
                self._entries.pop(digest, None)

    def forget_keys(self, key_ids: Iterable[str]) -> None:
        ids = frozenset(key_ids)
        self._drop(lambda p: p.key_id in ids)

    def forget_tenant(self, tenant_id: str) -> None:
        self._drop(lambda p: p.tenant_id == tenant_id)

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()


def clear_all() -> None:
    """Every cache of this process (tests start each app from nothing)."""
    for cache in list(_all_caches):
        cache.clear()
