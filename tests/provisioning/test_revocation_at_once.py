"""Issue 18 "Revocation": a tenant API key stops working as soon as deprovisioning commits, on the
replica that ran it (even with requests in flight during the cancel) and on another replica within its
revocation list's poll; and the answers about a revoked tenant say what is true.

The replicas are served by uvicorn in the test's event loop (`tests/served.py`): requests really run
concurrently inside the app, and a test can hold one mid-flight."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import Any

import pytest

from gateway.config import Settings
from gateway.identity.service import ApiKeyService
from gateway.kernel.clock import FrozenClock
from tests.conftest import Api
from tests.entitlements.test_check_api import synced
from tests.provisioning.helpers import manual_settings
from tests.served import replica

__all__ = ["replica"]
Replica = Callable[..., AbstractAsyncContextManager[Api]]


@pytest.fixture
def settings() -> Settings:
    return manual_settings()


async def settle(api: Api) -> None:
    app: Any = api.app  # type: ignore[attr-defined]
    await app.state.relay.tick()
    await app.state.revocations.sync()
    await synced(api)


async def tenant_with_key(api: Api) -> tuple[str, str, str]:
    """A Basic tenant (provisioned: its owner holds the seat) and a tenant key: (customer, sub, secret)."""
    customer = (
        await api.post("/v1/customers", {"name": "Rev", "email": "owner@rev.example", "currency": "USD"})
    )["id"]
    sub = (await api.post("/v1/subscriptions", {"customer": customer, "price": "basic_monthly"}))["id"]
    await settle(api)
    key = await api.post("/v1/api_keys", {"name": "app", "scopes": ["customers:read"], "customer": customer})
    return customer, sub, key["secret"]


async def status_with(api: Api, secret: str, customer: str) -> int:
    answer = await api.client.get(f"/v1/customers/{customer}", headers={"Authorization": f"Bearer {secret}"})
    return answer.status_code


async def test_a_fill_that_read_the_key_before_the_revocation_committed_is_not_cached(
    replica: Replica, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with replica() as api:
        customer, sub, secret = await tenant_with_key(api)
        assert await status_with(api, secret, customer) == 200
        clock.advance(timedelta(seconds=6))  # the cached answer expired: the next request reads the row

        read_done, release = asyncio.Event(), asyncio.Event()
        original = ApiKeyService.authenticate

        async def held(self: ApiKeyService, given: str) -> Any:
            principal = await original(self, given)
            if given == secret and not release.is_set():
                read_done.set()
                await release.wait()  # the row was read as active; the revocation commits meanwhile
            return principal

        monkeypatch.setattr(ApiKeyService, "authenticate", held)
        in_flight = asyncio.create_task(status_with(api, secret, customer))
        await read_done.wait()
        try:
            await api.post(f"/v1/subscriptions/{sub}/cancel", {"at_period_end": False})
            await api.app.state.relay.tick()  # type: ignore[attr-defined]  # keys disabled, committed
        finally:
            release.set()
        assert await in_flight == 200  # it read the key before the revocation: its own answer stands
        # ... but it must not have put the active key back into the cache.
        assert await status_with(api, secret, customer) == 401


async def test_no_request_is_accepted_after_the_revocation_commits_under_concurrent_load(
    replica: Replica,
) -> None:
    async with replica() as api:
        customer, sub, secret = await tenant_with_key(api)
        committed = False
        results: list[tuple[bool, int]] = []

        async def hammer() -> None:
            for _ in range(400):
                started_after = committed
                results.append((started_after, await status_with(api, secret, customer)))
                if started_after and sum(1 for after, _ in results if after) >= 60:
                    return

        workers = [asyncio.create_task(hammer()) for _ in range(4)]
        await asyncio.sleep(0.05)
        await api.post(f"/v1/subscriptions/{sub}/cancel", {"at_period_end": False})
        await api.app.state.relay.tick()  # type: ignore[attr-defined]
        committed = True
        await asyncio.gather(*workers)

        before = [status for after, status in results if not after]
        after = [status for after, status in results if after]
        assert 200 in before, "the key was in use while the cancel ran"
        assert len(after) >= 60 and set(after) == {401}, after


async def test_another_replica_drops_the_key_within_its_revocation_poll(
    replica: Replica, clock: FrozenClock
) -> None:
    async with replica() as a, replica(manual_settings(entitlements_poll_seconds=0.1)) as b:
        customer, sub, secret = await tenant_with_key(a)
        assert await status_with(b, secret, customer) == 200  # cached on B
        await a.post(f"/v1/subscriptions/{sub}/cancel", {"at_period_end": False})
        await a.app.state.relay.tick()  # type: ignore[attr-defined]  # A deprovisions; B only reads
        started = time.monotonic()
        statuses = []
        while time.monotonic() - started < 5:
            statuses.append(await status_with(b, secret, customer))
            if statuses[-1] == 401:
                break
            await asyncio.sleep(0.02)
        elapsed = time.monotonic() - started
        # The frozen clock did not move: B's cache entry did not expire, B dropped it on reading the
        # revocation from the outbox, within a few of its 0.1 s polls.
        assert statuses[-1] == 401 and elapsed < 2.0, (statuses, elapsed)
        assert await status_with(b, secret, customer) == 401


async def test_a_token_for_a_member_of_a_revoked_tenant_is_refused_as_revoked(replica: Replica) -> None:
    async with replica() as api:
        customer, sub, _ = await tenant_with_key(api)
        owner = (await api.get(f"/v1/customers/{customer}/members"))["data"][0]["user"]
        await api.post(f"/v1/subscriptions/{sub}/cancel", {"at_period_end": False})
        await settle(api)
        problem = await api.post("/v1/tokens", {"customer": customer, "user": owner}, expect=403)
        assert problem["code"] == "access_revoked"
        assert (await api.get(f"/v1/customers/{customer}/members"))["data"][0]["user"] == owner  # kept
