"""A tenant walked through create → upgrade → downgrade → cancel on a frozen clock, checking at each step
who can still get in: the tenant's API key (200 or 401), end-user tokens at /v1/authz/forward (200, 403
for what the tier does not allow, 401 once access is revoked), and the roles members hold."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from litestar import Litestar

from gateway.config import Settings
from gateway.kernel.clock import FrozenClock
from tests.conftest import Api
from tests.provisioning.helpers import forward, manual_settings, settle, token_for


@pytest.fixture
def settings() -> Settings:
    return manual_settings()


async def members_by_email(api: Api, customer: str) -> dict[str, dict[str, Any]]:
    page = await api.get(f"/v1/customers/{customer}/members", params={"include_removed": True})
    return {m["email"]: m for m in page["data"]}


async def events_of(api: Api, customer: str, type_: str) -> list[dict[str, Any]]:
    page = await api.get("/v1/events", params={"aggregate": customer, "type": type_, "limit": 100})
    return list(page["data"])


async def test_create_upgrade_downgrade_cancel(
    api: Api, app: Litestar, clock: FrozenClock, demo: Any
) -> None:
    test_clock = await api.post("/v1/test_clocks", {"frozen_time": "2026-03-01T00:00:00Z"})
    customer = (
        await api.post(
            "/v1/customers",
            {
                "name": "Acme",
                "email": "Owner@Acme.example",
                "currency": "USD",
                "test_clock": test_clock["id"],
            },
        )
    )["id"]
    sub = (await api.post("/v1/subscriptions", {"customer": customer, "price": "basic_monthly"}))["id"]
    key = await api.post(
        "/v1/api_keys", {"name": "tenant app", "scopes": ["customers:read"], "customer": customer}
    )
    tenant_key = api.as_key(key["secret"])

    # -- created: the account is provisioned (owner from the customer's e-mail) --------------------
    await settle(api, app)
    members = await members_by_email(api, customer)
    assert list(members) == ["owner@acme.example"]
    owner = members["owner@acme.example"]
    assert (owner["role"], owner["status"]) == ("owner", "active")
    [provisioned] = await events_of(api, customer, "customer.provisioned")
    assert provisioned["data"]["plan"] == "basic"
    assert provisioned["data"]["owner"] == owner["user"]
    assert provisioned["data"]["roles"] == ["owner", "viewer"]
    assert provisioned["data"]["default_role"] == "viewer"
    assert provisioned["data"]["quotas"]["projects"] == 5
    # A second pass finds nothing to do: provisioning happened once.
    assert await settle(api, app) == 0
    assert len(await events_of(api, customer, "customer.provisioned")) == 1

    await tenant_key.get(f"/v1/customers/{customer}", expect=200)
    owner_token = await token_for(api, customer, owner["user"])
    assert (await forward(api, owner_token)).status_code == 200
    basic_reports = await forward(api, owner_token, uri="/api/reports/advanced/q1")
    assert (basic_reports.status_code, basic_reports.headers["x-auth-reason"]) == (403, "feature_not_in_plan")

    # -- upgrade to pro: advanced reports open, admins may be appointed ----------------------------
    clock.advance(timedelta(seconds=10))
    await api.post(f"/v1/subscriptions/{sub}/plan_change", {"price": "pro_monthly"})
    admin = await api.post(
        f"/v1/customers/{customer}/members", {"email": "ada@acme.example", "role": "admin"}
    )
    await settle(api, app)
    assert (await forward(api, owner_token, uri="/api/reports/advanced/q1")).status_code == 200
    admin_token = await token_for(api, customer, admin["user"])
    assert (await forward(api, admin_token, "POST", "/api/members")).status_code == 200
    assert (await members_by_email(api, customer))["ada@acme.example"]["role"] == "admin"

    # -- downgrade to basic, now: the admin is clamped to the tier's default role -------------------
    clock.advance(timedelta(seconds=10))
    await api.post(f"/v1/subscriptions/{sub}/plan_change", {"price": "basic_monthly", "timing": "now"})
    await settle(api, app)
    roles = {email: m["role"] for email, m in (await members_by_email(api, customer)).items()}
    assert roles == {"owner@acme.example": "owner", "ada@acme.example": "viewer"}
    [role_change] = await events_of(api, admin["id"], "member.updated")
    assert role_change["data"] == {"role": "viewer", "previous_role": "admin"}
    denied = await forward(api, await token_for(api, customer, admin["user"]), "POST", "/api/members")
    assert (denied.status_code, denied.headers["x-auth-reason"]) == (403, "no_permission")
    assert (await forward(api, owner_token, uri="/api/reports/advanced/q1")).status_code == 403
    # Still a paying tenant: the key and the owner's token work.
    await tenant_key.get(f"/v1/customers/{customer}", expect=200)
    assert (await forward(api, owner_token)).status_code == 200

    # -- cancel now: access revoked everywhere, data kept ---------------------------------------------
    clock.advance(timedelta(seconds=10))
    canceled_at = await api.post(f"/v1/subscriptions/{sub}/cancel", {"at_period_end": False}, expect=201)
    await settle(api, app)
    refused = await forward(api, owner_token)
    assert refused.status_code == 401
    assert refused.headers["x-auth-reason"] == "token_revoked"
    assert refused.headers["www-authenticate"].startswith("Bearer")
    problem = await tenant_key.get(f"/v1/customers/{customer}", expect=401)
    assert problem["code"] == "unauthenticated"
    no_token = await api.post("/v1/tokens", {"customer": customer, "user": owner["user"]}, expect=403)
    assert no_token["code"] == "access_revoked"  # the owner is kept; the tenant's access is revoked
    [revoked] = await events_of(api, customer, "access.revoked")
    assert revoked["data"]["reason"] == "subscription_canceled"
    assert revoked["data"]["api_keys_disabled"] == 1
    assert revoked["data"]["retain_until"] == "2026-05-30T00:00:00Z"  # 90 days after the test clock's now
    assert canceled_at["status"] == "canceled"
    # Disabled, not deleted: the key is listed with revoked_at set; the customer and members are kept.
    keys = (await api.get("/v1/api_keys", params={"limit": 100}))["data"]
    assert [k["revoked_at"] is not None for k in keys if k["id"] == key["id"]] == [True]
    assert set(await members_by_email(api, customer)) == {"owner@acme.example", "ada@acme.example"}
    assert (await api.get(f"/v1/customers/{customer}"))["name"] == "Acme"

    # The audit log tells the story.
    log = await api.get("/v1/audit_log", params={"customer": customer, "limit": 100})
    assert [e["action"] for e in log["data"]] == [
        "api_key.created",
        "member.added",
        "customer.provisioned",
        "member.added",
        "member.role_changed",
        "access.revoked",
    ]


async def test_pause_revokes_and_resume_restores(
    api: Api, app: Litestar, clock: FrozenClock, demo: Any
) -> None:
    customer = (
        await api.post("/v1/customers", {"name": "Pausy", "email": "boss@pausy.example", "currency": "USD"})
    )["id"]
    sub = (await api.post("/v1/subscriptions", {"customer": customer, "price": "basic_monthly"}))["id"]
    key = await api.post("/v1/api_keys", {"name": "k", "scopes": ["customers:read"], "customer": customer})
    # A key the tenant revoked by hand before must stay revoked after a restore.
    manual = await api.post(
        "/v1/api_keys", {"name": "old", "scopes": ["customers:read"], "customer": customer}
    )
    await api.post(f"/v1/api_keys/{manual['id']}/revoke", {}, expect=201)
    tenant_key = api.as_key(key["secret"])
    await settle(api, app)
    owner = (await api.get(f"/v1/customers/{customer}/members"))["data"][0]["user"]
    before = await token_for(api, customer, owner)
    assert (await forward(api, before)).status_code == 200

    clock.advance(timedelta(seconds=5))
    await api.post(f"/v1/subscriptions/{sub}/pause", {})
    await settle(api, app)
    assert (await forward(api, before)).status_code == 401
    await tenant_key.get(f"/v1/customers/{customer}", expect=401)

    clock.advance(timedelta(seconds=5))
    await api.post(f"/v1/subscriptions/{sub}/resume", {})
    await settle(api, app)
    await tenant_key.get(f"/v1/customers/{customer}", expect=200)
    await api.as_key(manual["secret"]).get(f"/v1/customers/{customer}", expect=401)
    # Tokens from before the revocation stay refused; new ones are accepted.
    assert (await forward(api, before)).status_code == 401
    clock.advance(timedelta(seconds=1))
    after = await token_for(api, customer, owner)
    assert (await forward(api, after)).status_code == 200
    [restored] = await events_of(api, customer, "access.restored")
    assert restored["data"]["api_keys_restored"] == 1
    assert restored["data"]["reason"] == "subscription_active"
