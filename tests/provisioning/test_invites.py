"""Member invitations: a link token that is single use, expires, cannot be altered, and respects seats
and the tier's roles; refusals create nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from litestar import Litestar

from gateway.config import Settings
from gateway.kernel.clock import FrozenClock
from tests.conftest import Api
from tests.provisioning.helpers import manual_settings, settle


@pytest.fixture
def settings() -> Settings:
    return manual_settings(invite_ttl_hours=48)


async def tenant(api: Api, app: Litestar, price: str) -> str:
    customer = (
        await api.post("/v1/customers", {"name": "Inv", "email": "owner@inv.example", "currency": "USD"})
    )["id"]
    await api.post("/v1/subscriptions", {"customer": customer, "price": price})
    await settle(api, app)  # provisioned: the owner holds one seat
    return customer


async def member_emails(api: Api, customer: str) -> list[str]:
    return sorted(m["email"] for m in (await api.get(f"/v1/customers/{customer}/members"))["data"])


async def test_invite_and_accept(api: Api, app: Litestar, clock: FrozenClock, demo: Any) -> None:
    customer = await tenant(api, app, "pro_monthly")
    invite = await api.post(
        f"/v1/customers/{customer}/invites", {"email": "New@Inv.example", "role": "editor"}
    )
    assert (invite["email"], invite["role"], invite["status"]) == ("new@inv.example", "editor", "pending")
    assert invite["expires_at"] == "2026-01-03T00:00:00Z"
    token = invite["token"]
    assert token.startswith(invite["id"] + ".")

    accepted = await api.post("/v1/invites/accept", {"token": token, "name": "Nova"}, expect=200)
    assert (accepted["status"], accepted["token"]) == ("accepted", None)
    members = {m["email"]: m for m in (await api.get(f"/v1/customers/{customer}/members"))["data"]}
    assert members["new@inv.example"]["role"] == "editor"
    assert members["new@inv.example"]["name"] == "Nova"
    assert accepted["member"] == members["new@inv.example"]["id"]

    again = await api.post("/v1/invites/accept", {"token": token}, expect=409)
    assert again["code"] == "invite_already_accepted"
    listed = await api.get(f"/v1/customers/{customer}/invites")
    assert [(i["id"], i["status"], i["token"]) for i in listed["data"]] == [(invite["id"], "accepted", None)]

    await settle(api, app)
    log = await api.get("/v1/audit_log", params={"customer": customer, "action": "invite."})
    assert [e["action"] for e in log["data"]] == ["invite.created", "invite.accepted"]
    assert log["data"][1]["user"] == accepted["user"]


async def test_tampered_expired_and_malformed_tokens(
    api: Api, app: Litestar, clock: FrozenClock, demo: Any
) -> None:
    customer = await tenant(api, app, "pro_monthly")
    token = (await api.post(f"/v1/customers/{customer}/invites", {"email": "t@inv.example"}))["token"]
    last = "A" if token[-1] != "A" else "B"
    for bad in (token[:-1] + last, token.split(".")[0] + ".x", "inv_nothing.abc", "garbage"):
        problem = await api.post("/v1/invites/accept", {"token": bad}, expect=422)
        assert problem["code"] == "invite_invalid"
    await api.post("/v1/invites/accept", {}, expect=422)
    clock.advance(timedelta(hours=48))
    expired = await api.post("/v1/invites/accept", {"token": token}, expect=409)
    assert expired["code"] == "invite_expired"
    assert await member_emails(api, customer) == ["owner@inv.example"]


async def test_seats_and_roles(api: Api, app: Litestar, demo: Any) -> None:
    customer = await tenant(api, app, "basic_monthly")  # basic: 1 seat, taken by the owner
    # Basic does not hand out `admin`.
    refused = await api.post(
        f"/v1/customers/{customer}/invites", {"email": "a@inv.example", "role": "admin"}, expect=422
    )
    assert refused["code"] == "role_not_allowed"
    invite = await api.post(f"/v1/customers/{customer}/invites", {"email": "v@inv.example"})
    assert invite["role"] == "viewer"  # the customer's default role
    full = await api.post("/v1/invites/accept", {"token": invite["token"]}, expect=409)
    assert (full["code"], full["seats_used"], full["seats_limit"]) == ("seat_limit_reached", 1, 1)
    assert await member_emails(api, customer) == ["owner@inv.example"]
    assert (await api.get(f"/v1/customers/{customer}/invites"))["data"][0]["status"] == "pending"
    taken = await api.post(f"/v1/customers/{customer}/invites", {"email": "owner@inv.example"}, expect=409)
    assert taken["code"] == "already_member"


async def test_tenant_scoping(api: Api, app: Litestar, demo: Any) -> None:
    mine = await tenant(api, app, "pro_monthly")
    other = (await api.post("/v1/customers", {"name": "Other", "currency": "USD"}))["id"]
    await api.post("/v1/subscriptions", {"customer": other, "price": "pro_monthly"})
    key = await api.post("/v1/api_keys", {"name": "m", "scopes": ["members:write"], "customer": other})
    outsider = api.as_key(key["secret"])
    await outsider.post(f"/v1/customers/{mine}/invites", {"email": "x@inv.example"}, expect=404)
    token = (await api.post(f"/v1/customers/{mine}/invites", {"email": "y@inv.example"}))["token"]
    assert (await outsider.post("/v1/invites/accept", {"token": token}, expect=422))[
        "code"
    ] == "invite_invalid"
    reader = api.as_key(
        (await api.post("/v1/api_keys", {"name": "r", "scopes": ["members:read"], "customer": mine}))[
            "secret"
        ]
    )
    assert (await reader.post("/v1/invites/accept", {"token": token}, expect=403))["code"] == "missing_scope"
    assert await member_emails(api, mine) == ["owner@inv.example"]
