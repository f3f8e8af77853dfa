"""One tenant, one truth (issue 17): every surface answers a customer from the same source.

- A plan version's grants decide what it unlocks: a new version that drops a feature closes the feature's
  gates for its subscribers while the grandfathered version keeps them, on every surface.
- An ended subscription keeps the customer known, with its standing; only a never-subscribed id is
  `unknown_tenant`.
- A batch answers all its items from one snapshot of the index, even when changes land mid-batch.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from litestar import Litestar
from sqlalchemy import update

from gateway.authz.domain import RolePermission
from gateway.authz.service import PolicyService
from gateway.config import Settings
from gateway.db.outbox import record_event
from gateway.db.session import Database
from gateway.entitlements.quotas import QuotaResult, QuotaStore
from gateway.kernel.clock import FrozenClock
from gateway.kernel.events import DomainEvent
from gateway.subscriptions.models import Subscription
from tests.conftest import REDIS_URL, Api
from tests.entitlements.test_check_api import check, synced, tenant

PRO_V2_GRANTS = [  # Pro's grants without reporting_advanced
    {"feature": "projects", "limit": "unlimited"},
    {"feature": "seats", "limit": 10},
    {"feature": "storage_mb", "limit": 10_240},
    {"feature": "api_calls", "limit": 100_000},
    {"feature": "reporting_basic"},
    {"feature": "support_email"},
    {"feature": "support_priority"},
]


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


async def _surfaces(api: Api, customer: str, owner: str) -> dict[str, Any]:
    """What every surface says about advanced reporting for this customer's owner."""
    by_feature = await check(api, customer, feature="reporting_advanced")
    by_resource = await check(api, customer, user=owner, resource="reports/advanced", action="read")
    batch = await api.post(
        "/v1/check/batch",
        {
            "checks": [
                {"customer": customer, "feature": "reporting_advanced"},
                {"customer": customer, "user": owner, "resource": "reports/advanced/q3", "action": "read"},
            ]
        },
        expect=200,
    )
    snapshot = await api.get(f"/v1/entitlements/{customer}")
    flag = await api.post(
        "/ofrep/v1/evaluate/flags/reporting_advanced", {"context": {"targetingKey": customer}}, expect=200
    )
    issued = await api.post("/v1/tokens", {"customer": customer, "user": owner})
    forwarded = await api.client.get(
        "/v1/authz/forward",
        headers={
            "Authorization": f"Bearer {issued['access_token']}",
            "X-Original-Method": "GET",
            "X-Original-URI": "/api/reports/advanced",
        },
    )
    request = {"user": owner, "customer": customer, "resource": "reports/advanced", "action": "read"}
    what_if = await api.post(
        "/v1/policies/what_if", {"add": [], "remove": [], "requests": [request]}, expect=200
    )
    (judged,) = what_if["results"]
    claims = _claims(issued["access_token"])
    return {
        "check_feature": (by_feature["allowed"], by_feature["reason"]),
        "check_resource": (by_resource["allowed"], by_resource["reason"]),
        "batch": [(r["allowed"], r["reason"]) for r in batch["results"]],
        "snapshot": (
            snapshot["plan_version"],
            "reporting_advanced" in {f["feature"] for f in snapshot["features"]},
        ),
        "ofrep": (flag["value"], flag["reason"]),
        "token": (issued["plan_version"], "reporting_advanced" in issued["features"]),
        "claims": (claims["pv"], "reporting_advanced" in claims["features"]),
        "forward": forwarded.status_code,
        "what_if": (
            judged["current"]["allowed"],
            judged["current"]["reason"],
            judged["current"]["index_agrees"],
        ),
    }


