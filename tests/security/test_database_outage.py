"""Issue 9 "Database outage": once the API-key cache's few seconds are over, an unreachable database
must not turn `/v1/check` into a 500. Known keys are served from the cache for as long as the decision
index may be stale (`entitlements_max_staleness_seconds`); unknown keys get 503 with `Retry-After`."""

from __future__ import annotations

import socket
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from tests.conftest import Api
from tests.entitlements.test_check_api import synced


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once the socket is closed


async def test_known_keys_ride_out_an_outage_within_the_staleness_bound(
    api: Api, db: Database, clock: FrozenClock, demo: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer = (await api.post("/v1/customers", {"name": "Out", "currency": "USD"}))["id"]
    await api.post("/v1/subscriptions", {"customer": customer, "price": "basic_monthly"})
    secret = (
        await api.post("/v1/api_keys", {"name": "app", "scopes": ["check:read"], "customer": customer})
    )["secret"]
    tenant = api.as_key(secret)
    await synced(api)
    body = {"customer": customer, "feature": "reporting_basic"}
    assert (await tenant.post("/v1/check", body, expect=200))["allowed"] is True  # the key is cached

    # The database goes away: every new session gets the driver's "connection refused".
    unreachable = create_async_engine(f"postgresql+asyncpg://nobody@127.0.0.1:{closed_port()}/gone")
    monkeypatch.setattr(db, "sessionmaker", async_sessionmaker(unreachable))
    clock.advance(timedelta(seconds=6))  # past the 5 s cache: the key would be read from the database

    served = await tenant.post("/v1/check", body, expect=200)
    assert (served["allowed"], served["reason"]) == (True, "allowed")

    stranger = await api.client.post(
        "/v1/check", json=body, headers={"Authorization": "Bearer tg_sk_never_seen_by_this_replica_000"}
    )
    assert stranger.status_code == 503
    assert stranger.headers["content-type"].startswith("application/problem+json")
    assert stranger.headers["retry-after"] == "5"
    assert (stranger.json()["code"], stranger.json()["retry_after"]) == ("database_unavailable", 5)

    clock.advance(timedelta(seconds=25))  # 31 s since the key was read: past the 30 s staleness bound
    expired = await tenant.post("/v1/check", body, expect=503)
    assert expired["code"] == "database_unavailable"

    monkeypatch.undo()  # the database is back: the key is read again and works
    await unreachable.dispose()
    assert (await tenant.post("/v1/check", body, expect=200))["allowed"] is True
