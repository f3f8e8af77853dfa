"""/v1/check end to end: tiers map to roles and features, lifecycle drives access, quotas hold."""

from __future__ import annotations

import asyncio
from typing import Any

from joserfc import jwt
from joserfc.jwk import KeySet
from litestar import Litestar

from gateway.customers import CustomerService
from gateway.customers.repository import CustomerRepository
from tests.conftest import Api


async def synced(api: Api) -> None:
    """Wait until the app's engine has caught up with the newest event (it runs on the app's own loop,
    nudged after every write; this only waits for it, bounded)."""
    latest, cursor = 0, None
    while True:
        page = await api.get(
            "/v1/events", params={"limit": 100, **({"starting_after": cursor} if cursor else {})}
        )
        if page["data"]:
            latest = page["data"][-1]["seq"]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    for _ in range(200):
        health = (await api.client.get("/health")).json()
        if health["index_version"] >= latest:
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"engine did not reach version {latest}: {health}")


async def tenant(
    api: Api, app: Litestar, price: str = "basic_monthly", **members: str
) -> tuple[str, str, dict[str, str]]:
    clock = await api.post("/v1/test_clocks", {"frozen_time": "2026-03-01T00:00:00Z"})
    customer = await api.post("/v1/customers", {"name": "Acme", "currency": "USD", "test_clock": clock["id"]})
    sub = await api.post("/v1/subscriptions", {"customer": customer["id"], "price": price, "trial_days": 0})
    users = await stored_members(app, customer["id"], members)
    await synced(api)
    return customer["id"], sub["id"], users | {"clock": clock["id"]}


async def stored_members(app: Litestar, customer: str, members: dict[str, str]) -> dict[str, str]:
    """Members written as stored data, past the seat and role checks of the member endpoints (which
    refuse a third member, or an `admin`, on Basic): what the index must answer for whatever is stored,
    e.g. roles a policy edit took away from the tier."""
    users = {}
    async with app.state.db.unit_of_work() as session:
        customers = CustomerService(CustomerRepository(session), app.state.clock)
        for name, role in members.items():
            _, user = await customers.add_member(customer, email=f"{name}@acme.example", name=None, role=role)
            users[name] = user.id
    app.state.engine.nudge()
    return users


async def check(api: Api, customer: str, **body: Any) -> dict[str, Any]:
    result: dict[str, Any] = await api.post("/v1/check", {"customer": customer, **body}, expect=200)
    return result


async def test_roles_tiers_and_features(api: Api, app: Litestar, demo: Any) -> None:
    customer, sub, users = await tenant(api, app, owner="owner", viewer="viewer", admin="admin")
    owner, viewer, admin = users["owner"], users["viewer"], users["admin"]

    assert (await check(api, customer, user=owner, resource="projects", action="create"))["allowed"]
    denied = await check(api, customer, user=viewer, resource="projects/42", action="update")
    assert (denied["allowed"], denied["reason"]) == (False, "no_permission")
    # Basic does not hand out `admin`: the role is inactive, not deleted.
    inactive = await check(api, customer, user=admin, resource="members", action="create")
    assert (inactive["allowed"], inactive["reason"], inactive["role"]) == (False, "role_not_allowed", "admin")
    gated = await check(api, customer, user=owner, resource="reports/advanced", action="read")
    assert (gated["allowed"], gated["reason"]) == (False, "feature_not_in_plan")
    assert (await check(api, customer, feature="reporting_basic"))["allowed"]
    assert (await check(api, customer, feature="sso"))["reason"] == "feature_not_in_plan"
    stranger = await check(api, customer, user="usr_nobody", resource="projects", action="read")
    assert stranger["reason"] == "unknown_subject"

    # Upgrade: the admin role comes back and advanced reports open, at once.
    await api.post(f"/v1/subscriptions/{sub}/plan_change", {"price": "pro_monthly"})
    await synced(api)
    assert (await check(api, customer, user=admin, resource="members", action="create"))["allowed"]
    opened = await check(api, customer, user=owner, resource="reports/advanced", action="read")
    assert opened["allowed"] and opened["plan"] == "pro"

    # Pause: everyone is out, data kept; resume: back.
    await api.post(f"/v1/subscriptions/{sub}/pause", {})
    await synced(api)
    paused = await check(api, customer, user=owner, resource="projects", action="read")
    assert (paused["allowed"], paused["reason"]) == (False, "subscription_inactive")
    await api.post(f"/v1/subscriptions/{sub}/resume", {})
    await synced(api)
    assert (await check(api, customer, user=owner, resource="projects", action="read"))["allowed"]

    # Cancel: the tenant stays known, with no access since the cancellation (the test clock's now).
    await api.post(f"/v1/subscriptions/{sub}/cancel", {"at_period_end": False})
    await synced(api)
    gone = await check(api, customer, user=owner, resource="projects", action="read")
    assert (gone["allowed"], gone["reason"], gone["inactive_since"]) == (
        False,
        "subscription_inactive",
        "2026-03-01T00:00:00Z",
    )


