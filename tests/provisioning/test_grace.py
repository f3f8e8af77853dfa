"""Past due: access stays through the grace period (`past_due_grace_days`), is revoked when it runs out
(the sweep job, on the customer's own time), and comes back when the subscription is active again.

Nothing in the billing core marks a subscription past due yet (dunning will), so the test writes the
events dunning will write: `subscription.*` with the subscription snapshot, the contract every
subscription event follows."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from litestar import Litestar

from gateway.config import Settings
from gateway.db.outbox import record_event
from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from gateway.kernel.events import DomainEvent
from tests.conftest import Api
from tests.provisioning.helpers import forward, manual_settings, settle, token_for


@pytest.fixture
def settings() -> Settings:
    return manual_settings(past_due_grace_days=7)


async def lifecycle_event(
    db: Database, clock: FrozenClock, sub: dict[str, Any], type_: str, status: str, version: int
) -> None:
    snapshot = {"id": sub["id"], "customer": sub["customer"], "status": status, "version": version}
    async with db.unit_of_work() as session:
        await record_event(
            session,
            DomainEvent(
                type_,
                "subscription",
                sub["id"],
                clock.now(),
                data={"subscription": snapshot},
                tenant_id=sub["customer"],
            ),
        )


async def can_get_in(api: Api, customer: str, owner: str, key: Api) -> tuple[int, int]:
    token = await token_for(api, customer, owner)
    status = (await forward(api, token)).status_code
    response = await key.client.get(f"/v1/customers/{customer}", headers=key._headers(None))
    return status, response.status_code


async def test_grace_then_revoked_then_restored(
    api: Api, app: Litestar, db: Database, clock: FrozenClock, demo: Any
) -> None:
    customer = (
        await api.post("/v1/customers", {"name": "Late", "email": "pay@late.example", "currency": "USD"})
    )["id"]
    sub = await api.post("/v1/subscriptions", {"customer": customer, "price": "basic_monthly"})
    key = api.as_key(
        (await api.post("/v1/api_keys", {"name": "k", "scopes": ["customers:read"], "customer": customer}))[
            "secret"
        ]
    )
    await settle(api, app)
    owner = (await api.get(f"/v1/customers/{customer}/members"))["data"][0]["user"]
    assert await can_get_in(api, customer, owner, key) == (200, 200)

    await lifecycle_event(db, clock, sub, "subscription.past_due", "past_due", sub["version"] + 1)
    await settle(api, app)
    assert await can_get_in(api, customer, owner, key) == (200, 200)

    clock.advance(timedelta(days=7) - timedelta(seconds=1))
    await settle(api, app)
    assert await can_get_in(api, customer, owner, key) == (200, 200), "still inside the grace period"
    last_token = await token_for(api, customer, owner)

    clock.advance(timedelta(seconds=1))
    await settle(api, app)  # the sweep revokes
    assert (await forward(api, last_token)).status_code == 401
    await key.get(f"/v1/customers/{customer}", expect=401)
    refused = await api.post("/v1/tokens", {"customer": customer, "user": owner}, expect=403)
    assert refused["code"] == "access_revoked"
    [revoked] = (await api.get("/v1/events", params={"aggregate": customer, "type": "access.revoked"}))[
        "data"
    ]
    assert revoked["data"]["reason"] == "past_due_grace_expired"
    assert revoked["occurred_at"] == "2026-01-08T00:00:00Z"

    clock.advance(timedelta(minutes=1))
    await lifecycle_event(db, clock, sub, "subscription.reactivated", "active", sub["version"] + 2)
    await settle(api, app)
    clock.advance(timedelta(seconds=1))
    assert await can_get_in(api, customer, owner, key) == (200, 200)
    # A late, older snapshot (past_due, version +1) is ignored: no second revocation.
    await lifecycle_event(db, clock, sub, "subscription.past_due", "past_due", sub["version"] + 1)
    await settle(api, app)
    assert len((await api.get("/v1/events", params={"aggregate": customer, "type": "access."}))["data"]) == 2
