"""The `QuotaStore` contract, run against every implementation: what embedded mode promises, Redis keeps.

Redis is reached at `TIERGATE_TEST_REDIS_URL`; outside CI a local redis://127.0.0.1:6379/0 is tried and a
missing server skips the redis half, in CI it fails. Each test writes under its own uuid key prefix and
deletes exactly those keys afterwards, so the suite can share a database with anything else.

Billing periods lie in the future on purpose: the Redis store sets EXPIREAT to period end + retention, and
Redis drops at once a key whose expiry has passed, which is right for a closed period and wrong for a test.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypedDict, TypeVar, cast
from uuid import uuid4

import pytest
import redis
import redis.asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.crc import key_slot

from gateway.entitlements.quotas import (
    METERED_RETENTION,
    QUOTA_EXCEEDED,
    MemoryQuotaStore,
    QuotaResult,
    QuotaStore,
    RedisQuotaStore,
)
from gateway.kernel.clock import NaiveDatetime

IN_CI = bool(os.environ.get("CI"))
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

JAN = datetime(2100, 1, 1, tzinfo=UTC)
FEB = datetime(2100, 2, 1, tzinfo=UTC)
MAR = datetime(2100, 3, 1, tzinfo=UTC)
CET = timezone(timedelta(hours=1))

T = TypeVar("T")


def _redis_url() -> str:
    url = os.environ.get("TIERGATE_TEST_REDIS_URL", "")
    if url:
        return url
    if IN_CI:
        pytest.fail("CI is set but TIERGATE_TEST_REDIS_URL is not: the Redis store must be tested in CI")
    return DEFAULT_REDIS_URL


async def _keys(client: redis.asyncio.Redis, prefix: str) -> list[Any]:
    # SCAN, not KEYS: the test database may be shared, and KEYS blocks the server while it walks it all.
    return [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]


@dataclass(frozen=True)
class Backend:
    name: str
    redis_url: str | None = None

    @asynccontextmanager
    async def open(self) -> AsyncIterator[QuotaStore]:
        """A fresh, empty store; for Redis, a private key prefix that is deleted on the way out."""
        if self.redis_url is None:
            yield MemoryQuotaStore()
            return
        client = redis.asyncio.Redis.from_url(self.redis_url)
        prefix = f"tgtest-{uuid4().hex}"
        try:
            yield RedisQuotaStore(client, prefix=prefix)
        finally:
            keys = await _keys(client, prefix)
            if keys:
                await client.delete(*keys)
            await client.aclose()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "memory":
        return Backend("memory")
    url = _redis_url()
    probe = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        probe.ping()
    except redis.RedisError as exc:
        if IN_CI:
            pytest.fail(f"Redis at {url} is unreachable in CI: {exc}")
        pytest.skip(f"no Redis at {url} (outside CI): {exc}")
    finally:
        probe.close()
    return Backend("redis", url)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[QuotaStore]:
    async with backend.open() as opened:
        yield opened


class Period(TypedDict):
    period_start: datetime
    period_end: datetime


def _period(start: datetime = JAN, end: datetime = FEB) -> Period:
    return {"period_start": start, "period_end": end}


def _awaited(reply: Any) -> Awaitable[Any]:
    # redis-py types each command for its sync and async clients at once; these clients are async.
    return cast("Awaitable[Any]", reply)


# -- gauges -----------------------------------------------------------------------------------------


async def test_hard_limit_admits_up_to_the_limit_then_denies(store: QuotaStore) -> None:
    results = [await store.reserve("acme", "projects", 1, 5) for _ in range(5)]
    assert [r.allowed for r in results] == [True] * 5
    assert [r.used for r in results] == [1, 2, 3, 4, 5]
    assert [r.remaining for r in results] == [4, 3, 2, 1, 0]

    denied = await store.reserve("acme", "projects", 1, 5)
    assert denied == QuotaResult(
        allowed=False, used=5, limit=5, remaining=0, overage=0, resets_at=None, reason=QUOTA_EXCEEDED
    )
    assert await store.gauge("acme", "projects") == 5


async def test_a_zero_hard_limit_admits_nothing(store: QuotaStore) -> None:
    result = await store.reserve("acme", "projects", 1, 0)
    assert (result.allowed, result.used, result.remaining, result.reason) == (False, 0, 0, QUOTA_EXCEEDED)


async def test_release_frees_room(store: QuotaStore) -> None:
    for _ in range(5):
        await store.reserve("acme", "seats", 1, 5)
    released = await store.release("acme", "seats", 2)
    assert (released.allowed, released.used, released.reason) == (True, 3, "ok")

    again = await store.reserve("acme", "seats", 2, 5)
    assert (again.allowed, again.used, again.remaining) == (True, 5, 0)
    assert not (await store.reserve("acme", "seats", 1, 5)).allowed


async def test_release_never_goes_below_zero(store: QuotaStore) -> None:
    await store.reserve("acme", "seats", 2, 10)
    assert (await store.release("acme", "seats", 5)).used == 0
    assert (await store.release("acme", "never-reserved", 3)).used == 0
    assert await store.gauge("acme", "seats") == 0
    assert await store.gauge("acme", "never-reserved") == 0
    # A clamped release must not leave credit behind: the limit still holds from zero.
    assert (await store.reserve("acme", "seats", 10, 10)).allowed
    assert not (await store.reserve("acme", "seats", 1, 10)).allowed


async def test_multi_unit_reserve_that_would_cross_the_limit_is_denied_whole(store: QuotaStore) -> None:
    await store.reserve("acme", "storage_gb", 3, 5)
    denied = await store.reserve("acme", "storage_gb", 3, 5)
    assert (denied.allowed, denied.used, denied.remaining, denied.reason) == (False, 3, 2, QUOTA_EXCEEDED)
    assert await store.gauge("acme", "storage_gb") == 3
    assert (await store.reserve("acme", "storage_gb", 2, 5)).allowed


async def test_soft_limit_admits_and_reports_overage(store: QuotaStore) -> None:
    await store.reserve("acme", "seats", 4, 5, soft=True)
    over = await store.reserve("acme", "seats", 3, 5, soft=True)
    assert (over.allowed, over.used, over.remaining, over.overage, over.reason) == (True, 7, 0, 2, "ok")

    back = await store.release("acme", "seats", 1)
    assert back.used == 6
    assert (await store.reserve("acme", "seats", 1, 5, soft=True)).overage == 2
    # The same counter under a hard limit: it is already over, so nothing more gets in, and no overage
    # is reported because hard limits never admit any.
    hard = await store.reserve("acme", "seats", 1, 5)
    assert (hard.allowed, hard.used, hard.overage, hard.reason) == (False, 7, 0, QUOTA_EXCEEDED)


async def test_unlimited_gauge_always_admits_and_still_counts(store: QuotaStore) -> None:
    for amount in (1, 1_000, 1_000_000):
        result = await store.reserve("acme", "projects", amount, None)
        assert result.allowed and result.limit is None and result.remaining is None and result.overage == 0
    assert await store.gauge("acme", "projects") == 1_001_001


async def test_set_gauge_reconciles_from_the_source_of_truth(store: QuotaStore) -> None:
    await store.reserve("acme", "projects", 4, 10)
    await store.set_gauge("acme", "projects", 9)
    assert await store.gauge("acme", "projects") == 9
    assert not (await store.reserve("acme", "projects", 2, 10)).allowed
    await store.set_gauge("acme", "projects", 0)
    assert (await store.reserve("acme", "projects", 10, 10)).used == 10


async def test_100_concurrent_reserves_at_limit_5_admit_exactly_5(store: QuotaStore) -> None:
    results = await asyncio.gather(*(store.reserve("acme", "projects", 1, 5) for _ in range(100)))
    assert sum(r.allowed for r in results) == 5
    assert sorted(r.used for r in results if r.allowed) == [1, 2, 3, 4, 5]
    assert all(r.reason == QUOTA_EXCEEDED and r.used == 5 for r in results if not r.allowed)
    assert await store.gauge("acme", "projects") == 5


async def test_tenants_are_isolated(store: QuotaStore) -> None:
    for _ in range(3):
        await store.reserve("acme", "projects", 1, 3)
        await store.consume("acme", "api_calls", 1, 3, **_period())
    assert not (await store.reserve("acme", "projects", 1, 3)).allowed
    assert not (await store.consume("acme", "api_calls", 1, 3, **_period())).allowed

    other = await store.reserve("globex", "projects", 1, 3)
    assert (other.allowed, other.used) == (True, 1)
    assert (await store.consume("globex", "api_calls", 1, 3, **_period())).used == 1
    await store.release("globex", "projects", 1)
    assert await store.gauge("acme", "projects") == 3
    assert await store.usage("acme", "api_calls", JAN) == 3


# -- metered allowances ----------------------------------------------------------------------------


async def test_metered_consume_counts_per_period_and_reports_resets_at(store: QuotaStore) -> None:
    for expected_used in (2, 4):
        result = await store.consume("acme", "api_calls", 2, 5, **_period())
        assert (result.allowed, result.used, result.resets_at) == (True, expected_used, FEB)
    denied = await store.consume("acme", "api_calls", 2, 5, **_period())
    assert (denied.allowed, denied.used, denied.remaining, denied.reason) == (False, 4, 1, QUOTA_EXCEEDED)
    assert denied.resets_at == FEB

    # The next period is a different counter: it starts at zero with no reset job.
    fresh = await store.consume("acme", "api_calls", 5, 5, **_period(FEB, MAR))
    assert (fresh.allowed, fresh.used, fresh.remaining, fresh.resets_at) == (True, 5, 0, MAR)
    assert await store.usage("acme", "api_calls", JAN) == 4
    assert await store.usage("acme", "api_calls", FEB) == 5
    assert await store.usage("acme", "api_calls", MAR) == 0


async def test_period_start_names_an_instant_not_a_wall_time(store: QuotaStore) -> None:
    same_instant_in_cet = JAN.astimezone(CET)
    await store.consume("acme", "api_calls", 1, None, **_period())
    await store.consume("acme", "api_calls", 1, None, period_start=same_instant_in_cet, period_end=FEB)
    assert await store.usage("acme", "api_calls", same_instant_in_cet) == 2


async def test_multi_unit_consume_that_would_cross_the_limit_is_denied_whole(store: QuotaStore) -> None:
    await store.consume("acme", "api_calls", 4, 5, **_period())
    denied = await store.consume("acme", "api_calls", 2, 5, **_period())
    assert (denied.allowed, denied.used, denied.reason) == (False, 4, QUOTA_EXCEEDED)
    assert await store.usage("acme", "api_calls", JAN) == 4
    assert (await store.consume("acme", "api_calls", 1, 5, **_period())).used == 5


async def test_soft_metered_limit_admits_and_accumulates_overage_for_billing(store: QuotaStore) -> None:
    assert (await store.consume("acme", "api_calls", 3, 5, soft=True, **_period())).overage == 0
    crossing = await store.consume("acme", "api_calls", 3, 5, soft=True, **_period())
    assert (crossing.allowed, crossing.used, crossing.remaining, crossing.overage) == (True, 6, 0, 1)
    beyond = await store.consume("acme", "api_calls", 2, 5, soft=True, **_period())
    assert (beyond.used, beyond.overage, beyond.reason) == (8, 3, "ok")
    assert await store.usage("acme", "api_calls", JAN) == 8
    assert await store.overage("acme", "api_calls", JAN) == 3
    # Overage belongs to its period.
    assert await store.overage("acme", "api_calls", FEB) == 0


async def test_unlimited_metered_always_admits_and_still_counts(store: QuotaStore) -> None:
    for _ in range(3):
        result = await store.consume("acme", "api_calls", 1_000, None, **_period())
        assert result.allowed and result.remaining is None and result.overage == 0
    assert await store.usage("acme", "api_calls", JAN) == 3_000
    assert await store.overage("acme", "api_calls", JAN) == 0


async def test_100_concurrent_consumes_at_limit_5_admit_exactly_5(store: QuotaStore) -> None:
    results = await asyncio.gather(
        *(store.consume("acme", "api_calls", 1, 5, **_period()) for _ in range(100))
    )
    assert sum(r.allowed for r in results) == 5
    assert all(r.resets_at == FEB for r in results)
    assert await store.usage("acme", "api_calls", JAN) == 5


# -- arguments ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [0, -1, True, 1.5, "1"])
async def test_amount_must_be_a_positive_int(store: QuotaStore, amount: Any) -> None:
    with pytest.raises(ValueError):
        await store.reserve("acme", "projects", amount, 5)
    with pytest.raises(ValueError):
        await store.release("acme", "projects", amount)
    with pytest.raises(ValueError):
        await store.consume("acme", "api_calls", amount, 5, **_period())
    assert await store.gauge("acme", "projects") == 0
    assert await store.usage("acme", "api_calls", JAN) == 0


async def test_limits_names_and_periods_are_checked(store: QuotaStore) -> None:
    with pytest.raises(ValueError):
        await store.reserve("acme", "projects", 1, -1)
    with pytest.raises(ValueError):
        await store.consume("acme", "api_calls", 1, -1, **_period())
    with pytest.raises(ValueError):
        await store.reserve("ac}me", "projects", 1, 5)
    with pytest.raises(ValueError):
        await store.reserve("acme", "", 1, 5)
    with pytest.raises(ValueError):
        await store.set_gauge("acme", "projects", -1)
    with pytest.raises(ValueError):
        await store.consume("acme", "api_calls", 1, 5, **_period(FEB, JAN))
    with pytest.raises(NaiveDatetime):
        await store.consume("acme", "api_calls", 1, 5, **_period(JAN.replace(tzinfo=None), FEB))


# -- properties --------------------------------------------------------------------------------------

OPS = st.lists(st.tuples(st.sampled_from(["reserve", "release"]), st.integers(1, 8)), max_size=40)


def test_random_reserves_and_releases_never_exceed_a_hard_limit(backend: Backend) -> None:
    """Against a model: `0 <= used <= limit` after every step, and `used` is exactly what was admitted
    minus what was released (each release clamped at zero)."""
    # Sync on purpose: hypothesis drives the examples, and each one runs on this test's own event loop,
    # where the store (and its Redis connections) live for the whole test.
    with asyncio.Runner() as runner:

        def run(coro: Coroutine[Any, Any, T]) -> T:
            return runner.run(coro)

        context = backend.open()
        store = run(context.__aenter__())
        try:
            _check_gauge_model(store, run, max_examples=200 if backend.redis_url is None else 30)
        finally:
            run(context.__aexit__(None, None, None))


def _check_gauge_model(
    store: QuotaStore, run: Callable[[Coroutine[Any, Any, Any]], Any], *, max_examples: int
) -> None:
    @settings(max_examples=max_examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(limit=st.integers(0, 12), ops=OPS)
    def check(limit: int, ops: list[tuple[str, int]]) -> None:
        tenant = f"t-{uuid4().hex}"  # the store outlives the example; a fresh tenant starts from zero
        model = 0
        for op, amount in ops:
            if op == "reserve":
                result = run(store.reserve(tenant, "seats", amount, limit))
                assert result.allowed == (model + amount <= limit)
                if result.allowed:
                    model += amount
            else:
                result = run(store.release(tenant, "seats", amount))
                model = max(model - amount, 0)
            assert result.used == model
            assert 0 <= result.used <= limit
        assert run(store.gauge(tenant, "seats")) == model

    check()


# -- the Redis layout --------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", [pytest.param("redis", marks=pytest.mark.redis)], indirect=True)
async def test_redis_keys_share_the_tenant_slot_and_expire_after_the_period(backend: Backend) -> None:
    assert backend.redis_url is not None
    client = redis.asyncio.Redis.from_url(backend.redis_url, decode_responses=True)
    prefix = f"tgtest-{uuid4().hex}"
    store = RedisQuotaStore(client, prefix=prefix)
    try:
        await store.reserve("acme", "projects", 1, 5)
        await store.consume("acme", "api_calls", 7, 5, soft=True, **_period())
        gauge_key = f"{prefix}:{{acme}}:g:projects"
        period_key = f"{prefix}:{{acme}}:m:api_calls:{int(JAN.timestamp())}"
        assert sorted(await _keys(client, prefix)) == sorted([gauge_key, period_key])
        assert key_slot(gauge_key.encode()) == key_slot(period_key.encode()) == key_slot(b"acme")
        assert await _awaited(client.hgetall(period_key)) == {"used": "7", "over": "2"}
        assert await _awaited(client.ttl(gauge_key)) == -1
        assert await _awaited(client.expiretime(period_key)) == int((FEB + METERED_RETENTION).timestamp())
        # decode_responses=True returns str where the fixture's client returns bytes; both must parse.
        assert await store.gauge("acme", "projects") == 1
        assert await store.overage("acme", "api_calls", JAN) == 2
    finally:
        keys = await _keys(client, prefix)
        if keys:
            await client.delete(*keys)
        await client.aclose()
