"""A stalled Redis must not stall checks (issue 9, "Redis stalls").

`CLIENT PAUSE 5000` held a consuming check for 5.05 s: the Redis client had no socket timeout and
redis-py retried timeouts with a one-second backoff. Now the quota client gives up after
`redis_quota_timeout_seconds`, the failure policy answers (`quota_unavailable`, or `allowed_fail_open` for
`fail_open_features`), and a circuit breaker stops calling Redis for a cool-down after repeated failures.

On real Redis: the pause is short (WRITE mode, which holds the quota scripts but not other tenants'
reads) and always lifted in `finally`.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis.asyncio
from litestar import Litestar
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.config import Settings
from gateway.db.session import Database
from gateway.entitlements.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker, QuotaStoreUnavailable
from gateway.kernel.clock import FrozenClock
from tests.conftest import ADMIN_KEY, IN_CI, Api
from tests.entitlements.test_check_api import tenant

REDIS_URL = os.environ.get("TIERGATE_TEST_REDIS_URL", "")
TIMEOUT = 0.05
# Generous for a loaded 2-core machine, and still far below the pause: an answer inside it did not wait.
MARGIN = 1.0
PAUSE_MS = 2500


@pytest.fixture
def redis_url() -> str:
    if not REDIS_URL:
        if IN_CI:
            pytest.fail("CI is set but TIERGATE_TEST_REDIS_URL is not")
        pytest.skip("TIERGATE_TEST_REDIS_URL is not set (outside CI)")
    return REDIS_URL


@asynccontextmanager
async def paused(url: str) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """Redis holds write commands (EVALSHA included) for at most PAUSE_MS; yields `unpause`."""
    admin = redis.asyncio.Redis.from_url(url, socket_timeout=5)
    await admin.execute_command("CLIENT", "PAUSE", PAUSE_MS, "WRITE")

    async def unpause() -> None:
        await admin.execute_command("CLIENT", "UNPAUSE")

    try:
        yield unpause
    finally:
        await unpause()
        await admin.aclose()


@asynccontextmanager
async def app_on_redis(db: Database, clock: FrozenClock, url: str) -> AsyncIterator[tuple[Api, Litestar]]:
    settings = Settings(
        database_url="unused-db-is-injected",
        migrate_on_start=False,
        scheduler_enabled=False,
        bootstrap_api_key=ADMIN_KEY,
        redis_url=url,
        fail_open_features=("api_calls",),
        redis_quota_timeout_seconds=TIMEOUT,
        quota_breaker_failures=3,
        quota_breaker_cooldown_seconds=0.5,
    )
    app = create_app(settings, clock=clock, db=db)
    async with AsyncTestClient(app) as client:
        yield Api(client, ADMIN_KEY), app


async def timed_check(api: Api, customer: str, feature: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    request = {"customer": customer, "feature": feature, "consume": True}
    body = await api.post("/v1/check", request, expect=200)
    return time.perf_counter() - started, body


async def test_paused_redis_answers_within_the_timeout_then_the_breaker_opens_and_recovers(
    db: Database, clock: FrozenClock, redis_url: str, demo: Any
) -> None:
    async with app_on_redis(db, clock, redis_url) as (api, app):
        customer, _, _ = await tenant(api, app, owner="owner")
        breaker: CircuitBreaker = app.state.engine.quotas.breaker
        async with paused(redis_url) as unpause:
            # Fail closed: a gauge (projects) cannot be reserved, and the answer does not wait for Redis.
            elapsed, closed = await timed_check(api, customer, "projects")
            assert (closed["allowed"], closed["reason"]) == (False, "quota_unavailable")
            assert elapsed < TIMEOUT + MARGIN, elapsed
            # Fail open: api_calls is listed in fail_open_features.
            elapsed, opened = await timed_check(api, customer, "api_calls")
            assert (opened["allowed"], opened["reason"]) == (True, "allowed_fail_open")
            assert elapsed < TIMEOUT + MARGIN, elapsed
            assert breaker.state == CLOSED
            _, third = await timed_check(api, customer, "projects")
            assert third["reason"] == "quota_unavailable"
            # Three consecutive timeouts: the breaker is open and answers without calling Redis.
            assert breaker.state == OPEN
            store = app.state.engine.quotas.inner
            calls: list[str] = []
            reserve = store.reserve

            async def counted(*args: Any, **kwargs: Any) -> Any:
                calls.append("reserve")
                return await reserve(*args, **kwargs)

            store.reserve = counted
            elapsed, fast = await timed_check(api, customer, "projects")
            assert (fast["allowed"], fast["reason"]) == (False, "quota_unavailable")
            assert calls == [] and elapsed < TIMEOUT + MARGIN, (calls, elapsed)
            await unpause()
        # What the stall had to prove is proven. The recovery below tests the breaker's half-open step,
        # not the 50 ms timeout, which a loaded CI machine overran even on a healthy Redis (a probe that
        # timed out there reopened the breaker: once in about a dozen full runs). So the quota client's new
        # connections get a timeout no scheduling delay reaches; the paused calls' connections were
        # dropped on their timeouts, and the ping (beside the breaker) makes one with the new bound.
        pool = store._redis.connection_pool
        pool.connection_kwargs["socket_timeout"] = 5.0
        api.client.blocking_portal.call(pool.disconnect)  # on the app's own event loop
        api.client.blocking_portal.call(store._redis.ping)
        # After the cool-down one probe goes through; Redis answers, the breaker closes, quotas count again.
        await asyncio.sleep(0.55)
        assert breaker.state == HALF_OPEN
        _, recovered = await timed_check(api, customer, "projects")
        assert (recovered["allowed"], recovered["reason"], recovered["used"]) == (True, "allowed", 1)
        assert breaker.state == CLOSED and calls == ["reserve"]


async def test_every_app_redis_client_has_timeouts_and_no_slow_retries(
    db: Database, clock: FrozenClock, redis_url: str
) -> None:
    async with app_on_redis(db, clock, redis_url) as (_, app):
        quota_client = app.state.engine.quotas.inner._redis
        shared = app.state.notifier.redis
        for client, timeout in ((quota_client, TIMEOUT), (shared, Settings().redis_timeout_seconds)):
            kwargs = client.connection_pool.connection_kwargs
            assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (timeout, timeout)
        assert quota_client.get_retry().get_retries() == 0
        assert shared.get_retry().get_retries() == 1


# -- the breaker on its own (a store that fails on demand, and a hand-moved monotonic clock) -----------
class Outage:
    def __init__(self) -> None:
        self.down = True
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.down:
            raise ConnectionError("refused")
        return "ok"


async def test_breaker_opens_after_n_failures_fails_fast_probes_once_and_closes() -> None:
    now = [100.0]
    breaker = CircuitBreaker(failures=2, cooldown_seconds=5.0, monotonic=lambda: now[0])
    store = Outage()
    for _ in range(2):
        with pytest.raises(ConnectionError):
            await breaker.call(store)
    assert (breaker.state, store.calls) == (OPEN, 2)
    with pytest.raises(QuotaStoreUnavailable):
        await breaker.call(store)
    assert store.calls == 2, "an open breaker does not call the store"
    now[0] += 5.0
    assert breaker.state == HALF_OPEN
    with pytest.raises(ConnectionError):
        await breaker.call(store)  # the probe fails: open for a new cool-down
    assert (breaker.state, store.calls) == (OPEN, 3)
    now[0] += 5.0
    store.down = False
    assert await breaker.call(store) == "ok"
    assert breaker.state == CLOSED
    # A bug in the call (not an outage) passes through and leaves the breaker alone.

    async def bug() -> str:
        raise ValueError("amount must be positive")

    for _ in range(3):
        with pytest.raises(ValueError):
            await breaker.call(bug)
    assert breaker.state == CLOSED
