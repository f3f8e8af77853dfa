"""GDPR export and erasure: personal fields pseudonymised, memberships removed, tokens refused, audit
entries kept; tenant scoping and platform-only erasure."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from litestar import Litestar
from sqlalchemy import text

from gateway.config import Settings
from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from gateway.provisioning.privacy import pseudonym
from gateway.sso.models import SsoIdentity
from tests.conftest import Api
from tests.provisioning.helpers import forward, manual_settings, settle, token_for


@pytest.fixture
def settings() -> Settings:
    return manual_settings()


async def setup(api: Api, app: Litestar) -> tuple[str, str, dict[str, Any]]:
    customer = (
        await api.post("/v1/customers", {"name": "Priv", "email": "owner@priv.example", "currency": "USD"})
    )["id"]
    await api.post("/v1/subscriptions", {"customer": customer, "price": "pro_monthly"})
    member = await api.post(
        f"/v1/customers/{customer}/members",
        {"email": "pat@priv.example", "name": "Pat Doe", "role": "editor"},
    )
    await api.patch(f"/v1/customers/{customer}/members/{member['id']}", {"role": "viewer"})
    await settle(api, app)
    return customer, member["user"], member


async def test_export(api: Api, app: Litestar, demo: Any) -> None:
    customer, user, member = await setup(api, app)
    export = await api.get(f"/v1/users/{user}/export")
    assert export["object"] == "user_export"
    # Timestamps are ISO 8601 UTC on every backend (SQLite returns bare-table reads as naive strings).
    assert export["user"]["created_at"].endswith("Z") and "T" in export["user"]["created_at"]
    assert (export["user"]["id"], export["user"]["email"], export["user"]["name"]) == (
        user,
        "pat@priv.example",
        "Pat Doe",
    )
    assert [(m["id"], m["customer"], m["role"], m["status"]) for m in export["memberships"]] == [
        (member["id"], customer, "viewer", "active")
    ]
    assert [e["action"] for e in export["audit_entries"]] == ["member.added", "member.role_changed"]
    assert export["invites"] == []
    await api.get("/v1/users/usr_nobody/export", expect=404)


async def test_erase(api: Api, app: Litestar, clock: FrozenClock, demo: Any) -> None:
    customer, user, _ = await setup(api, app)
    token = await token_for(api, customer, user)
    assert (await forward(api, token)).status_code == 200
    audit_before = (await api.get("/v1/audit_log", params={"user": user}))["data"]

    clock.advance(timedelta(seconds=5))
    erased = await api.post(f"/v1/users/{user}/erase", {}, expect=200)
    assert erased["email"] == pseudonym(user)
    assert erased["email"].startswith("erased+") and erased["email"].endswith("@erased.invalid")
    assert (erased["memberships_removed"], erased["already_erased"]) == (1, False)
    await settle(api, app)

    export = await api.get(f"/v1/users/{user}/export")
    assert (export["user"]["email"], export["user"]["name"]) == (pseudonym(user), None)
    assert [m["status"] for m in export["memberships"]] == ["removed"]
    # Tokens issued before the erasure are refused.
    refused = await forward(api, token)
    assert (refused.status_code, refused.headers["x-auth-reason"]) == (401, "token_revoked")
    # Audit entries are kept (and the erasure itself is one).
    audit_after = (await api.get("/v1/audit_log", params={"user": user, "limit": 100}))["data"]
    assert [e["id"] for e in audit_after[: len(audit_before)]] == [e["id"] for e in audit_before]
    new_actions = [e["action"] for e in audit_after[len(audit_before) :]]
    assert new_actions == ["member.removed", "user.tokens_revoked", "user.erased"]
    # The member list still shows the (removed) membership, with the pseudonym only.
    members = (await api.get(f"/v1/customers/{customer}/members", params={"include_removed": True}))["data"]
    assert [(m["email"], m["name"], m["status"]) for m in members if m["user"] == user] == [
        (pseudonym(user), None, "removed")
    ]
    again = await api.post(f"/v1/users/{user}/erase", {}, expect=200)
    assert (again["already_erased"], again["memberships_removed"]) == (True, 0)


async def test_erase_forgets_the_users_sso_identities(
    api: Api, app: Litestar, db: Database, clock: FrozenClock, demo: Any
) -> None:
    _, user, _ = await setup(api, app)
    connection = await api.post(
        "/v1/sso/connections",
        {
            "name": "Vendor IdP",
            "issuer": "https://idp.priv.example",
            "client_id": "tiergate",
            "client_secret": "s",
            "allowed_domains": ["priv.example"],
        },
    )
    async with db.unit_of_work() as session:
        session.add(
            SsoIdentity(
                id="ssoid_pat",
                connection_id=connection["id"],
                issuer="https://idp.priv.example",
                subject="pat@priv.example",
                user_id=user,
                tenant_id=None,
                created_at=clock.now(),
                last_sign_in_at=clock.now(),
            )
        )
    await api.post(f"/v1/users/{user}/erase", {}, expect=200)
    async with db.engine.connect() as conn:
        left = (await conn.execute(text("SELECT count(*) FROM sso_identities"))).scalar_one()
    assert left == 0


async def test_scoping(api: Api, app: Litestar, demo: Any) -> None:
    customer, user, _ = await setup(api, app)
    other = (await api.post("/v1/customers", {"name": "O", "currency": "USD"}))["id"]
    mine = api.as_key(
        (await api.post("/v1/api_keys", {"name": "p", "scopes": ["privacy:write"], "customer": customer}))[
            "secret"
        ]
    )
    theirs = api.as_key(
        (await api.post("/v1/api_keys", {"name": "p", "scopes": ["privacy:write"], "customer": other}))[
            "secret"
        ]
    )
    assert (await mine.get(f"/v1/users/{user}/export"))["user"]["id"] == user
    await theirs.get(f"/v1/users/{user}/export", expect=404)
    problem = await mine.post(f"/v1/users/{user}/erase", {}, expect=403)
    assert problem["code"] == "platform_key_required"
    reader = api.as_key(
        (await api.post("/v1/api_keys", {"name": "r", "scopes": ["customers:read"]}))["secret"]
    )
    assert (await reader.get(f"/v1/users/{user}/export", expect=403))["code"] == "missing_scope"
    await api.post("/v1/users/usr_nobody/erase", {}, expect=404)
    # Nothing was erased by the refusals.
    assert (await api.get(f"/v1/users/{user}/export"))["user"]["email"] == "pat@priv.example"
