"""Pending sign-ins: what /sso/login remembers (nonce, PKCE verifier, connection, tenant) until the IdP
sends the browser back to /sso/callback with the `state`.

`take` is single use by construction (GETDEL in Redis, pop in memory): a replayed callback finds nothing,
so a leaked callback URL cannot be used a second time, however fast the replay.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from redis.asyncio import Redis


class PendingLogins(Protocol):
    async def put(self, state: str, data: dict[str, Any], ttl_seconds: int) -> None: ...

    async def take(self, state: str) -> dict[str, Any] | None: ...


def _digest(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


@dataclass
class MemoryPendingLogins:
    # Monotonic time: a pending login's lifetime is real elapsed time, whatever a test clock says.
    _items: dict[str, tuple[float, str]] = field(default_factory=dict)

    async def put(self, state: str, data: dict[str, Any], ttl_seconds: int) -> None:
        now = time.monotonic()
        for key, (deadline, _) in list(self._items.items()):
            if deadline <= now:
                del self._items[key]
        self._items[_digest(state)] = (now + ttl_seconds, json.dumps(data))

    async def take(self, state: str) -> dict[str, Any] | None:
        item = self._items.pop(_digest(state), None)
        if item is None or item[0] <= time.monotonic():
            return None
        loaded: dict[str, Any] = json.loads(item[1])
        return loaded


class RedisPendingLogins:
    def __init__(self, client: Redis, *, prefix: str = "tg:sso:pending") -> None:
        self.client = client
        self.prefix = prefix

    async def put(self, state: str, data: dict[str, Any], ttl_seconds: int) -> None:
        await self.client.set(f"{self.prefix}:{_digest(state)}", json.dumps(data), ex=ttl_seconds)

    async def take(self, state: str) -> dict[str, Any] | None:
        raw = await self.client.getdel(f"{self.prefix}:{_digest(state)}")
        if raw is None:
            return None
        loaded: dict[str, Any] = json.loads(raw)
        return loaded
