"""Health that tells the truth (issue 9): `/health` said ok while the index was stale and while Redis was
down. `/health/live` is the process; `/health/ready` (and its alias `/health`) checks the database, Redis,
the index's staleness and the relay's last pass, and answers 503 naming what failed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.config import Settings
from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from tests.conftest import ADMIN_KEY, Api

# Nothing listens on port 1 of loopback: connections are refused at once.
CLOSED_PORT_REDIS = "redis://127.0.0.1:1/0"


@asynccontextmanager
async def client_for(
    db: Database, clock: FrozenClock, **overrides: Any
) -> AsyncIterator[AsyncTestClient[Any]]:
    settings = Settings(
        database_url="unused-db-is-injected",
        migrate_on_start=False,
        scheduler_enabled=False,
        bootstrap_api_key=ADMIN_KEY,
        **overrides,
    )
    async with AsyncTestClient(create_app(settings, clock=clock, db=db)) as client:
        yield client


async def test_ready_and_live_when_everything_answers(api: Api) -> None:
    live = await api.client.get("/health/live")
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    ready = await api.client.get("/health/ready")
    body = ready.json()
    assert (ready.status_code, body["status"], body["failed"], body["stale"]) == (200, "ready", [], False)
    statuses = {name: component["status"] for name, component in body["components"].items()}
    assert statuses == {"database": "ok", "redis": "skipped", "index": "ok", "relay": "ok"}
    assert body["components"]["index"]["max_staleness_seconds"] == 30.0
    # /health is the readiness answer under its old name.
    alias = await api.client.get("/health")
    assert (alias.status_code, alias.json()["status"], alias.json()["failed"]) == (200, "ready", [])


async def test_ready_fails_when_the_index_is_stale_and_live_stays_up(
    db: Database, clock: FrozenClock
) -> None:
    # No poll for a minute and a 0.3 s bound: the index loaded at start-up goes stale on its own.
    async with client_for(
        db, clock, entitlements_poll_seconds=60.0, entitlements_max_staleness_seconds=0.3
    ) as client:
        assert (await client.get("/health/ready")).status_code == 200
        await asyncio.sleep(0.5)
        ready = await client.get("/health/ready")
        body = ready.json()
        assert (ready.status_code, body["status"], body["failed"], body["stale"]) == (
            503,
            "not_ready",
            ["index"],
            True,
        )
        assert body["components"]["index"]["status"] == "failed"
        assert body["components"]["index"]["detail"].startswith("no successful catch-up for ")
        alias = await client.get("/health")
        assert (alias.status_code, alias.json()["failed"]) == (503, ["index"])
        assert (await client.get("/health/live")).status_code == 200


async def test_ready_fails_when_redis_is_down_and_live_stays_up(db: Database, clock: FrozenClock) -> None:
    async with client_for(db, clock, redis_url=CLOSED_PORT_REDIS) as client:
        ready = await client.get("/health/ready")
        body = ready.json()
        assert (ready.status_code, body["status"], body["failed"]) == (503, "not_ready", ["redis"])
        redis = body["components"]["redis"]
        assert redis["status"] == "failed" and redis["detail"].startswith("ConnectionError")
        assert redis["breaker"] == "closed"
        assert body["components"]["database"]["status"] == "ok"
        live = await client.get("/health/live")
        assert (live.status_code, live.json()) == (200, {"status": "ok"})


async def test_ready_fails_when_the_relay_has_not_passed_recently(db: Database, clock: FrozenClock) -> None:
    async with client_for(db, clock, relay_interval_seconds=60.0, health_relay_max_age_seconds=0.3) as client:
        await asyncio.sleep(0.5)
        ready = await client.get("/health/ready")
        body = ready.json()
        assert (ready.status_code, body["failed"]) == (503, ["relay"])
        assert body["components"]["relay"]["detail"].startswith("no successful relay pass for ")
    async with client_for(db, clock, relay_enabled=False) as client:
        ready = await client.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["components"]["relay"]["status"] == "skipped"


async def test_both_probes_are_in_the_openapi_document(api: Api) -> None:
    paths = (await api.client.get("/docs/openapi.json")).json()["paths"]
    assert set(paths["/health/live"]) == {"get"}
    assert {"200", "503"} <= set(paths["/health/ready"]["get"]["responses"])
