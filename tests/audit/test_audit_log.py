"""The audit log: `record()` (what SSO calls for sign-ins), entries derived from relayed events (policy
edits, role changes, provisioning), filters, cursor pagination, tenant scoping, the audit:read scope."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from litestar import Litestar

from gateway.audit import SYSTEM, record
from gateway.config import Settings
from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from tests.conftest import Api
from tests.provisioning.helpers import manual_settings, settle


@pytest.fixture
def settings() -> Settings:
    return manual_settings()


async def test_record_filters_and_pagination(
    api: Api, app: Litestar, db: Database, clock: FrozenClock
) -> None:
    a = (await api.post("/v1/customers", {"name": "A"}))["id"]
    b = (await api.post("/v1/customers", {"name": "B"}))["id"]
    async with db.unit_of_work() as session:
        for i in range(3):
            await record(
                session,
                action="user.signed_in",
                at=clock.now() + timedelta(minutes=i),
                actor=f"user:usr_{i}",
                tenant_id=a,
                target=f"user:usr_{i}",
                user_id=f"usr_{i}",
                data={"idp": "okta"},
            )
        await record(session, action="user.signed_in", at=clock.now(), tenant_id=b, user_id="usr_b")
    page = await api.get("/v1/audit_log", params={"customer": a, "limit": 2})
    assert [e["actor"] for e in page["data"]] == ["user:usr_0", "user:usr_1"] and page["has_more"]
    rest = await api.get(
        "/v1/audit_log", params={"customer": a, "limit": 2, "starting_after": page["next_cursor"]}
    )
    assert [e["actor"] for e in rest["data"]] == ["user:usr_2"] and not rest["has_more"]
    entry = rest["data"][0]
    assert (entry["object"], entry["customer"], entry["target"], entry["user"], entry["data"]) == (
        "audit_entry",
        a,
        "user:usr_2",
        "usr_2",
        {"idp": "okta"},
    )
    since = await api.get("/v1/audit_log", params={"customer": a, "since": "2026-01-01T00:01:00Z"})
    assert [e["user"] for e in since["data"]] == ["usr_1", "usr_2"]
    until = await api.get("/v1/audit_log", params={"until": "2026-01-01T00:01:00Z", "action": "user."})
    assert sorted(e["user"] for e in until["data"]) == ["usr_0", "usr_b"]
    assert (await api.get("/v1/audit_log", params={"user": "usr_b"}))["data"][0]["actor"] == SYSTEM
    await api.get("/v1/audit_log", params={"since": "yesterday"}, expect=422)

    # Tenant scoping and the scope.
    key_a = api.as_key(
        (await api.post("/v1/api_keys", {"name": "a", "scopes": ["audit:read"], "customer": a}))["secret"]
    )
    seen = await key_a.get("/v1/audit_log", params={"limit": 100})
    assert {e["customer"] for e in seen["data"]} == {a}
    assert (await key_a.get("/v1/audit_log", params={"customer": b}))["data"] == []
    no_scope = api.as_key(
        (await api.post("/v1/api_keys", {"name": "c", "scopes": ["customers:read"]}))["secret"]
    )
    assert (await no_scope.get("/v1/audit_log", expect=403))["code"] == "missing_scope"


async def test_policy_edits_role_changes_and_provisioning_are_audited(
    api: Api, app: Litestar, demo: Any
) -> None:
    customer = (
        await api.post("/v1/customers", {"name": "Aud", "email": "o@aud.example", "currency": "USD"})
    )["id"]
    await api.post("/v1/subscriptions", {"customer": customer, "price": "pro_monthly"})
    member = await api.post(f"/v1/customers/{customer}/members", {"email": "m@aud.example", "role": "editor"})
    await api.patch(f"/v1/customers/{customer}/members/{member['id']}", {"role": "admin"})
    edit = await api.post(
        "/v1/policies/edits",
        {
            "add": [{"type": "permission", "role": "editor", "resource": "billing", "action": "read"}],
            "note": "n",
        },
    )
    await settle(api, app)
    await settle(api, app)  # a second relay pass changes nothing: one entry per event
    entries = (await api.get("/v1/audit_log", params={"limit": 100}))["data"]
    actions = [e["action"] for e in entries if e["customer"] in (customer, None)]
    assert actions.count("customer.provisioned") == 1
    assert actions.count("policy.published") == 2  # the seeded default (version 1) and this edit
    [role_change] = [e for e in entries if e["action"] == "member.role_changed"]
    assert (role_change["user"], role_change["data"]) == (
        member["user"],
        {"role": "admin", "previous_role": "editor"},
    )
    [published] = [
        e
        for e in entries
        if e["action"] == "policy.published" and e["data"].get("version") == edit["version"]
    ]
    assert published["customer"] is None and published["actor"].startswith("key:key_")
