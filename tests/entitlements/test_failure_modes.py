"""What checks answer when the database or Redis is unreachable: the current index within the staleness
bound, then fail closed (or open for features the admin marked so). Real unreachable endpoints, no mocks."""

from __future__ import annotations

import asyncio
from pathlib import Path

import redis.asyncio as aioredis

from gateway.all_models import Base
from gateway.authz.domain import parse_policy
from gateway.db.session import Database
from gateway.demo import seed_demo
from gateway.entitlements.engine import Engine, EngineSettings
from gateway.entitlements.quotas import MemoryQuotaStore, RedisQuotaStore
from gateway.entitlements.service import CheckService, Pending
from gateway.kernel.clock import SystemClock

POLICY = Path(__file__).resolve().parents[2] / "policies" / "demo_policy.csv"
# Nothing listens on port 1 of loopback: connections are refused at once.
DEAD_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:1/none"


async def load_policy(_session: object) -> object:
    return parse_policy(POLICY.read_text(), version=1)


async def seeded(tmp_path: Path) -> tuple[Database, str]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'f.sqlite3'}")
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with db.unit_of_work() as session:
        result = await seed_demo(session, SystemClock())
    return db, result.customers["Tiny Studio"]


async def test_database_down_answers_from_the_index_then_fails_closed_except_fail_open(
    tmp_path: Path,
) -> None:
    db, tenant = await seeded(tmp_path)
    settings = EngineSettings(
        poll_interval_seconds=0.05,
        max_staleness_seconds=0.3,
        fail_open_features=frozenset({"reporting_basic"}),
    )
    engine = Engine(db, SystemClock(), MemoryQuotaStore(), load_policy, settings)  # type: ignore[arg-type]
    await engine.rebuild()
    checks = CheckService(engine)
    assert (await checks.check(customer=tenant, feature="support_email")).allowed

    engine.db = Database(DEAD_POSTGRES, pooled=False)
    runner = asyncio.create_task(engine.run())
    try:
        await asyncio.sleep(0.1)
        within = await checks.check(customer=tenant, feature="support_email")
        assert within.allowed and not within.stale, "inside the bound the last index still answers"
        await asyncio.sleep(0.4)
        after = await checks.check(customer=tenant, feature="support_email")
        assert (after.allowed, after.reason, after.stale) == (False, "index_stale", True)
        fail_open = await checks.check(customer=tenant, feature="reporting_basic")
        assert fail_open.allowed and fail_open.stale
        # The database comes back: the next pass catches up and checks answer normally again.
        engine.db = db
        await asyncio.sleep(0.3)
        assert (await checks.check(customer=tenant, feature="support_email")).allowed
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await db.dispose()


async def test_redis_down_quota_checks_fail_closed_or_open_without_errors(tmp_path: Path) -> None:
    db, tenant = await seeded(tmp_path)
    dead = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    settings = EngineSettings(fail_open_features=frozenset({"api_calls"}))
    engine = Engine(db, SystemClock(), RedisQuotaStore(dead), load_policy, settings)  # type: ignore[arg-type]
    await engine.rebuild()
    checks = CheckService(engine)
    closed = await checks.check(customer=tenant, feature="projects", consume=True)
    assert (closed.allowed, closed.reason) == (False, "quota_unavailable")
    opened = await checks.check(customer=tenant, feature="api_calls", consume=True)
    assert (opened.allowed, opened.reason) == (True, "allowed_fail_open")
    # Permission checks do not need Redis at all.
    assert (await checks.check(customer=tenant, feature="support_email")).allowed
    await dead.aclose()
    await db.dispose()


async def test_a_quota_check_is_answered_as_of_the_staleness_reading_its_caller_made(tmp_path: Path) -> None:
    """A batch reads its view's staleness once and answers every item with that reading, also the items
    that wait for the quota store (`finish`), so a view crossing the bound mid-batch cannot mark only
    its later items stale."""
    db, tenant = await seeded(tmp_path)
    settings = EngineSettings(max_staleness_seconds=0.2)
    engine = Engine(db, SystemClock(), MemoryQuotaStore(), load_policy, settings)  # type: ignore[arg-type]
    await engine.rebuild()
    checks = CheckService(engine)
    try:
        view = engine.view()
        fresh = view.stale  # the batch's one reading, taken before the view crossed the bound
        assert fresh is False
        pending = checks.check_now(view, tenant, None, None, None, "projects", 1, False, fresh)
        assert isinstance(pending, Pending)  # a gauge: the quota store is still to be asked
        await asyncio.sleep(0.3)  # no sync runs: the view is now past its staleness bound
        assert view.stale
        as_read = await checks.finish(view, pending, tenant, None, "projects", 1, False, fresh)
        assert (as_read.allowed, as_read.reason, as_read.stale) == (True, "allowed", False)
        now = await checks.check(customer=tenant, feature="projects")
        assert (now.allowed, now.reason, now.stale) == (False, "index_stale", True)
    finally:
        await db.dispose()
