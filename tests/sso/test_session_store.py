"""The `SessionStore` contract, run against both implementations: what embedded mode promises, Redis keeps.

Redis is reached at `TIERGATE_TEST_REDIS_URL`; outside CI a local redis://127.0.0.1:6379/0 is tried and a
missing server skips the Redis half, in CI it fails. Each test uses its own key prefix and deletes exactly
those keys afterwards.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
import redis.asyncio

from gateway.identity.sessions import MemorySessionStore, RedisSessionStore, SessionStore
from gateway.kernel.clock import FrozenClock

IN_CI = bool(os.environ.get("CI"))
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def _redis_url() -> str:
    url = os.environ.get("TIERGATE_TEST_REDIS_URL", "")
    if url:
        return url
    if IN_CI:
        pytest.fail(
            "CI is set but TIERGATE_TEST_REDIS_URL is not: the Redis session store must be tested in CI"
        )
    return "redis://127.0.0.1:6379/0"


class Harness:
    def __init__(self, store: SessionStore, clock: FrozenClock) -> None:
        self.store = store
        self.clock = clock


@pytest.fixture(params=["memory", "redis"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    clock = FrozenClock(START)
    if request.param == "memory":
        yield Harness(MemorySessionStore(clock), clock)
        return
    client = redis.asyncio.Redis.from_url(_redis_url())
    try:
        await client.ping()
    except (OSError, redis.exceptions.ConnectionError):
        await client.aclose()
        if IN_CI:
            pytest.fail("CI is set but Redis is not reachable at TIERGATE_TEST_REDIS_URL")
        pytest.skip("no Redis at redis://127.0.0.1:6379/0")
    prefix = f"tgtest-sessions-{uuid4().hex}"
    try:
        yield Harness(RedisSessionStore(client, clock, prefix=prefix), clock)
    finally:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_create_then_get_returns_what_was_stored(harness: Harness) -> None:
    store = harness.store
    sid = await store.create(
        user_id="usr_1", tenant_id="cus_1", data={"email": "a@x.test", "n": [1, 2]}, ttl_seconds=60
    )
    assert len(sid) >= 43
    session = await store.get(sid)
    assert session is not None
    assert (session.id, session.user_id, session.tenant_id) == (sid, "usr_1", "cus_1")
    assert session.data == {"email": "a@x.test", "n": [1, 2]}
    assert session.created_at == START and session.expires_at == START + timedelta(seconds=60)


async def test_ids_are_unique_and_unguessable_ids_find_nothing(harness: Harness) -> None:
    store = harness.store
    ids = {await store.create(user_id="u", tenant_id="t", data={}, ttl_seconds=60) for _ in range(20)}
    assert len(ids) == 20
    assert await store.get("not-a-session") is None
    assert await store.get("") is None


async def test_a_session_expires_on_the_clock(harness: Harness) -> None:
    store = harness.store
    sid = await store.create(user_id="u", tenant_id="t", data={}, ttl_seconds=60)
    harness.clock.advance(timedelta(seconds=59))
    assert await store.get(sid) is not None
    harness.clock.advance(timedelta(seconds=1))
    assert await store.get(sid) is None
    assert await store.end_for_user("u") == 0


async def test_delete_ends_one_session(harness: Harness) -> None:
    store = harness.store
    keep = await store.create(user_id="u", tenant_id="t", data={}, ttl_seconds=60)
    gone = await store.create(user_id="u", tenant_id="t", data={}, ttl_seconds=60)
    await store.delete(gone)
    await store.delete(gone)  # deleting twice is harmless
    assert await store.get(gone) is None and await store.get(keep) is not None
    assert await store.end_for_user("u") == 1


async def test_end_for_user_ends_all_of_that_users_sessions_in_every_tenant(harness: Harness) -> None:
    store = harness.store
    a1 = await store.create(user_id="alice", tenant_id="t1", data={}, ttl_seconds=60)
    a2 = await store.create(user_id="alice", tenant_id="t2", data={}, ttl_seconds=60)
    b = await store.create(user_id="bob", tenant_id="t1", data={}, ttl_seconds=60)
    assert await store.end_for_user("alice") == 2
    assert await store.get(a1) is None and await store.get(a2) is None
    assert await store.get(b) is not None
    assert await store.end_for_user("alice") == 0


async def test_end_for_tenant_ends_every_session_in_that_tenant_only(harness: Harness) -> None:
    store = harness.store
    in_t1 = [await store.create(user_id=f"u{i}", tenant_id="t1", data={}, ttl_seconds=60) for i in range(3)]
    other = await store.create(user_id="u0", tenant_id="t2", data={}, ttl_seconds=60)
    assert await store.end_for_tenant("t1") == 3
    assert all([await store.get(s) is None for s in in_t1])
    assert await store.get(other) is not None
    assert await store.end_for_tenant("t1") == 0
    # The user's other session survives a tenant-wide end and is still counted for the user.
    assert await store.end_for_user("u0") == 1


async def test_stored_data_is_a_copy(harness: Harness) -> None:
    data = {"roles": ["viewer"]}
    sid = await harness.store.create(user_id="u", tenant_id="t", data=data, ttl_seconds=60)
    data["roles"].append("owner")
    first = await harness.store.get(sid)
    assert first is not None and first.data == {"roles": ["viewer"]}
    first.data["roles"].append("admin")
    again = await harness.store.get(sid)
    assert again is not None and again.data == {"roles": ["viewer"]}


async def test_a_lifetime_must_be_positive(harness: Harness) -> None:
    with pytest.raises(ValueError):
        await harness.store.create(user_id="u", tenant_id="t", data={}, ttl_seconds=0)
