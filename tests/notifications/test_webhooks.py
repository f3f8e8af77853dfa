"""Outgoing webhooks delivered to a real HTTP receiver on a loopback port, which verifies every
signature with `standardwebhooks.Webhook(secret).verify(...)`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from litestar import Litestar

from gateway.config import Settings
from gateway.kernel.clock import FrozenClock
from tests.conftest import Api
from tests.notifications.receiver import Receiver, ReceiverServer
from tests.provisioning.helpers import manual_settings, settle


@pytest.fixture
def settings() -> Settings:
    # The receiver listens on http://127.0.0.1: the outbound guard refuses that unless allowed.
    return manual_settings(
        webhook_backoff_seconds=30.0,
        webhook_max_attempts=4,
        webhook_allow_http=True,
        webhook_allow_private_targets=True,
    )


async def events(api: Api, customer: str, type_: str) -> list[dict[str, Any]]:
    return list((await api.get("/v1/events", params={"aggregate": customer, "type": type_}))["data"])


async def deliveries(api: Api, endpoint: str, **params: Any) -> list[dict[str, Any]]:
    return list((await api.get(f"/v1/webhook_endpoints/{endpoint}/deliveries", params=params))["data"])


async def test_fails_twice_then_delivered_once_with_backoff(
    api: Api, app: Litestar, clock: FrozenClock, demo: Any
) -> None:
    receiver = Receiver(fail_first=2)
    with ReceiverServer(receiver) as server:
        endpoint = await api.post(
            "/v1/webhook_endpoints", {"url": server.url, "enabled_events": ["customer.provisioned"]}
        )
        assert endpoint["secret"].startswith("whsec_")
        receiver.secret = endpoint["secret"]
        body = {"name": "Hooked", "email": "a@hooked.example", "currency": "USD"}
        customer = (await api.post("/v1/customers", body))["id"]
        await api.post("/v1/subscriptions", {"customer": customer, "price": "basic_monthly"})

        await settle(api, app)  # relay + first attempt: 500
        [first] = await deliveries(api, endpoint["id"])
        assert (first["status"], first["attempts"], first["last_status_code"]) == ("pending", 1, 500)
        assert first["next_attempt_at"] == "2026-01-01T00:00:30Z"
        assert first["event_type"] == "customer.provisioned"

        await settle(api, app)  # not due yet: no attempt
        assert len(receiver.received) == 1

        clock.advance(timedelta(seconds=30))
        await settle(api, app)  # second attempt: 500, next in 60 s
        [second] = await deliveries(api, endpoint["id"])
        assert (second["attempts"], second["next_attempt_at"]) == (2, "2026-01-01T00:01:30Z")

        clock.advance(timedelta(seconds=60))
        await settle(api, app)  # third attempt: 204
        [done] = await deliveries(api, endpoint["id"])
        assert (done["status"], done["attempts"], done["last_status_code"]) == ("delivered", 3, 204)
        assert done["delivered_at"] == "2026-01-01T00:01:30Z" and done["next_attempt_at"] is None

        clock.advance(timedelta(hours=1))
        await settle(api, app)
        assert len(receiver.received) == 3, "a delivered webhook is not sent again"

    [event] = await events(api, customer, "customer.provisioned")
    assert [r.webhook_id for r in receiver.received] == [event["id"]] * 3
    assert all(r.verified for r in receiver.received)
    assert [r.status for r in receiver.received] == [500, 500, 204]
    payload = receiver.received[-1].payload
    assert (payload["type"], payload["customer"], payload["data"]["plan"]) == (
        "customer.provisioned",
        customer,
        "basic",
    )
    # A body altered in transit no longer verifies.
    from standardwebhooks import Webhook
    from standardwebhooks.webhooks import WebhookVerificationError

    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint["secret"]).verify(receiver.received[-1].body + b" ", receiver.received[-1].headers)


async def test_gives_up_after_max_attempts(api: Api, app: Litestar, clock: FrozenClock, demo: Any) -> None:
    receiver = Receiver(fail_first=99)
    with ReceiverServer(receiver) as server:
        endpoint = await api.post(
            "/v1/webhook_endpoints", {"url": server.url, "enabled_events": ["member.*"]}
        )
        receiver.secret = endpoint["secret"]
        customer = (await api.post("/v1/customers", {"name": "Down"}))["id"]
        await api.post(f"/v1/customers/{customer}/members", {"email": "x@down.example", "role": "viewer"})
        for step in (0, 30, 60, 120, 240):
            clock.advance(timedelta(seconds=step))
            await settle(api, app)
    [failed] = await deliveries(api, endpoint["id"])
    assert (failed["status"], failed["attempts"], failed["next_attempt_at"]) == ("failed", 4, None)
    assert failed["event_type"] == "member.added"
    assert await deliveries(api, endpoint["id"], status="delivered") == []
    assert len(receiver.received) == 4


async def test_event_selection_tenancy_and_lifecycle_events(
    api: Api, app: Litestar, clock: FrozenClock, demo: Any
) -> None:
    receiver = Receiver()
    with ReceiverServer(receiver) as server:
        mine = (
            await api.post("/v1/customers", {"name": "Mine", "email": "b@mine.example", "currency": "USD"})
        )["id"]
        body = {"name": "Theirs", "email": "b@theirs.example", "currency": "USD"}
        theirs = (await api.post("/v1/customers", body))["id"]
        key = await api.post(
            "/v1/api_keys", {"name": "hooks", "scopes": ["webhooks:write"], "customer": mine}
        )
        tenant = api.as_key(key["secret"])
        platform = await api.post("/v1/webhook_endpoints", {"url": server.url, "enabled_events": ["*"]})
        scoped = await tenant.post(
            "/v1/webhook_endpoints", {"url": server.url + "/mine", "enabled_events": ["access.*", "member.*"]}
        )
        off = await api.post(
            "/v1/webhook_endpoints", {"url": server.url + "/off", "enabled_events": ["*"], "enabled": False}
        )
        assert scoped["customer"] == mine
        receiver.secret = platform["secret"]  # deliveries to the scoped endpoint fail verification: fine
        sub = (await api.post("/v1/subscriptions", {"customer": mine, "price": "basic_monthly"}))["id"]
        await api.post("/v1/subscriptions", {"customer": theirs, "price": "basic_monthly"})
        await settle(api, app)
        # The tenant key sees its endpoint only; the platform one is "not found" to it.
        listed = await tenant.get("/v1/webhook_endpoints")
        assert [e["id"] for e in listed["data"]] == [scoped["id"]] and listed["data"][0]["secret"] is None
        await tenant.get(f"/v1/webhook_endpoints/{platform['id']}", expect=404)
        await tenant.get(f"/v1/webhook_endpoints/{platform['id']}/deliveries", expect=404)
        clock.advance(timedelta(seconds=5))
        await api.post(f"/v1/subscriptions/{sub}/cancel", {"at_period_end": False})
        await settle(api, app)

    platform_types = sorted({d["event_type"] for d in await deliveries(api, platform["id"], limit=100)})
    # Billing's invoice.* events ride along (the endpoint takes "*"); the rest is exactly this:
    assert "invoice.created" in platform_types
    assert [t for t in platform_types if not t.startswith("invoice.")] == [
        "access.revoked",
        "customer.provisioned",
        "member.added",
        "subscription.canceled",
        "subscription.created",
    ]
    scoped_log = await deliveries(api, scoped["id"], limit=100)
    assert sorted(d["event_type"] for d in scoped_log) == ["access.revoked", "member.added"]
    assert await deliveries(api, off["id"]) == []
    # Canceling disabled the tenant's key too.
    await tenant.get("/v1/webhook_endpoints", expect=401)


async def test_endpoint_crud_and_validation(api: Api, app: Litestar) -> None:
    bad = await api.post(
        "/v1/webhook_endpoints", {"url": "https://example.com/h", "enabled_events": ["nope"]}, expect=422
    )
    assert bad["field"] == "enabled_events"
    await api.post("/v1/webhook_endpoints", {"url": "ftp://example.com", "enabled_events": ["*"]}, expect=422)
    await api.post(
        "/v1/webhook_endpoints", {"url": "https://u:p@example.com/", "enabled_events": ["*"]}, expect=422
    )
    await api.post("/v1/webhook_endpoints", {"url": "https://example.com", "enabled_events": []}, expect=422)
    await api.post(
        "/v1/webhook_endpoints",
        {"url": "https://example.com", "enabled_events": ["*"], "extra": 1},
        expect=422,
    )
    assert (await api.get("/v1/webhook_endpoints"))["data"] == []

    created = await api.post(
        "/v1/webhook_endpoints",
        {
            "url": "https://example.com/h",
            "enabled_events": ["subscription.*", "invoice.paid"],
            "description": "d",
        },
    )
    assert created["enabled_events"] == ["invoice.paid", "subscription.*"]
    fetched = await api.get(f"/v1/webhook_endpoints/{created['id']}")
    assert fetched["secret"] == created["secret"]
    updated = await api.patch(
        f"/v1/webhook_endpoints/{created['id']}", {"enabled": False, "description": None}
    )
    assert (updated["enabled"], updated["description"], updated["secret"]) == (False, None, None)
    await api.delete(f"/v1/webhook_endpoints/{created['id']}")
    await api.get(f"/v1/webhook_endpoints/{created['id']}", expect=404)
    reader = api.as_key(
        (await api.post("/v1/api_keys", {"name": "r", "scopes": ["webhooks:read"]}))["secret"]
    )
    assert (
        await reader.post(
            "/v1/webhook_endpoints", {"url": "https://e.com", "enabled_events": ["*"]}, expect=403
        )
    )["code"] == "missing_scope"
