"""Server-side browser sessions: the cookie carries only an opaque random id; everything else lives here.

One `SessionStore` protocol, two adapters that pass the same contract test (tests/sso/test_session_store.py):
`MemorySessionStore` (embedded mode, one process) and `RedisSessionStore` (production, shared by replicas).

What must stay true:
- The id is 256 random bits and is stored only as its SHA-256: whoever reads the store (a Redis dump, a
  backup) cannot turn what they read into a working cookie.
- `end_for_user` / `end_for_tenant` end every live session of that user / tenant and return how many they
  ended: deprovisioning (provisioning domain) calls them and must be able to rely on "none left".
- An expired session is indistinguishable from a missing one.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

from redis.asyncio import Redis

from gateway.kernel.clock import Clock, format_timestamp

__all__ = ["MemorySessionStore", "RedisSessionStore", "Session", "SessionStore", "new_session_id"]


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    user_id: str
    tenant_id: str
    data: dict[str, Any]
    created_at: datetime
    expires_at: datetime


class SessionStore(Protocol):
    async def create(
        self, *, user_id: str, tenant_id: str, data: dict[str, Any], ttl_seconds: int
    ) -> str: ...

    async def get(self, session_id: str) -> Session | None: ...

    async def delete(self, session_id: str) -> None: ...

    async def end_for_tenant(self, tenant_id: str) -> int: ...

    async def end_for_user(self, user_id: str) -> int: ...


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _check_ttl(ttl_seconds: int) -> None:
    if ttl_seconds <= 0:
        raise ValueError("a session needs a positive lifetime")


@dataclass
class _Entry:
    session: Session
    digest: str


@dataclass
class MemorySessionStore:
    """In-process store for the embedded default. Expiry follows the injected clock."""

    clock: Clock
    _by_digest: dict[str, _Entry] = field(default_factory=dict)

    async def create(self, *, user_id: str, tenant_id: str, data: dict[str, Any], ttl_seconds: int) -> str:
        _check_ttl(ttl_seconds)
        session_id = new_session_id()
        now = self.clock.now()
        # A JSON round trip gives the memory store the same value semantics as Redis (no shared mutables).
        session = Session(
            session_id,
            user_id,
            tenant_id,
            json.loads(json.dumps(data)),
            now,
            now + timedelta(seconds=ttl_seconds),
        )
        self._by_digest[_digest(session_id)] = _Entry(session, _digest(session_id))
        return session_id

    def _live(self) -> list[_Entry]:
        now = self.clock.now()
        for digest, entry in list(self._by_digest.items()):
            if entry.session.expires_at <= now:
                del self._by_digest[digest]
        return list(self._by_digest.values())

    async def get(self, session_id: str) -> Session | None:
        entry = self._by_digest.get(_digest(session_id))
        if entry is None:
            return None
        if entry.session.expires_at <= self.clock.now():
            del self._by_digest[entry.digest]
            return None
        s = entry.session
        return Session(
            s.id, s.user_id, s.tenant_id, json.loads(json.dumps(s.data)), s.created_at, s.expires_at
        )

    async def delete(self, session_id: str) -> None:
        self._by_digest.pop(_digest(session_id), None)

    async def end_for_tenant(self, tenant_id: str) -> int:
        ended = [e for e in self._live() if e.session.tenant_id == tenant_id]
        for entry in ended:
            del self._by_digest[entry.digest]
        return len(ended)

    async def end_for_user(self, user_id: str) -> int:
        ended = [e for e in self._live() if e.session.user_id == user_id]
        for entry in ended:
            del self._by_digest[entry.digest]
        return len(ended)


# KEYS[1] session key; KEYS[2] user index; KEYS[3] tenant index; ARGV: value, ttl, digest.
# The index sets live as long as their longest session, so a forgotten index never outlives its members.
_CREATE = """
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
for i = 2, 3 do
  redis.call('SADD', KEYS[i], ARGV[3])
  if redis.call('TTL', KEYS[i]) < tonumber(ARGV[2]) then redis.call('EXPIRE', KEYS[i], ARGV[2]) end
end
return 1
"""

# KEYS[1] the index set; ARGV[1] the session key prefix. Deletes every member session, counts the live ones.
_END_ALL = """
local digests = redis.call('SMEMBERS', KEYS[1])
local ended = 0
for _, digest in ipairs(digests) do
  ended = ended + redis.call('DEL', ARGV[1] .. digest)
end
redis.call('DEL', KEYS[1])
return ended
"""


class RedisSessionStore:
    """Sessions in Redis: `{prefix}:s:{sha256(id)}` holds the JSON with EX = lifetime; per-user and
    per-tenant sets of digests let deprovisioning end them all in one atomic script. Keys carry
    `{tenant}`-free names on purpose: the user index spans tenants, so this store is not Cluster-sharded."""

    def __init__(self, client: Redis, clock: Clock, *, prefix: str = "tg:sessions") -> None:
        self.client = client
        self.clock = clock
        self.prefix = prefix
        self._create = client.register_script(_CREATE)
        self._end_all = client.register_script(_END_ALL)

    def _key(self, digest: str) -> str:
        return f"{self.prefix}:s:{digest}"

    def _user_key(self, user_id: str) -> str:
        return f"{self.prefix}:u:{user_id}"

    def _tenant_key(self, tenant_id: str) -> str:
        return f"{self.prefix}:t:{tenant_id}"

    async def create(self, *, user_id: str, tenant_id: str, data: dict[str, Any], ttl_seconds: int) -> str:
        _check_ttl(ttl_seconds)
        session_id = new_session_id()
        digest = _digest(session_id)
        now = self.clock.now()
        value = json.dumps(
            {
                "user_id": user_id,
                "tenant_id": tenant_id,
                "data": data,
                "created_at": format_timestamp(now),
                "expires_at": format_timestamp(now + timedelta(seconds=ttl_seconds)),
            }
        )
        keys = [self._key(digest), self._user_key(user_id), self._tenant_key(tenant_id)]
        await self._create(keys=keys, args=[value, ttl_seconds, digest])
        return session_id

    async def get(self, session_id: str) -> Session | None:
        raw = await self.client.get(self._key(_digest(session_id)))
        if raw is None:
            return None
        doc = json.loads(raw)
        expires_at = datetime.fromisoformat(doc["expires_at"])
        if expires_at <= self.clock.now():
            # Redis expires on its own wall clock; the service's clock is the one that decides.
            await self.delete(session_id)
            return None
        return Session(
            session_id,
            doc["user_id"],
            doc["tenant_id"],
            doc["data"],
            datetime.fromisoformat(doc["created_at"]),
            expires_at,
        )

    async def delete(self, session_id: str) -> None:
        digest = _digest(session_id)
        raw = await self.client.get(self._key(digest))
        await self.client.delete(self._key(digest))
        if raw is not None:
            doc = json.loads(raw)
            await cast("Awaitable[int]", self.client.srem(self._user_key(doc["user_id"]), digest))
            await cast("Awaitable[int]", self.client.srem(self._tenant_key(doc["tenant_id"]), digest))

    async def end_for_tenant(self, tenant_id: str) -> int:
        return int(await self._end_all(keys=[self._tenant_key(tenant_id)], args=[f"{self.prefix}:s:"]))

    async def end_for_user(self, user_id: str) -> int:
        return int(await self._end_all(keys=[self._user_key(user_id)], args=[f"{self.prefix}:s:"]))
