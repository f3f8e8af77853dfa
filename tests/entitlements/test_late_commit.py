"""Issue 16's experiment, on PostgreSQL: a plan change (Basic → Pro) and a role change, held open in one
transaction while 2,500 and then 20,000 other events commit, then committed. The replica's decision
(`/v1/check`) and every relay consumer (provisioning, metrics, audit, webhooks) see it within the bound.
Before the shared change stream, anything overtaken by more than 2,000 commits was lost for good."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from litestar import Litestar
from sqlalchemy import select

from gateway.billing.wiring import billing_services
from gateway.catalog import CatalogService
from gateway.catalog.repository import CatalogRepository
from gateway.config import Settings
from gateway.customers import CustomerService
from gateway.customers.repository import CustomerRepository
from gateway.db.session import Database
from gateway.db.stream import top_seq
from gateway.kernel.clock import FrozenClock
from gateway.metrics.models import MrrChange
from gateway.provisioning.models import TenantAccount
from gateway.subscriptions import SubscriptionService
from gateway.subscriptions.repository import SubscriptionRepository
from tests.conftest import ADMIN_KEY, IN_CI, POSTGRES_URL, Api
from tests.db.test_stream import commit_filler

pytestmark = pytest.mark.skipif(not POSTGRES_URL and not IN_CI, reason="needs PostgreSQL (always in CI)")

# No nudge reaches the replica from a transaction committed outside it: the 1 s poll bounds it (≤ 5 s).
BOUND_SECONDS = 5.0


@pytest.fixture
def settings() -> Settings:
    # The webhook consumer's endpoint is on loopback over http: allowed explicitly (production refuses it).
    return Settings(
        database_url="unused-db-is-injected",
        migrate_on_start=False,
        scheduler_enabled=False,
        bootstrap_api_key=ADMIN_KEY,
        webhook_allow_http=True,
        webhook_allow_private_targets=True,
    )


@pytest.fixture
def db(postgres_db: Database) -> Database:
    return postgres_db  # the app and the held transaction share PostgreSQL only


async def eventually(probe: Callable[[], Awaitable[Any]], within: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < within:
        if await probe():
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {within} s")


async def index_reached(api: Api, db: Database) -> None:
    async with db.unit_of_work() as session:
        top = await top_seq(session)

    async def caught_up() -> bool:
        return bool((await api.client.get("/health")).json()["index_version"] >= top)

    await eventually(caught_up, 60)


async def test_a_held_plan_change_overtaken_by_20000_commits_reaches_the_index_and_every_consumer(
    api: Api, app: Litestar, db: Database, clock: FrozenClock, demo: Any
) -> None:
    tiny = (await api.post("/v1/customers", {"name": "Tiny Studio", "currency": "USD"}))["id"]
    owner = await api.post(f"/v1/customers/{tiny}/members", {"email": "owner@tiny.example", "role": "owner"})
    viewer = await api.post(f"/v1/customers/{tiny}/members", {"email": "v@tiny.example", "role": "viewer"})
    sub = (await api.post("/v1/subscriptions", {"customer": tiny, "price": "basic_monthly"}))["id"]
    endpoint = await api.post(
        "/v1/webhook_endpoints",
        {"url": "http://127.0.0.1:9/unreachable", "enabled_events": ["subscription.plan_changed"]},
    )
    check = {"customer": tiny, "user": owner["user"], "resource": "reports/advanced", "action": "read"}

    async def decision() -> dict[str, Any]:
        return dict(await api.call("POST", "/v1/check", json=check))

    await index_reached(api, db)
    before = await decision()
    assert (before["allowed"], before["reason"], before["plan"]) == (False, "feature_not_in_plan", "basic")

    async with db.sessionmaker() as held, held.begin():
        catalog = CatalogService(CatalogRepository(held), clock)
        customers = CustomerService(CustomerRepository(held), clock)
        billing = billing_services(
            held, clock, app.state.billing_config, catalog=catalog, customers=customers
        )
        subscriptions = SubscriptionService(
            SubscriptionRepository(held), catalog, customers, clock, [billing.billing]
        )
        changed = await subscriptions.change_plan(sub, price="pro_monthly")
        await customers.change_role(tiny, viewer["id"], "editor")
        await held.flush()  # the events have their seqs now; the transaction stays open

        for overtaking in (2_500, 20_000):
            await commit_filler(db, overtaking)
            await index_reached(api, db)
            still = await decision()
            assert (still["reason"], still["plan"]) == ("feature_not_in_plan", "basic")
    committed_at = time.monotonic()

    async def sees_pro() -> bool:
        answer = await decision()
        return bool((answer["allowed"], answer["reason"], answer["plan"]) == (True, "allowed", "pro"))

    decided_after = await eventually(sees_pro, BOUND_SECONDS)
    entitlements = await api.get(f"/v1/entitlements/{tiny}")
    assert entitlements["plan"] == "pro"

    async def provisioned() -> bool:
        async with db.unit_of_work() as session:
            account = await session.get(TenantAccount, tiny)
            return account is not None and account.subscription_version == changed.version

    async def mrr_moved() -> bool:
        async with db.unit_of_work() as session:
            types = (
                await session.scalars(select(MrrChange.event_type).where(MrrChange.subscription_id == sub))
            ).all()
            return "subscription.plan_changed" in types

    async def audited() -> bool:
        entries = (
            await api.get("/v1/audit_log", params={"customer": tiny, "action": "member.role_changed"})
        )["data"]
        return len(entries) == 1

    async def webhook_queued() -> bool:
        rows = (await api.get(f"/v1/webhook_endpoints/{endpoint['id']}/deliveries"))["data"]
        return [row["event_type"] for row in rows] == ["subscription.plan_changed"]

    # However long the relay's backlog, the late events sort first by seq in each consumer's next batch.
    for consumer_saw_it in (provisioned, mrr_moved, audited, webhook_queued):
        await eventually(consumer_saw_it, BOUND_SECONDS)
    relayed_after = time.monotonic() - committed_at
    print(
        f"late commit: /v1/check after {decided_after:.2f} s, all four consumers after {relayed_after:.2f} s"
    )
