"""Issue 18 "Revocation": a token issued before a SCIM `active: false` stays refused after `active: true`.
A deactivation is final for the tokens issued before it; the reactivated user signs in for a new one."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from litestar import Litestar

from gateway.config import Settings
from gateway.kernel.clock import FrozenClock
from tests.conftest import Api
from tests.provisioning.helpers import forward, manual_settings, settle, token_for
from tests.scim.helpers import Scim, scim_tenant


@pytest.fixture
def settings() -> Settings:
    return manual_settings()


async def test_tokens_from_before_a_deactivation_stay_refused_after_reactivation(
    api: Api, app: Litestar, clock: FrozenClock, demo: Any
) -> None:
    customer, secret = await scim_tenant(api, "pro_monthly")
    scim = Scim(api, secret)
    created = await scim.create_user("kim@acme.example")
    await settle(api, app)
    user = (await api.get(f"/v1/customers/{customer}/members"))["data"][0]["user"]
    old_token = await token_for(api, customer, user)
    assert (await forward(api, old_token)).status_code == 200

    clock.advance(timedelta(seconds=5))
    await scim.patch(f"/Users/{created['id']}", {"op": "replace", "path": "active", "value": False})
    await settle(api, app)
    refused = await forward(api, old_token)
    assert (refused.status_code, refused.headers["x-auth-reason"]) == (401, "token_revoked")

    clock.advance(timedelta(seconds=5))
    back = await scim.patch(f"/Users/{created['id']}", {"op": "replace", "path": "active", "value": True})
    assert back["active"] is True
    await settle(api, app)
    still = await forward(api, old_token)
    assert (still.status_code, still.headers["x-auth-reason"]) == (401, "token_revoked")
    new_token = await token_for(api, customer, user)  # a new sign-in gets a new token
    assert (await forward(api, new_token)).status_code == 200
