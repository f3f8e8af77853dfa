"""Embedded mode: the sandbox served under /sandbox of Tiergate's own app (one process, one port), still
another service: its own keys, errors and idempotency, outside Tiergate's OpenAPI document."""

from __future__ import annotations

from sqlalchemy import func, select

from gateway.db.idempotency import IdempotencyKey
from gateway.db.session import Database
from gateway.payments.port import ChargeRequest, ChargeStatus, ProviderEventType
from gateway.payments.providers.sandbox import SandboxProvider
from tests.conftest import START, Api
from tests.sandbox.harness import Receiver, open_account, served
from tests.served import replica, served_api

__all__ = ["replica", "served_api"]


async def test_the_sandbox_mounted_under_sandbox_takes_charges_over_http(
    served_api: Api, db: Database
) -> None:
    base = str(served_api.client.base_url).rstrip("/") + "/sandbox"
    receiver = Receiver()
    async with served(receiver.asgi) as receiver_url:
        receiver.url = receiver_url
        credentials = await open_account(base, f"{receiver_url}/webhooks/sandbox")
        provider = SandboxProvider(credentials, timeout_seconds=5)
        customer = await provider.create_customer(
            customer_id="cus_1", name="Acme", email="billing@acme.example", idempotency_key="customer:cus_1"
        )
        headers = {"Authorization": f"Bearer {credentials['api_key']}", "Idempotency-Key": "pm:1"}
        created = await served_api.client.post(
            "/sandbox/v1/payment_methods",
            json={"customer": customer, "test_method": "card_3ds"},
            headers=headers,
        )
        assert created.status_code == 201, created.text
        method = created.json()["id"]
        request = ChargeRequest(
            idempotency_key="invoice:in_1:attempt:1",
            provider_customer_id=customer,
            provider_method_id=method,
            amount=990,
            currency="USD",
            description="Basic plan",
        )
        payment = await provider.charge(request)
        assert payment.status is ChargeStatus.REQUIRES_ACTION
        # Hosted pages' links carry the mount prefix.
        assert payment.action_url == f"{base}/challenge/{payment.provider_payment_id}"
        page = await served_api.client.get(f"/sandbox/challenge/{payment.provider_payment_id}")
        assert page.status_code == 200 and "Complete authentication" in page.text
        assert await provider.charge(request) == payment  # the sandbox's own idempotency
        [webhook] = await receiver.wait_for(1)
        event = provider.parse_webhook(webhook.body, webhook.headers)
        assert event.type is ProviderEventType.PAYMENT_REQUIRES_ACTION
        # The mounted sandbox's own clock is the app's (frozen in tests).
        assert event.occurred_at == START

    # Tiergate's Idempotency-Key store never saw the sandbox's calls (they are another service's).
    async with db.unit_of_work() as session:
        assert await session.scalar(select(func.count()).select_from(IdempotencyKey)) == 0
    # Its errors are its own, and its routes are not Tiergate's API.
    refused = await served_api.client.post("/sandbox/v1/payments", json={})
    assert (refused.status_code, refused.json()["error"]["code"]) == (401, "unauthenticated")
    document = (await served_api.client.get("/docs/openapi.json")).json()
    assert not [path for path in document["paths"] if path.startswith("/sandbox")]
