"""Issue 18 "Coming back": a tenant that cancels Pro and returns on Basic goes through the same role
clamping as a downgrade, and every view reports the new plan."""

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
    return manual_settings()


async def test_returning_on_a_smaller_plan_clamps_roles_and_reports_the_new_plan(
    api: Api, app: Litestar, clock: FrozenClock, demo: Any
) -> None:
    customer = (
        await api.post("/v1/customers", {"name": "Back", "email": "owner@back.example", "currency": "USD"})
    )["id"]
    pro = await api.post("/v1/subscriptions", {"customer": customer, "price": "pro_monthly", "trial_days": 0})
    await settle(api, app)
    editor = await api.post(
        f"/v1/customers/{customer}/members", {"email": "ed@back.example", "role": "editor"}
    )
    await settle(api, app)
    assert (await api.get(f"/v1/customers/{customer}/access"))["plan"] == "pro"

    await api.post(f"/v1/subscriptions/{pro['id']}/cancel", {"at_period_end": False})
    await settle(api, app)
    assert (await api.get(f"/v1/customers/{customer}/access"))["state"] == "revoked"

    clock.advance(timedelta(days=3))
    await api.post("/v1/subscriptions", {"customer": customer, "price": "basic_monthly"})
    await settle(api, app)

    access = await api.get(f"/v1/customers/{customer}/access")
    assert (access["state"], access["plan"]) == ("active", "basic")
    members = {m["email"]: m["role"] for m in (await api.get(f"/v1/customers/{customer}/members"))["data"]}
    assert members == {"owner@back.example": "owner", "ed@back.example": "viewer"}  # Basic has no editor
    entitlements = await api.get(f"/v1/entitlements/{customer}")
    assert entitlements["plan"] == "basic"
    read = await api.post(
        "/v1/check",
        {"customer": customer, "user": editor["user"], "resource": "projects", "action": "read"},
        expect=200,
    )
    assert (read["allowed"], read["reason"], read["role"], read["plan"]) == (
        True,
        "allowed",
        "viewer",
        "basic",
    )
    token = await api.post("/v1/tokens", {"customer": customer, "user": editor["user"]})
    assert (token["roles"], token["plan"]) == (["viewer"], "basic")
