"""Two replicas on one PostgreSQL + Redis: a change made through one is enforced by the other, fast
with the Redis nudge, and within the poll interval when no nudge arrives."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from gateway.config import Settings
from gateway.db.migrate import upgrade_head
from gateway.db.session import Database
from gateway.demo import seed_demo
from gateway.kernel.clock import SystemClock
from tests.conftest import IN_CI, POSTGRES_URL, REDIS_URL, sibling_database
from tests.live import LiveServer, start

KEY = "tg_sk_replicas_0123456789abcdef"

pytestmark = pytest.mark.skipif(
    not (POSTGRES_URL and REDIS_URL) and not IN_CI, reason="needs PostgreSQL and Redis (always run in CI)"
)


def prepare_database() -> str:
    name, url = sibling_database("replicas")

    async def go() -> None:
        admin = Database(POSTGRES_URL, pooled=False)
        async with admin.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        await admin.dispose()
        db = Database(url, pooled=False)
        await upgrade_head(db)
        async with db.unit_of_work() as session:
            await seed_demo(session, SystemClock(), api_key=KEY)
        await db.dispose()

    asyncio.run(go())
    return url


@pytest.fixture(scope="module")
def replicas() -> Iterator[tuple[LiveServer, LiveServer, LiveServer]]:
    url = prepare_database()
    base = {"database_url": url, "migrate_on_start": False, "scheduler_enabled": False}
    # a: where changes are made. b: nudged over Redis, polls rarely. c: no Redis at all, polls every 0.5 s.
    a = start(Settings(**base, redis_url=REDIS_URL, entitlements_poll_seconds=30))
    b = start(Settings(**base, redis_url=REDIS_URL, entitlements_poll_seconds=30))
    c = start(Settings(**base, redis_url="", entitlements_poll_seconds=0.5))
    yield a, b, c
    for server in (a, b, c):
        server.stop()


def call(server: LiveServer, method: str, path: str, body: Any = None) -> Any:
    response = httpx.request(method, server.url + path, json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code < 300, response.text
    return response.json()


def wait_allowed(server: LiveServer, check: dict[str, Any], timeout: float) -> float:
    start_at = time.monotonic()
    while time.monotonic() - start_at < timeout:
        if call(server, "POST", "/v1/check", check)["allowed"]:
            return time.monotonic() - start_at
        time.sleep(0.01)
    raise AssertionError(f"not visible on {server.url} within {timeout}s")


def test_a_change_through_one_replica_is_enforced_by_the_others(
    replicas: tuple[LiveServer, LiveServer, LiveServer],
) -> None:
    a, b, c = replicas
    customer = call(a, "POST", "/v1/customers", {"name": "Replicated", "currency": "USD"})["id"]
    sub = call(a, "POST", "/v1/subscriptions", {"customer": customer, "price": "basic_monthly"})["id"]
    check = {"customer": customer, "feature": "reporting_advanced"}
    wait_allowed(b, {"customer": customer, "feature": "reporting_basic"}, 5)
    assert not call(b, "POST", "/v1/check", check)["allowed"]

    call(a, "POST", f"/v1/subscriptions/{sub}/plan_change", {"price": "pro_monthly"})
    nudged = wait_allowed(b, check, 5)
    polled = wait_allowed(c, check, 5)
    # b only polls every 30 s: seeing it this fast means the Redis nudge carried it.
    assert nudged < 1.0
    # c has no Redis: the 0.5 s poll alone bounds its staleness.
    assert polled < 1.5
    version_b = call(b, "POST", "/v1/check", check)["index_version"]
    assert version_b >= call(a, "POST", "/v1/check", check)["index_version"] - 0
