"""API keys: hashed, scoped, revocable; a tenant-scoped key sees only its own tenant (404 otherwise)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from gateway.db.session import Database
from gateway.identity.models import ApiKey
from tests.conftest import Api


async def test_missing_and_wrong_keys_are_401_problems(api: Api) -> None:
    response = await api.client.get("/v1/customers")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["code"] == "unauthenticated"
    await api.as_key("tg_sk_nope").get("/v1/customers", expect=401)


async def test_secrets_are_stored_hashed_and_shown_once(api: Api, db: Database) -> None:
    created = await api.post("/v1/api_keys", {"name": "ci", "scopes": ["catalog:read"]})
    secret = created["secret"]
    assert secret.startswith("tg_sk_")
    listed = await api.get("/v1/api_keys")
    assert all(k["secret"] is None for k in listed["data"])
    async with db.unit_of_work() as session:
        stored = (await session.scalars(select(ApiKey).where(ApiKey.id == created["id"]))).one()
    assert secret not in (stored.secret_hash, stored.prefix) and len(stored.secret_hash) == 64


async def test_scopes_are_enforced(api: Api, demo: Any) -> None:
    reader = api.as_key((await api.post("/v1/api_keys", {"name": "r", "scopes": ["catalog:read"]}))["secret"])
    await reader.get("/v1/plans")
    problem = await reader.post("/v1/products", {"name": "nope"}, expect=403)
    assert problem["code"] == "missing_scope" and problem["required_scope"] == "catalog:write"
    await reader.get("/v1/customers", expect=403)


async def test_revoked_key_stops_working(api: Api) -> None:
    created = await api.post("/v1/api_keys", {"name": "tmp", "scopes": ["*"]})
    other = api.as_key(created["secret"])
    await other.get("/v1/customers")
    await api.post(f"/v1/api_keys/{created['id']}/revoke")
    await other.get("/v1/customers", expect=401)


async def test_invalid_scope_is_422(api: Api) -> None:
    problem = await api.post("/v1/api_keys", {"name": "x", "scopes": ["everything"]}, expect=422)
    assert problem["field"] == "scopes"


async def test_a_tenant_key_cannot_read_or_change_another_tenant(api: Api, demo: Any) -> None:
    mine = await api.post("/v1/customers", {"name": "Mine", "currency": "USD"})
    theirs = await api.post("/v1/customers", {"name": "Theirs", "currency": "USD"})
    their_sub = await api.post("/v1/subscriptions", {"customer": theirs["id"], "price": "basic_monthly"})
    their_member = await api.post(f"/v1/customers/{theirs['id']}/members", {"email": "a@theirs.example"})
    key = await api.post(
        "/v1/api_keys",
        {
            "name": "tenant",
            "scopes": ["customers:write", "subscriptions:write", "events:read"],
            "customer": mine["id"],
        },
    )
    tenant = api.as_key(key["secret"])

    # Its own data: visible.
    assert (await tenant.get(f"/v1/customers/{mine['id']}"))["id"] == mine["id"]
    assert [c["id"] for c in (await tenant.get("/v1/customers"))["data"]] == [mine["id"]]
    # Another tenant's: 404 for reads and writes alike, never 403 (existence must not leak).
    for path in (
        f"/v1/customers/{theirs['id']}",
        f"/v1/subscriptions/{their_sub['id']}",
        f"/v1/customers/{theirs['id']}/members",
    ):
        problem = await tenant.get(path, expect=404)
        assert problem["status"] == 404
    await tenant.patch(
        f"/v1/customers/{theirs['id']}/members/{their_member['id']}", {"role": "viewer"}, expect=404
    )
    await tenant.delete(f"/v1/customers/{theirs['id']}/members/{their_member['id']}", expect=404)
    # Billing details and subscriptions are the platform's to change (the permission matrix): refused for
    # a tenant key whoever they belong to, before anything is looked up.
    for method, path, body in (
        ("PATCH", f"/v1/customers/{theirs['id']}", {"name": "pwned"}),
        ("POST", f"/v1/subscriptions/{their_sub['id']}/cancel", {"at_period_end": False}),
        ("POST", "/v1/subscriptions", {"customer": theirs["id"], "price": "basic_monthly"}),
    ):
        problem = await tenant.call(method, path, json=body, expect=403)
        assert problem["code"] == "platform_key_required"
    assert (await tenant.get("/v1/subscriptions"))["data"] == []
    # Nothing changed on their side.
    assert (await api.get(f"/v1/customers/{theirs['id']}"))["name"] == "Theirs"
    assert (await api.get(f"/v1/subscriptions/{their_sub['id']}"))["status"] == "active"
    # A tenant key cannot mint a platform key, nor move test clocks.
    await tenant.post("/v1/api_keys", {"name": "x", "scopes": ["customers:read"]}, expect=403)
    await tenant.post("/v1/test_clocks", {}, expect=403)
    # Events are tenant-filtered too.
    events = await tenant.get("/v1/events", params={"limit": 100})
    assert {e["customer"] for e in events["data"]} <= {mine["id"]}
