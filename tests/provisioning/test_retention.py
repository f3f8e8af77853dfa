"""Retention: a canceled tenant's data is kept for `deprovisioned_retention_days` on its own time, then
its personal data is purged (members erased or removed, invites deleted, credentials retired for good)
while its business records stay. A new subscription afterwards starts the account over."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from litestar import Litestar

from gateway.config import Settings
from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from gateway.provisioning.service import purge_expired
from tests.conftest import Api
from tests.provisioning.helpers import forward, manual_settings, settle, token_for


@pytest.fixture
def settings() -> Settings:
    return manual_settings(deprovisioned_retention_days=30)


async def members(api: Api, customer: str) -> dict[str, str]:
    page = await api.get(f"/v1/customers/{customer}/members", params={"include_removed": True})
    return {m["email"]: m["status"] for m in page["data"]}


async def advance(api: Api, app: Litestar, clock_id: str, to: str) -> None:
    await api.post(f"/v1/test_clocks/{clock_id}/advance", {"frozen_time": to}, expect=201)
    await settle(api, app)


async def test_canceled_tenant_is_purged_when_its_retention_runs_out_on_its_own_clock(
    api: Api, app: Litestar, clock: FrozenClock, demo: Any
) -> None:
    test_clock = (await api.post("/v1/test_clocks", {"frozen_time": "2026-03-01T00:00:00Z"}))["id"]
    customer = (
        await api.post(
            "/v1/customers",
            {"name": "Gone", "email": "owner@gone.example", "currency": "USD", "test_clock": test_clock},
        )
    )["id"]
    other = (await api.post("/v1/customers", {"name": "Stays", "currency": "USD"}))["id"]
    # Pro: the owner and the consultant take two seats (Basic has one).
    sub = await api.post("/v1/subscriptions", {"customer": customer, "price": "pro_monthly", "trial_days": 0})
    await settle(api, app)
    # A consultant in both tenants, and an invite nobody accepted.
    shared = await api.post(f"/v1/customers/{customer}/members", {"email": "c@both.example"})
    await api.post(f"/v1/customers/{other}/members", {"email": "c@both.example"})
    await api.post(f"/v1/customers/{customer}/invites", {"email": "later@gone.example"})
    scim = await api.post(f"/v1/customers/{customer}/scim_tokens", {"name": "okta"})
    key = api.as_key(
        (await api.post("/v1/api_keys", {"name": "k", "scopes": ["customers:read"], "customer": customer}))[
            "secret"
        ]
    )
    owner = next(
        m["user"]
        for m in (await api.get(f"/v1/customers/{customer}/members"))["data"]
        if m["email"] == "owner@gone.example"
    )

    await api.post(f"/v1/subscriptions/{sub['id']}/cancel", {"at_period_end": False}, expect=201)
    await settle(api, app)
    [revoked] = (await api.get("/v1/events", params={"aggregate": customer, "type": "access.revoked"}))[
        "data"
    ]
    assert revoked["data"]["retain_until"] == "2026-03-31T00:00:00Z"
    access = await api.get(f"/v1/customers/{customer}/access")
    assert (access["state"], access["revoked_reason"], access["retain_until"], access["purged_at"]) == (
        "revoked",
        "subscription_canceled",
        "2026-03-31T00:00:00Z",
        None,
    )

    # One second before the end of retention on the customer's clock: everything is still there.
    await advance(api, app, test_clock, "2026-03-30T23:59:59Z")
    assert await members(api, customer) == {"owner@gone.example": "active", "c@both.example": "active"}
    assert len((await api.get(f"/v1/customers/{customer}/invites"))["data"]) == 1

    await advance(api, app, test_clock, "2026-03-31T00:00:00Z")
    [purged] = (await api.get("/v1/events", params={"aggregate": customer, "type": "customer.data_purged"}))[
        "data"
    ]
    assert {k: purged["data"][k] for k in ("users_erased", "members_removed", "invites_deleted")} == {
        "users_erased": 1,
        "members_removed": 1,
        "invites_deleted": 1,
    }
    assert purged["data"]["api_keys_retired"] == 1 and purged["data"]["scim_tokens_retired"] == 1
    access = await api.get(f"/v1/customers/{customer}/access")
    assert (access["state"], access["purged_at"]) == ("purged", "2026-03-31T00:00:00Z")
    # The owner, a member of this tenant only, is erased; the consultant only left this tenant.
    after = await members(api, customer)
    assert set(after.values()) == {"removed"} and "owner@gone.example" not in after
    assert (await members(api, other)) == {"c@both.example": "active"}
    assert shared["user"] in {m["user"] for m in (await api.get(f"/v1/customers/{other}/members"))["data"]}
    assert (await api.get(f"/v1/customers/{customer}/invites"))["data"] == []
    # Business records stay: the customer, its invoices, and the audit log of what happened.
    assert (await api.get(f"/v1/customers/{customer}"))["name"] == "Gone"
    assert (await api.get("/v1/invoices", params={"customer": customer}))["data"]
    log = await api.get("/v1/audit_log", params={"customer": customer, "limit": 100})
    assert "customer.data_purged" in [e["action"] for e in log["data"]]
    # A second pass finds nothing more to do.
    await settle(api, app)
    assert (
        len(
            (await api.get("/v1/events", params={"aggregate": customer, "type": "customer.data_purged"}))[
                "data"
            ]
        )
        == 1
    )

    # Subscribing again starts over: a fresh owner, access back, but nothing purged comes back. (Wall
    # time moves on: tokens issued in the second of the revocation stay refused.)
    clock.advance(timedelta(seconds=5))
    await api.post("/v1/subscriptions", {"customer": customer, "price": "basic_monthly"})
    await settle(api, app)
    now_members = await members(api, customer)
    assert now_members["owner@gone.example"] == "active"
    fresh_owner = next(
        m["user"]
        for m in (await api.get(f"/v1/customers/{customer}/members"))["data"]
        if m["email"] == "owner@gone.example"
    )
    assert fresh_owner != owner
    assert (await api.get(f"/v1/customers/{customer}/access"))["state"] == "active"
    assert (await forward(api, await token_for(api, customer, fresh_owner))).status_code == 200
    await key.get(f"/v1/customers/{customer}", expect=401)  # the old API key stays retired
    tokens = (await api.get(f"/v1/customers/{customer}/scim_tokens"))["data"]
    assert [t["disabled_at"] is not None for t in tokens if t["id"] == scim["id"]] == [True]


async def test_a_tenant_restored_within_retention_is_never_purged(api: Api, app: Litestar, demo: Any) -> None:
    test_clock = (await api.post("/v1/test_clocks", {"frozen_time": "2026-03-01T00:00:00Z"}))["id"]
    customer = (
        await api.post(
            "/v1/customers",
            {"name": "Back", "email": "owner@back.example", "currency": "USD", "test_clock": test_clock},
        )
    )["id"]
    sub = await api.post("/v1/subscriptions", {"customer": customer, "price": "basic_monthly"})
    await settle(api, app)
    await api.post(f"/v1/subscriptions/{sub['id']}/cancel", {"at_period_end": False}, expect=201)
    await settle(api, app)
    await advance(api, app, test_clock, "2026-03-10T00:00:00Z")
    await api.post("/v1/subscriptions", {"customer": customer, "price": "basic_monthly"})
    await settle(api, app)
    await advance(api, app, test_clock, "2026-06-01T00:00:00Z")
    events = (await api.get("/v1/events", params={"aggregate": customer, "type": "customer.data_purged"}))[
        "data"
    ]
    assert events == []
    assert await members(api, customer) == {"owner@back.example": "active"}


async def test_access_is_tenant_scoped_and_known_before_provisioning(api: Api, demo: Any) -> None:
    mine = (await api.post("/v1/customers", {"name": "Mine", "currency": "USD"}))["id"]
    theirs = (await api.post("/v1/customers", {"name": "Theirs", "currency": "USD"}))["id"]
    assert (await api.get(f"/v1/customers/{mine}/access"))["state"] == "not_provisioned"
    key = api.as_key(
        (await api.post("/v1/api_keys", {"name": "k", "scopes": ["customers:read"], "customer": mine}))[
            "secret"
        ]
    )
    assert (await key.get(f"/v1/customers/{mine}/access"))["customer"] == mine
    problem = await key.get(f"/v1/customers/{theirs}/access", expect=404)
    assert problem["status"] == 404
    await api.get("/v1/customers/cus_nope/access", expect=404)


class FailsFor:
    """An access hook whose purge fails for one tenant (a broken downstream, say)."""

    name = "scim_tokens_disabled"

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id

    async def revoke(self, session: Any, tenant_id: str) -> int:
        return 0

    async def restore(self, session: Any, tenant_id: str) -> int:
        return 0

    async def purge(self, session: Any, tenant_id: str) -> int:
        if tenant_id == self.tenant_id:
            raise RuntimeError("downstream is down")
        return 0


async def test_one_tenant_failing_its_purge_holds_back_no_other(
    api: Api, app: Litestar, db: Database, clock: FrozenClock, demo: Any
) -> None:
    test_clock = (await api.post("/v1/test_clocks", {"frozen_time": "2026-03-01T00:00:00Z"}))["id"]
    tenants = []
    for name in ("Broken", "Fine"):
        customer = await api.post(
            "/v1/customers",
            {"name": name, "email": f"o@{name.lower()}.example", "currency": "USD", "test_clock": test_clock},
        )
        sub = await api.post("/v1/subscriptions", {"customer": customer["id"], "price": "basic_monthly"})
        await settle(api, app)
        await api.post(f"/v1/subscriptions/{sub['id']}/cancel", {"at_period_end": False}, expect=201)
        tenants.append(customer["id"])
    await settle(api, app)
    await api.post(
        f"/v1/test_clocks/{test_clock}/advance", {"frozen_time": "2026-04-01T00:00:00Z"}, expect=201
    )

    broken, fine = tenants
    assert await purge_expired(db, clock, hooks=[FailsFor(broken)]) == 1
    states = {c: (await api.get(f"/v1/customers/{c}/access"))["state"] for c in tenants}
    assert states == {broken: "revoked", fine: "purged"}
    # The next tick retries the one that failed, and only that one.
    assert await purge_expired(db, clock) == 1
    assert (await api.get(f"/v1/customers/{broken}/access"))["state"] == "purged"
    assert await purge_expired(db, clock) == 0