async def test_a_plan_version_that_drops_a_feature_closes_its_gate_on_every_surface(
    api: Api, app: Litestar, demo: Any
) -> None:
    old, _, old_users = await tenant(api, app, price="pro_monthly", owner="owner")
    version = await api.post("/v1/plans/pro/versions", {"grants": PRO_V2_GRANTS, "note": "no advanced"})
    assert version["version"] == 2
    new, _, new_users = await tenant(api, app, price="pro_monthly", owner="owner")

    grandfathered = await _surfaces(api, old, old_users["owner"])
    assert grandfathered == {
        "check_feature": (True, "allowed"),
        "check_resource": (True, "allowed"),
        "batch": [(True, "allowed"), (True, "allowed")],
        "snapshot": (1, True),
        "ofrep": (True, "TARGETING_MATCH"),
        "token": (1, True),
        "claims": (1, True),
        "forward": 200,
        "what_if": (True, "allowed", True),
    }
    on_v2 = await _surfaces(api, new, new_users["owner"])
    assert on_v2 == {
        "check_feature": (False, "feature_not_in_plan"),
        "check_resource": (False, "feature_not_in_plan"),
        "batch": [(False, "feature_not_in_plan"), (False, "feature_not_in_plan")],
        "snapshot": (2, False),
        "ofrep": (False, "DISABLED"),
        "token": (2, False),
        "claims": (2, False),
        "forward": 403,
        "what_if": (False, "feature_not_in_plan", True),
    }
    # The rest of Pro is untouched on version 2: roles and the other gates.
    basic_reports = await check(api, new, user=new_users["owner"], resource="reports/basic", action="read")
    assert (basic_reports["allowed"], basic_reports["reason"]) == (True, "allowed")


async def test_a_canceled_customer_keeps_its_standing_and_only_a_wrong_id_is_unknown(
    api: Api, app: Litestar, demo: Any
) -> None:
    customer, sub, users = await tenant(api, app, owner="owner")
    await api.post(f"/v1/subscriptions/{sub}/cancel", {"at_period_end": True})
    await api.post(f"/v1/test_clocks/{users['clock']}/advance", {"frozen_time": "2026-04-02T00:00:00Z"})
    await synced(api)
    assert (await api.get(f"/v1/subscriptions/{sub}"))["status"] == "canceled"

    by_resource = await check(api, customer, user=users["owner"], resource="projects", action="read")
    assert (
        by_resource["allowed"],
        by_resource["reason"],
        by_resource["plan"],
        by_resource["inactive_since"],
    ) == (
        False,
        "subscription_inactive",
        "basic",
        "2026-04-01T00:00:00Z",
    )
    by_feature = await check(api, customer, feature="projects")
    assert (by_feature["allowed"], by_feature["reason"], by_feature["inactive_since"]) == (
        False,
        "subscription_inactive",
        "2026-04-01T00:00:00Z",
    )
    snapshot = await api.get(f"/v1/entitlements/{customer}")
    assert (snapshot["status"], snapshot["access"], snapshot["inactive_since"], snapshot["plan"]) == (
        "canceled",
        False,
        "2026-04-01T00:00:00Z",
        "basic",
    )
    assert {f["enabled"] for f in snapshot["features"]} == {False}
    flag = await api.post(
        "/ofrep/v1/evaluate/flags/reporting_basic", {"context": {"targetingKey": customer}}, expect=200
    )
    assert (flag["value"], flag["reason"]) == (False, "DISABLED")

    # An id that never subscribed is the only unknown tenant.
    never = await check(api, "cus_never_existed", user=users["owner"], resource="projects", action="read")
    assert (never["allowed"], never["reason"], never["inactive_since"]) == (False, "unknown_tenant", None)
    missing = await api.get("/v1/entitlements/cus_never_existed", expect=404)
    assert missing["code"] == "customer_not_found"

    # Coming back with a new subscription: the live one wins over the ended one.
    await api.post("/v1/subscriptions", {"customer": customer, "price": "pro_monthly", "trial_days": 0})
    await synced(api)
    back = await check(api, customer, user=users["owner"], resource="reports/advanced", action="read")
    assert (back["allowed"], back["reason"], back["plan"], back["inactive_since"]) == (
        True,
        "allowed",
        "pro",
        None,
    )


