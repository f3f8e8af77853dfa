"""The per-replica API-key cache: keeps the database off the per-request path, without letting a revoked
key back in.

* **Fresh** entries (younger than `ttl_seconds`) answer without the database.
* **Invalidation is versioned.** Every invalidation bumps a generation counter; a fill records the
  generation before it reads the database and is stored only if no invalidation happened meanwhile. A
  request that read a key as active just before its revocation committed can therefore not put it back
  into the cache after the invalidation ran (its own answer is the one that read the old state).
* **Invalidation runs after commit** (`gateway.db.session.after_commit`): dropping an entry while the
  revoking transaction is still open lets a request in between read the still-active row and cache it.
* **Stale** entries (up to `max_stale_seconds`, the decision index's staleness bound) are kept for a
  database outage only: a known key keeps working while the database is unreachable, an unknown one is
  refused with 503 (`identity/http.py`).

Time is the injected `Clock`, so a test moves it. Other replicas drop a deprovisioned tenant's keys when
their revocation list reads `access.revoked` from the outbox (its poll interval); a key revoked by hand
is dropped on this replica at once and on the others within `ttl_seconds`.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.kernel.auth import Principal
from gateway.kernel.clock import Clock

MAX_ENTRIES = 10_000
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
