"""SCIM through the ASGI app: tokens, seats, role groups clamped to the tier, tenancy, malformed input."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import Api
from tests.scim.helpers import GROUP, USER, Scim, assert_scim_error, scim_tenant, synced


async def members(api: Api, customer: str, **params: Any) -> list[dict[str, Any]]:
    page = await api.get(f"/v1/customers/{customer}/members", params=params)
    return list(page["data"])


async def test_tokens_are_shown_once_disabled_tokens_are_refused(api: Api, demo: Any) -> None:
    customer = await api.post("/v1/customers", {"name": "Tok", "currency": "USD"})
    await api.post("/v1/subscriptions", {"customer": customer["id"], "price": "pro_monthly", "trial_days": 0})
    created = await api.post(f"/v1/customers/{customer['id']}/scim_tokens", {"name": "okta"})
    assert created["secret"].startswith("tg_scim_") and created["prefix"] == created["secret"][:16]
    assert created["object"] == "scim_token" and created["disabled_at"] is None
    listed = await api.get(f"/v1/customers/{customer['id']}/scim_tokens")
    assert [t["id"] for t in listed["data"]] == [created["id"]]
    assert listed["data"][0]["secret"] is None

    scim = Scim(api, created["secret"])
    config = await scim.call("GET", "/ServiceProviderConfig", expect=200)
    assert config["patch"]["supported"] is True and config["filter"]["supported"] is True
    listed = await api.get(f"/v1/customers/{customer['id']}/scim_tokens")
    assert listed["data"][0]["last_used_at"] is not None

    disabled = await api.delete(f"/v1/customers/{customer['id']}/scim_tokens/{created['id']}")
    assert disabled["disabled_at"] is not None
    assert_scim_error(await scim.call("GET", "/Users", expect=401), 401)
    assert_scim_error(await Scim(api, "tg_scim_nope").call("GET", "/Users", expect=401), 401)
    response = await api.client.get("/scim/v2/Users")
    assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Bearer")
    # Another tenant's key cannot manage this tenant's tokens: the customer does not exist for it.
    other = await api.post("/v1/customers", {"name": "Other", "currency": "USD"})
    key = await api.post(
        "/v1/api_keys", {"name": "o", "scopes": ["customers:write"], "customer": other["id"]}
    )
    await api.as_key(key["secret"]).post(f"/v1/customers/{customer['id']}/scim_tokens", {}, expect=404)
    await api.as_key(key["secret"]).get(f"/v1/customers/{customer['id']}/scim_tokens", expect=404)


async def test_seat_limit_refuses_creation_and_activation_and_changes_nothing(api: Api, demo: Any) -> None:
    customer, token = await scim_tenant(api, "basic_monthly")  # Basic: 1 seat
    scim = Scim(api, token)
    first = await scim.create_user("ann@acme.example", displayName="Ann")
    refused = await scim.create_user("bob@acme.example", expect=403)
    assert_scim_error(refused, 403, "seatLimitReached")
    assert "'seats'" in refused["detail"] and "1 of 1" in refused["detail"]
    assert [m["email"] for m in await members(api, customer, include_removed="true")] == ["ann@acme.example"]
    listing = await scim.call("GET", "/Users", expect=200)
    assert listing["totalResults"] == 1

    # Deactivating frees the seat; the User stays visible as inactive.
    off = await scim.patch(f"/Users/{first['id']}", {"op": "replace", "path": "active", "value": False})
    assert off["active"] is False
    assert await members(api, customer) == []
    bob = await scim.create_user("bob@acme.example")
    # Reactivating Ann now needs a second seat: refused, and Ann stays inactive.
    again = await scim.patch(
        f"/Users/{first['id']}", {"op": "replace", "value": {"active": True}}, expect=403
    )
    assert_scim_error(again, 403, "seatLimitReached")
    assert (await scim.call("GET", f"/Users/{first['id']}", expect=200))["active"] is False
    assert [m["email"] for m in await members(api, customer)] == ["bob@acme.example"]
    # An inactive user may be created without a seat.
    carl = await scim.create_user("carl@acme.example", active=False)
    assert carl["active"] is False
    assert len(await members(api, customer)) == 1
    assert bob["active"] is True  # not sent on creation: a created User is active


async def test_groups_give_roles_clamped_to_the_tier(api: Api, demo: Any) -> None:
    customer, token = await scim_tenant(api, "pro_monthly")  # Pro: owner, admin, editor, viewer
    scim = Scim(api, token)
    ann = await scim.create_user("ann@acme.example")
    assert {m["email"]: m["role"] for m in await members(api, customer)} == {"ann@acme.example": "viewer"}
    admins = await scim.create_group("Admins", [ann["id"]])
    editors = await scim.create_group("Tiergate Editors", [ann["id"]])
    plain = await scim.create_group("Marketing", [ann["id"]])
    role = {m["email"]: m["role"] for m in await members(api, customer)}
    assert role == {"ann@acme.example": "admin"}
    user = await scim.call("GET", f"/Users/{ann['id']}", expect=200)
    assert sorted(g["display"] for g in user["groups"]) == ["Admins", "Marketing", "Tiergate Editors"]
    # Leaving Admins leaves the editor role; leaving every role group gives the default role.
    await scim.patch(f"/Groups/{admins['id']}", {"op": "remove", "path": f'members[value eq "{ann["id"]}"]'})
    assert (await members(api, customer))[0]["role"] == "editor"
    await scim.call("DELETE", f"/Groups/{editors['id']}", expect=204)
    assert (await members(api, customer))[0]["role"] == "viewer"
    await scim.call("GET", f"/Groups/{editors['id']}", expect=404)
    assert (await scim.call("GET", f"/Groups/{plain['id']}", expect=200))["members"][0]["value"] == ann["id"]

    # Basic allows owner and viewer only: an Admins group yields the default role, not a guess.
    basic, basic_token = await scim_tenant(api, "basic_monthly", name="Small")
    small = Scim(api, basic_token)
    bob = await small.create_user("bob@small.example")
    await small.create_group("admins", [bob["id"]])
    assert (await members(api, basic))[0]["role"] == "viewer"
    await small.create_group("Owners", [bob["id"]])
    assert (await members(api, basic))[0]["role"] == "owner"


async def test_a_token_sees_only_its_own_tenant(api: Api, demo: Any) -> None:
    _, token_a = await scim_tenant(api, "pro_monthly", name="A")
    _, token_b = await scim_tenant(api, "pro_monthly", name="B")
    a, b = Scim(api, token_a), Scim(api, token_b)
    ann = await a.create_user("ann@a.example")
    group = await a.create_group("Admins", [ann["id"]])
    assert (await b.call("GET", "/Users", expect=200))["totalResults"] == 0
    assert_scim_error(await b.call("GET", f"/Users/{ann['id']}", expect=404), 404)
    assert_scim_error(await b.call("GET", f"/Groups/{group['id']}", expect=404), 404)
    await b.patch(f"/Users/{ann['id']}", {"op": "replace", "path": "active", "value": False}, expect=404)
    await b.call("DELETE", f"/Users/{ann['id']}", expect=404)
    # B cannot put A's member in its own group either.
    assert_scim_error(await b.create_group("Admins", [ann["id"]], expect=400), 400, "invalidValue")
    # The same person can be a member of both tenants, each with its own SCIM record.
    ann_b = await b.create_user("ann@a.example", name={"givenName": "Ann B"})
    assert ann_b["id"] != ann["id"]
    assert "name" not in await a.call("GET", f"/Users/{ann['id']}", expect=200)
    assert (await a.call("GET", f"/Users/{ann['id']}", expect=200))["active"] is True


async def test_filters_pagination_put_and_delete(api: Api, demo: Any) -> None:
    customer, token = await scim_tenant(api, "pro_monthly")
    scim = Scim(api, token)
    made = [await scim.create_user(f"u{i}@acme.example", externalId=f"ext-{i}") for i in range(4)]
    found = await scim.call("GET", "/Users", params={"filter": 'userName eq "U2@ACME.example"'}, expect=200)
    assert [u["id"] for u in found["Resources"]] == [made[2]["id"]]
    found = await scim.call("GET", "/Users", params={"filter": 'externalId eq "ext-3"'}, expect=200)
    assert [u["id"] for u in found["Resources"]] == [made[3]["id"]]
    found = await scim.call("GET", "/Users", params={"filter": 'userName co "u1"'}, expect=200)
    assert found["totalResults"] == 1
    page = await scim.call("GET", "/Users", params={"startIndex": 2, "count": 2}, expect=200)
    assert (page["totalResults"], page["startIndex"], page["itemsPerPage"]) == (4, 2, 2)
    assert [u["id"] for u in page["Resources"]] == [made[1]["id"], made[2]["id"]]
    searched = await scim.call("POST", "/Users/.search", {"filter": 'externalId eq "ext-0"'}, expect=200)
    assert searched["totalResults"] == 1
    group = await scim.create_group("Editors", [made[0]["id"]])
    found = await scim.call("GET", "/Groups", params={"filter": 'displayName eq "editors"'}, expect=200)
    assert [g["id"] for g in found["Resources"]] == [group["id"]]

    # PUT replaces: attributes left out are cleared; userName moves the seat to another e-mail.
    put = await scim.call(
        "PUT", f"/Users/{made[0]['id']}", {"schemas": [USER], "userName": "renamed@acme.example"}, expect=200
    )
    assert (
        put["id"] == made[0]["id"] and put["userName"] == "renamed@acme.example" and "externalId" not in put
    )
    emails = sorted(m["email"] for m in await members(api, customer))
    assert emails == ["renamed@acme.example", "u1@acme.example", "u2@acme.example", "u3@acme.example"]
    clash = await scim.call(
        "PUT", f"/Users/{made[1]['id']}", {"schemas": [USER], "userName": "u2@acme.example"}, expect=409
    )
    assert_scim_error(clash, 409, "uniqueness")
    assert_scim_error(await scim.create_user("U3@acme.example", expect=409), 409, "uniqueness")

    # DELETE removes the membership and the SCIM record; the user row stays.
    await scim.call("DELETE", f"/Users/{made[3]['id']}", expect=204)
    await scim.call("GET", f"/Users/{made[3]['id']}", expect=404)
    removed = [m for m in await members(api, customer, include_removed="true") if m["status"] == "removed"]
    assert [m["email"] for m in removed] == ["u3@acme.example"]
    assert (await scim.call("GET", "/Users", expect=200))["totalResults"] == 3


async def test_malformed_requests_are_scim_400s_and_change_nothing(api: Api, demo: Any) -> None:
    customer, token = await scim_tenant(api, "pro_monthly")
    scim = Scim(api, token)
    ann = await scim.create_user("ann@acme.example")
    cases: list[tuple[str, str, Any, str]] = [
        ("POST", "/Users", b"{not json", "invalidSyntax"),
        ("POST", "/Users", b"[1, 2]", "invalidSyntax"),
        ("POST", "/Users", {"schemas": [USER]}, "invalidValue"),
        ("POST", "/Users", {"schemas": [USER], "userName": "not-an-email"}, "invalidValue"),
        ("POST", "/Users", {"schemas": [USER], "userName": "x@y.example", "active": "yes?"}, "invalidValue"),
        (
            "POST",
            "/Groups",
            {"schemas": [GROUP], "displayName": "G", "members": [{"value": "mem_nope"}]},
            "invalidValue",
        ),
        (
            "POST",
            "/Groups",
            {"schemas": [GROUP], "displayName": "G", "members": [{"value": ann["id"], "type": "Group"}]},
            "invalidValue",
        ),
        (
            "PATCH",
            f"/Users/{ann['id']}",
            {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "explode"}]},
            "invalidValue",
        ),
        (
            "PATCH",
            f"/Users/{ann['id']}",
            {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "userName", "value": "nope"}],
            },
            "invalidValue",
        ),
        (
            "PATCH",
            f"/Users/{ann['id']}",
            {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "add", "path": "groups", "value": [{"value": "g"}]}],
            },
            "mutability",
        ),
        ("PUT", f"/Users/{ann['id']}", b"", "invalidSyntax"),
    ]
    for method, path, body, scim_type in cases:
        raw = body if isinstance(body, bytes) else None
        error = await scim.call(method, path, None if raw is not None else body, raw=raw, expect=400)
        assert_scim_error(error, 400, scim_type)
    bad_filter = await scim.call("GET", "/Users", params={"filter": "userName eq"}, expect=400)
    assert_scim_error(bad_filter, 400, "invalidFilter")
    assert_scim_error(await scim.call("GET", "/Nowhere", expect=404), 404)
    assert_scim_error(await scim.call("GET", "/Users/mem_nope", expect=404), 404)
    # Unknown attributes are ignored, not refused (IdPs send what they have).
    extra = await scim.create_user("bob@acme.example", phoneNumbers=[{"value": "1"}], title="CTO")
    assert "title" not in extra and "phoneNumbers" not in extra
    emails = sorted(m["email"] for m in await members(api, customer))
    assert emails == ["ann@acme.example", "bob@acme.example"]
    assert (await scim.call("GET", f"/Users/{ann['id']}", expect=200))["userName"] == "ann@acme.example"


async def test_concurrent_creations_fill_the_last_seat_exactly_once(api: Api, demo: Any) -> None:
    customer, token = await scim_tenant(api, "basic_monthly")  # 1 seat
    scim = Scim(api, token)

    async def create(i: int) -> int:
        body = {"schemas": [USER], "userName": f"racer{i}@acme.example"}
        response = await scim.client.post(
            "/scim/v2/Users", json=body, headers={"Authorization": f"Bearer {token}"}
        )
        return response.status_code

    statuses = sorted(await asyncio.gather(*(create(i) for i in range(6))))
    assert statuses == [201, 403, 403, 403, 403, 403]
    assert len(await members(api, customer)) == 1


async def test_a_role_group_changes_what_the_gateway_decides(api: Api, demo: Any) -> None:
    customer, token = await scim_tenant(api, "pro_monthly")
    scim = Scim(api, token)
    ann = await scim.create_user("ann@acme.example")
    user = (await members(api, customer))[0]["user"]
    ask = {"customer": customer, "user": user, "resource": "members", "action": "create"}
    await synced(api)
    denied = await api.post("/v1/check", ask, expect=200)
    assert (denied["allowed"], denied["role"]) == (False, None)
    group = await scim.create_group("Admins", [ann["id"]])
    await synced(api)
    allowed = await api.post("/v1/check", ask, expect=200)
    assert (allowed["allowed"], allowed["role"]) == (True, "admin")
    await scim.patch(f"/Groups/{group['id']}", {"op": "replace", "path": "members", "value": []})
    await synced(api)
    assert (await api.post("/v1/check", ask, expect=200))["allowed"] is False
