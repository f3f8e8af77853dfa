"""Driving the relay by hand: the app's own background relay is off in these tests (`relay_enabled`),
so each step runs exactly one relay pass and the revocation list catches up before we look."""

from __future__ import annotations

from typing import Any

from litestar import Litestar

from gateway.config import Settings
from tests.conftest import ADMIN_KEY, Api
from tests.entitlements.test_check_api import synced


def manual_settings(**overrides: Any) -> Settings:
    return Settings(
        database_url="unused-db-is-injected",
        migrate_on_start=False,
        scheduler_enabled=False,
        bootstrap_api_key=ADMIN_KEY,
        relay_enabled=False,
        **overrides,
    )


async def settle(api: Api, app: Litestar) -> int:
    """Relay every pending event (provisioning, audit, webhooks), then let the index and the
    revocation list catch up with what the relay wrote."""
    # On the app's own event loop: the relay and the revocation list guard their work with asyncio locks
    # that their background tasks also take there; taken from the test's loop as well, a lock could bind
    # to one loop and be released from the other, and the test would wait forever.
    portal = api.client.blocking_portal
    handled: int = portal.call(app.state.relay.tick)
    portal.call(app.state.revocations.sync)
    await synced(api)
    return handled


async def forward(api: Api, token: str, method: str = "GET", uri: str = "/api/projects") -> Any:
    return await api.client.get(
        "/v1/authz/forward",
        headers={"Authorization": f"Bearer {token}", "X-Original-Method": method, "X-Original-URI": uri},
    )


async def token_for(api: Api, customer: str, user: str, expect: int = 201) -> Any:
    body = await api.post("/v1/tokens", {"customer": customer, "user": user}, expect=expect)
    return body["access_token"] if expect == 201 else body
