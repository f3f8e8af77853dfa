"""A second replica that never ran the relay learns of a revocation by tailing the outbox: its own
revocation list refuses the tenant's tokens within its poll interval, from memory."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.config import Settings
from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from tests.conftest import Api
from tests.provisioning.helpers import forward, manual_settings, settle, token_for


@pytest.fixture
def settings() -> Settings:
    return manual_settings()


async def test_other_replica_refuses_after_revocation(
    api: Api, app: Litestar, db: Database, clock: FrozenClock, demo: Any
) -> None:
    customer = (await api.post("/v1/customers", {"name": "R", "email": "o@r.example", "currency": "USD"}))[
        "id"
    ]
    sub = (await api.post("/v1/subscriptions", {"customer": customer, "price": "basic_monthly"}))["id"]
    await settle(api, app)
    owner = (await api.get(f"/v1/customers/{customer}/members"))["data"][0]["user"]
    token = await token_for(api, customer, owner)

    other = create_app(manual_settings(entitlements_poll_seconds=0.1), clock=clock, db=db)
    async with AsyncTestClient(other) as client:
        replica = Api(client, api.key)
        assert (await forward(replica, token)).status_code == 200
        clock.advance(timedelta(seconds=5))
        await api.post(f"/v1/subscriptions/{sub}/pause", {})
        await app.state.relay.tick()  # replica A deprovisions; B only reads the outbox
        for _ in range(100):
            if other.state.revocations.tenant_revoked(customer):
                break
            await asyncio.sleep(0.05)
        refused = await forward(replica, token)
        assert (refused.status_code, refused.headers["x-auth-reason"]) == (401, "token_revoked")

        await api.post(f"/v1/subscriptions/{sub}/resume", {})
        await app.state.relay.tick()
        for _ in range(100):
            if not other.state.revocations.tenant_revoked(customer):
                break
            await asyncio.sleep(0.05)
        assert not other.state.revocations.tenant_revoked(customer)
        assert (await forward(replica, token)).status_code == 401, "tokens from before stay refused"