async def test_gauge_quota_admits_exactly_the_limit(api: Api, app: Litestar, demo: Any) -> None:
    customer, _, users = await tenant(api, app, owner="owner")
    results = [
        await check(
            api,
            customer,
            user=users["owner"],
            resource="projects",
            action="create",
            feature="projects",
            consume=True,
        )
        for _ in range(6)
    ]
    assert [r["allowed"] for r in results] == [True] * 5 + [False]
    last = results[-1]
    assert (last["reason"], last["limit"], last["used"], last["remaining"]) == ("quota_exceeded", 5, 5, 0)
    # Without consume the check only looks; release frees a unit.
    assert (await check(api, customer, feature="projects"))["allowed"] is False
    released = await api.post("/v1/check/release", {"customer": customer, "feature": "projects"}, expect=200)
    assert released["used"] == 4
    assert (await check(api, customer, feature="projects", consume=True))["allowed"]


async def test_metered_allowance_resets_at_the_period_boundary_on_a_test_clock(
    api: Api, app: Litestar, demo: Any
) -> None:
    customer, _, users = await tenant(api, app)
    first = await check(api, customer, feature="api_calls", quantity=10_000, consume=True)
    assert first["allowed"] and first["remaining"] == 0
    assert first["resets_at"].startswith("2026-04-01")
    over = await check(api, customer, feature="api_calls", consume=True)
    assert (over["allowed"], over["reason"]) == (False, "quota_exceeded")
    await api.post(f"/v1/test_clocks/{users['clock']}/advance", {"frozen_time": "2026-04-01T00:00:00Z"})
    await synced(api)
    fresh = await check(api, customer, feature="api_calls", consume=True)
    assert fresh["allowed"] and fresh["used"] == 1 and fresh["resets_at"].startswith("2026-05-01")


async def test_batch_and_tenant_scoping(api: Api, app: Litestar, demo: Any) -> None:
    mine, _, users = await tenant(api, app, owner="owner")
    theirs, _, _ = await tenant(api, app)
    batch = await api.post(
        "/v1/check/batch",
        {
            "checks": [
                {"customer": mine, "user": users["owner"], "resource": "projects", "action": "read"},
                {"customer": mine, "feature": "sso"},
            ]
        },
        expect=200,
    )
    assert [r["allowed"] for r in batch["results"]] == [True, False]
    key = await api.post("/v1/api_keys", {"name": "app", "scopes": ["check:read"], "customer": mine})
    app_key = api.as_key(key["secret"])
    await app_key.post("/v1/check", {"customer": mine, "feature": "projects"}, expect=200)
    await app_key.post("/v1/check", {"customer": theirs, "feature": "projects"}, expect=404)
    problem = await app_key.post(
        "/v1/check", {"customer": mine, "feature": "projects", "consume": True}, expect=403
    )
    assert problem["required_scope"] == "check:write"
    # A batch with one refused item consumes nothing, not even for the items before it.
    writer_key = await api.post("/v1/api_keys", {"name": "w", "scopes": ["check:write"], "customer": mine})
    writer = api.as_key(writer_key["secret"])
    mixed = {
        "checks": [
            {"customer": mine, "feature": "projects", "consume": True},
            {"customer": theirs, "feature": "x"},
        ]
    }
    await writer.post("/v1/check/batch", mixed, expect=404)
    assert (await check(api, mine, feature="projects"))["used"] == 0
    await api.post("/v1/check/batch", mixed, expect=200)
    assert (await check(api, mine, feature="projects"))["used"] == 1
    problem = await api.post("/v1/check", {"customer": mine}, expect=422)
    assert problem["field"] == "feature"


async def test_entitlements_snapshot_with_etag(api: Api, app: Litestar, demo: Any) -> None:
    customer, _, _ = await tenant(api, app)
    response = await api.client.get(f"/v1/entitlements/{customer}", headers=api._headers(None))
    assert response.status_code == 200
    body = response.json()
    features = {f["feature"]: f for f in body["features"]}
    assert body["plan"] == "basic" and features["projects"]["limit"] == 5
    assert features["api_calls"]["resets_at"].startswith("2026-04-01")
    etag = response.headers["etag"]
    again = await api.client.get(
        f"/v1/entitlements/{customer}", headers=api._headers({"If-None-Match": etag})
    )
    assert again.status_code == 304
    await check(api, customer, feature="projects", consume=True)
    changed = await api.client.get(
        f"/v1/entitlements/{customer}", headers=api._headers({"If-None-Match": etag})
    )
    assert changed.status_code == 200 and changed.headers["etag"] != etag


async def test_tokens_verify_offline_with_the_jwks(api: Api, app: Litestar, demo: Any) -> None:
    customer, _, users = await tenant(api, app, owner="owner", admin="admin")
    issued = await api.post("/v1/tokens", {"customer": customer, "user": users["admin"]})
    assert issued["roles"] == [] and issued["plan"] == "basic"  # admin is inactive on basic
    jwks = (await api.client.get("/.well-known/jwks.json")).json()
    assert all("d" not in key for key in jwks["keys"]), "the JWKS must never carry private parts"
    claims = jwt.decode(issued["access_token"], KeySet.import_key_set(jwks), algorithms=["ES256"]).claims
    assert claims["sub"] == users["admin"] and claims["tid"] == customer and claims["aud"] == "tiergate"
    assert claims["exp"] - claims["iat"] == 900
    await api.post("/v1/tokens", {"customer": customer, "user": "usr_stranger"}, expect=404)