async def test_an_incomplete_subscription_is_inactive_not_unknown(
    api: Api, app: Litestar, demo: Any, db: Database, clock: FrozenClock
) -> None:
    # No path sets `incomplete` yet (a first payment that never succeeded, once dunning lands): the row is
    # set as dunning will set it, with its outbox event, and every answer goes through the HTTP API.
    customer, sub, users = await tenant(api, app, owner="owner")
    async with db.unit_of_work() as session:
        await session.execute(update(Subscription).where(Subscription.id == sub).values(status="incomplete"))
        await record_event(
            session, DomainEvent("subscription.updated", "subscription", sub, clock.now(), tenant_id=customer)
        )
    await synced(api)
    by_resource = await check(api, customer, user=users["owner"], resource="projects", action="read")
    assert (by_resource["allowed"], by_resource["reason"]) == (False, "subscription_inactive")
    snapshot = await api.get(f"/v1/entitlements/{customer}")
    assert (snapshot["status"], snapshot["access"]) == ("incomplete", False)


# --- one snapshot per batch ------------------------------------------------------------------------------

QUOTA_STORES = ["memory", *(["redis"] if REDIS_URL else [])]


@pytest.fixture
def settings(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Settings]:
    """The app on the in-process quota store, or on Redis for tests parametrised with "redis".

    Redis gets a patient timeout: these tests are about which snapshot answers, and the 50 ms default
    (an outage answers `quota_unavailable`, tests/security/test_redis_stalls.py) was once overrun in CI by
    the first call's connection and script load on a loaded machine."""
    on_redis = getattr(request, "param", "memory") == "redis"
    yield replace(
        settings,
        redis_url=REDIS_URL if on_redis else "",
        redis_quota_timeout_seconds=5.0 if on_redis else settings.redis_quota_timeout_seconds,
    )


class PublishesMidBatch:
    """A quota store that, on its first call, publishes a policy change and lets the engine apply it
    before answering: the rest of the batch runs while a newer index is live."""

    def __init__(self, inner: QuotaStore, publish: Any) -> None:
        self.inner = inner
        self.publish = publish
        self.calls = 0

    async def reserve(self, *args: Any, **kw: Any) -> QuotaResult:
        self.calls += 1
        if self.calls == 1:
            await self.publish()
        return await self.inner.reserve(*args, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize("settings", QUOTA_STORES, indirect=True)
async def test_a_batch_answers_every_item_from_one_snapshot_while_changes_land(
    api: Api, app: Litestar, demo: Any, db: Database, clock: FrozenClock
) -> None:
    customer, _, users = await tenant(api, app, owner="owner")
    engine = app.state.engine
    before = engine.version

    async def publish() -> None:
        # The owner loses every permission; the engine applies it at once (the sync the nudge would run).
        async with db.unit_of_work() as session:
            await PolicyService(session, clock).edit(
                [], [RolePermission("owner", "*", "*")], note="mid-batch", author=None
            )
        await engine.sync()
        await asyncio.sleep(0)

    store = PublishesMidBatch(engine.quotas, publish)
    engine.quotas = store
    item = {
        "customer": customer,
        "user": users["owner"],
        "resource": "projects",
        "action": "create",
        "feature": "projects",
        "consume": True,
    }
    batch = await api.post("/v1/check/batch", {"checks": [item] * 4}, expect=200)
    assert engine.version > before, "the change was published during the batch"
    assert batch["index_version"] == before
    assert [(r["allowed"], r["reason"], r["used"], r["index_version"]) for r in batch["results"]] == [
        (True, "allowed", 1, before),
        (True, "allowed", 2, before),
        (True, "allowed", 3, before),
        (True, "allowed", 4, before),
    ]
    # The next request sees the change.
    after = await check(api, customer, user=users["owner"], resource="projects", action="create")
    assert (after["allowed"], after["reason"], after["index_version"]) == (
        False,
        "no_permission",
        engine.version,
    )
