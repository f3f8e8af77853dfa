"""The pending-login store, both implementations: single use, expiring, keyed by the state only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from uuid import uuid4

import pytest
import redis.asyncio

from gateway.sso.pending import MemoryPendingLogins, PendingLogins, RedisPendingLogins
from tests.sso.test_session_store import IN_CI, _redis_url


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[PendingLogins]:
    if request.param == "memory":
        yield MemoryPendingLogins()
        return
    client = redis.asyncio.Redis.from_url(_redis_url())
    try:
        await client.ping()
    except (OSError, redis.exceptions.ConnectionError):
        await client.aclose()
        if IN_CI:
            pytest.fail("CI is set but Redis is not reachable at TIERGATE_TEST_REDIS_URL")
        pytest.skip("no Redis at redis://127.0.0.1:6379/0")
    prefix = f"tgtest-pending-{uuid4().hex}"
    try:
        yield RedisPendingLogins(client, prefix=prefix)
    finally:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_a_state_can_be_taken_once(store: PendingLogins) -> None:
    await store.put("state-1", {"nonce": "n", "verifier": "v"}, 60)
    await store.put("state-2", {"nonce": "m"}, 60)
    assert await store.take("state-1") == {"nonce": "n", "verifier": "v"}
    assert await store.take("state-1") is None
    assert await store.take("state-2") == {"nonce": "m"}
    assert await store.take("never-put") is None


async def test_concurrent_takes_get_it_once(store: PendingLogins) -> None:
    await store.put("contested", {"nonce": "n"}, 60)
    results = await asyncio.gather(*(store.take("contested") for _ in range(10)))
    assert [r for r in results if r is not None] == [{"nonce": "n"}]


async def test_a_pending_login_expires(store: PendingLogins) -> None:
    await store.put("short", {"nonce": "n"}, 1)
    await asyncio.sleep(1.1)
    assert await store.take("short") is None
