"""The anti-entropy check: a replica whose index was deliberately corrupted (a tenant given another plan, a
member's roles dropped) finds the difference with the database, reloads those tenants, counts them, and
says so in a log line and in /health."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar

from gateway.authz.domain import TenantStanding, parse_policy
from gateway.config import Settings
from gateway.db.session import Database
from gateway.demo import seed_demo
from gateway.entitlements.engine import Engine
from gateway.entitlements.index import IndexDelta
from gateway.entitlements.quotas import MemoryQuotaStore
from gateway.kernel.clock import FrozenClock
from tests.conftest import ADMIN_KEY, Api
from tests.entitlements.test_check_api import synced

POLICY = Path(__file__).resolve().parents[2] / "policies" / "demo_policy.csv"


async def load_policy(_session: object) -> Any:
    return parse_policy(POLICY.read_text(), version=1)


def corrupt(engine: Engine, victim: str, donor: str) -> None:
    """Give `victim` the donor's plan in the index and in the entitlements beside it."""
    state = engine._state
    assert state is not None
    donor_entitlements = state.tenants[donor]
    wrong = TenantStanding(victim, donor_entitlements.plan_node, donor_entitlements.status)
    state.index = state.index.apply(IndexDelta(version=state.index.version + 1, tenants={victim: wrong}))
    state.tenants[victim] = dataclasses.replace(donor_entitlements, tenant_id=victim)
    engine._publish(state)  # what answers is the published view


def drop_member(engine: Engine, tenant: str, user: str) -> None:
    state = engine._state
    assert state is not None
    delta = IndexDelta(version=state.index.version + 1, member_roles={(user, tenant): frozenset()})
    state.index = state.index.apply(delta)
    engine._publish(state)


async def test_a_corrupted_index_is_found_and_healed(
    db: Database, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with db.unit_of_work() as session:
        seeded = await seed_demo(session, clock)
    tiny, globex = seeded.customers["Tiny Studio"], seeded.customers["Globex Corp"]
    engine = Engine(db, clock, MemoryQuotaStore(), load_policy)
    await engine.rebuild()
    [owner] = [u for u, roles in engine._state.index.inputs_of(tiny)[1].items() if "owner" in roles]  # type: ignore[union-attr]
    [globex_user, *_] = sorted(engine._state.index.inputs_of(globex)[1])  # type: ignore[union-attr]
    assert engine.decide(owner, tiny, "reports/advanced", "read").reason == "feature_not_in_plan"
    assert await engine.check_consistency() == 0

    corrupt(engine, tiny, globex)
    drop_member(engine, globex, globex_user)
    wrong = engine.decide(owner, tiny, "reports/advanced", "read")
    assert (wrong.allowed, wrong.plan) == (True, engine.tenant(globex).plan_node)  # type: ignore[union-attr]
    assert engine.decide(globex_user, globex, "projects", "read").reason == "unknown_subject"

    with caplog.at_level(logging.INFO, logger="tiergate.entitlements"):
        assert await engine.check_consistency() == 2
    healed = engine.decide(owner, tiny, "reports/advanced", "read")
    assert (healed.allowed, healed.reason, healed.plan) == (False, "feature_not_in_plan", "basic.v1")
    assert engine.decide(globex_user, globex, "projects", "read").reason != "unknown_subject"
    assert engine.tenant(tiny).plan_key == "basic"  # type: ignore[union-attr]
    assert (engine.anti_entropy_runs, engine.anti_entropy_repairs) == (2, 2)
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert line.startswith(
        "anti-entropy: the index of this replica differed from the database for 2 tenant(s)"
    )
    assert await engine.check_consistency() == 0
    assert engine.anti_entropy_repairs == 2


@pytest.fixture
def settings() -> Settings:
    return Settings(
        database_url="unused-db-is-injected",
        migrate_on_start=False,
        scheduler_enabled=False,
        bootstrap_api_key=ADMIN_KEY,
        entitlements_anti_entropy_seconds=0.5,
        # No relay: its events (customer.provisioned) would reload the tenant the ordinary way.
        relay_enabled=False,
    )


async def test_each_replica_checks_periodically_and_reports_in_health(
    api: Api, app: Litestar, demo: Any
) -> None:
    tiny = (await api.post("/v1/customers", {"name": "Tiny", "currency": "USD"}))["id"]
    owner = await api.post(f"/v1/customers/{tiny}/members", {"email": "o@tiny.example", "role": "owner"})
    await api.post("/v1/subscriptions", {"customer": tiny, "price": "basic_monthly"})
    big = (await api.post("/v1/customers", {"name": "Big", "currency": "USD"}))["id"]
    await api.post("/v1/subscriptions", {"customer": big, "price": "enterprise_monthly"})
    await synced(api)
    check = {"customer": tiny, "user": owner["user"], "resource": "reports/advanced", "action": "read"}
    assert (await api.call("POST", "/v1/check", json=check))["reason"] == "feature_not_in_plan"

    corrupt(app.state.engine, tiny, big)
    for _ in range(100):  # the replica's own loop runs the check every 0.5 s
        health = (await api.client.get("/health")).json()
        if health["anti_entropy"]["repaired"]:
            break
        await asyncio.sleep(0.05)
    assert health["anti_entropy"]["repaired"] == 1
    assert health["anti_entropy"]["runs"] >= 1
    answer = await api.call("POST", "/v1/check", json=check)
    assert (answer["allowed"], answer["reason"], answer["plan"]) == (False, "feature_not_in_plan", "basic")
