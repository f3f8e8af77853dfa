"""The sandbox in the contract suite: the real sandbox served over HTTP (tests/sandbox/harness.py), its
adapter, and real signed webhooks caught by a served receiver. Nothing is recorded: each scenario is what
the sandbox does with its deterministic test methods. Two scenarios need a hand:
- `charge_timeout`: the `card_timeout` method answers after 1.5 s; the scenario's adapter waits 0.3 s;
- `charge_server_error`: a fault injector in front of the served sandbox answers the next API call 503.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from typing import Any

from gateway.payments.port import (
    ChargeRequest,
    ChargeResult,
    DeclineCode,
    MethodType,
    PaymentProvider,
    ProviderEventType,
    RefundRequest,
)
from gateway.payments.providers.sandbox import SandboxProvider
from gateway.sandbox import create_sandbox_app
from tests.conftest import START
from tests.payments.contract.harness import Behaviour, ForgedWebhook, WebhookCase
from tests.sandbox.harness import FAST, Received, Sandbox, sandbox_on

TEST_METHODS: dict[str, str] = {
    "ok": "card_ok",
    "soft_decline": "card_insufficient_funds",
    "hard_decline": "card_lost",
    "timeout": "card_timeout",
}
CLOCK = "clk_contract"

ASGI = Callable[[Any, Any, Any], Awaitable[None]]


class Faults:
    """Sits in front of the served sandbox: while `failing` > 0, API calls are answered 503 (an outage
    between Tiergate and the provider) without reaching it."""

    def __init__(self) -> None:
        self.failing = 0

    def wrap(self, app: ASGI) -> ASGI:
        async def guarded(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and self.failing > 0 and scope["path"].startswith("/v1/"):
                self.failing -= 1
                start = {"type": "http.response.start", "status": 503}
                await send({**start, "headers": [(b"content-type", b"application/json")]})
                body = b'{"error": {"code": "unavailable", "message": "injected outage"}}'
                await send({"type": "http.response.body", "body": body})
                return
            await app(scope, receive, send)

        return guarded


def sandbox_signature(secret: str, body: bytes, *, at: int | None = None) -> str:
    """The sandbox's documented scheme: `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`."""
    timestamp = int(time.time()) if at is None else at
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class SandboxHarness:
    name = "sandbox"
    soft_decline = DeclineCode.INSUFFICIENT_FUNDS
    hard_decline = DeclineCode.LOST_CARD

    def __init__(self, sandbox: Sandbox, faults: Faults) -> None:
        self.sandbox = sandbox
        self.faults = faults
        self.provider: PaymentProvider = sandbox.provider
        self._customer: str | None = None
        self._methods: dict[str, str] = {}
        self._cases: list[WebhookCase] | None = None

    def scenario(self, name: str | None) -> AbstractAsyncContextManager[object]:
        return self._scenario(name)

    @asynccontextmanager
    async def _scenario(self, name: str | None) -> AsyncIterator[object]:
        if name == "charge_timeout":
            self.provider = SandboxProvider(self.sandbox.credentials, timeout_seconds=0.3)
        if name == "charge_server_error":
            self.faults.failing = 1
        try:
            yield self.sandbox
        finally:
            self.provider = self.sandbox.provider
            self.faults.failing = 0

    async def customer(self) -> str:
        if self._customer is None:
            self._customer = await self.sandbox.customer("Contract")
        return self._customer

    async def method(self, behaviour: Behaviour) -> str:
        if behaviour == "unknown":
            return "sbpm_NoSuchMethod000"
        if behaviour not in self._methods:
            self._methods[behaviour] = await self.sandbox.method(
                await self.customer(), TEST_METHODS[behaviour]
            )
        return self._methods[behaviour]

    # --- webhooks: made by driving the sandbox, caught by the served receiver ----------------------------

    async def _charge(self, key: str, method: str, **extra: Any) -> ChargeResult:
        return await self.sandbox.provider.charge(
            ChargeRequest(
                idempotency_key=key,
                provider_customer_id=await self.customer(),
                provider_method_id=method,
                amount=2000,
                currency="EUR",
                description="Invoice TG-2025-0001",
                metadata={"invoice": "in_contract", "payment": "pay_contract"},
                **extra,
            )
        )

    async def webhook_cases(self) -> list[WebhookCase]:
        if self._cases is not None:
            return self._cases
        sandbox, customer = self.sandbox, await self.customer()
        before = len(sandbox.receiver.received)
        ok = await self._charge("webhook:ok", await self.method("ok"))
        failed = await self._charge("webhook:soft", await self.method("soft_decline"))
        refund = await sandbox.provider.refund(
            RefundRequest(
                idempotency_key="webhook:refund",
                provider_payment_id=ok.provider_payment_id,
                amount=500,
                currency="EUR",
            )
        )
        sepa = await self._charge(
            "webhook:sepa", await sandbox.method(customer, "sepa_chargeback"), at=START, clock_ref=CLOCK
        )
        await sandbox.provider.advance_clock(CLOCK, START + timedelta(days=3))  # settles
        await sandbox.provider.advance_clock(CLOCK, START + timedelta(days=12))  # charged back
        session = await sandbox.provider.create_setup_session(
            provider_customer_id=customer,
            return_url=f"{sandbox.receiver.url}/return",
            method_types=(MethodType.CARD,),
            idempotency_key="webhook:setup",
            currency="EUR",
        )
        page = await sandbox.http.post(
            session.url,
            content="test_method=card_updatable",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert page.status_code == 303, page.text
        received = (await sandbox.receiver.wait_for(before + 6))[before:]

        def case(kind: str, found: Received, **expected: Any) -> WebhookCase:
            dotted = {key.replace("__", "."): value for key, value in expected.items()}
            return WebhookCase(kind, found.body, found.headers, ProviderEventType(kind), dotted)

        def arrived(kind: str, object_id: str) -> Received:
            import json

            for item in received:
                event = json.loads(item.body)
                if event["type"] == kind and event["data"]["object"]["id"] == object_id:
                    return item
            raise AssertionError(
                f"no {kind} webhook for {object_id}: {[json.loads(r.body)['type'] for r in received]}"
            )

        self._cases = [
            case(
                "payment.succeeded",
                arrived("payment.succeeded", ok.provider_payment_id),
                provider_customer_id=customer,
                payment__provider_payment_id=ok.provider_payment_id,
                payment__amount=2000,
                payment__currency="EUR",
                payment__decline_code=None,
            ),
            case(
                "payment.failed",
                arrived("payment.failed", failed.provider_payment_id),
                payment__provider_payment_id=failed.provider_payment_id,
                payment__decline_code=DeclineCode.INSUFFICIENT_FUNDS,
            ),
            case(
                "refund.succeeded",
                arrived("refund.succeeded", refund.provider_refund_id),
                refund__provider_refund_id=refund.provider_refund_id,
                refund__amount=500,
                refund__currency="EUR",
            ),
            case(
                "payment.charged_back",
                arrived("payment.charged_back", sepa.provider_payment_id),
                payment__provider_payment_id=sepa.provider_payment_id,
                payment__amount=2000,
            ),
            case(
                "payment_method.attached",
                next(r for r in received if b'"payment_method.attached"' in r.body),
                setup_session_id=session.provider_session_id,
                provider_customer_id=customer,
                method__brand="mastercard",
                method__last4="4444",
            ),
        ]
        return self._cases

    async def forged_webhooks(self) -> list[ForgedWebhook]:
        real = (await self.webhook_cases())[0]
        secret = self.sandbox.credentials["webhook_secret"]
        tampered = real.body.replace(b'"amount": 2000', b'"amount": 1', 1).replace(
            b'"amount":2000', b'"amount":1', 1
        )
        assert tampered != real.body
        now = int(time.time())
        return [
            ForgedWebhook("no signature", real.body, {}),
            ForgedWebhook(
                "signed with another secret",
                real.body,
                {"Sandbox-Signature": sandbox_signature("whsec_x", real.body)},
            ),
            ForgedWebhook(
                "body changed after signing",
                tampered,
                {"Sandbox-Signature": sandbox_signature(secret, real.body, at=now)},
            ),
            ForgedWebhook(
                "replayed an hour later",
                real.body,
                {"Sandbox-Signature": sandbox_signature(secret, real.body, at=now - 3600)},
            ),
        ]


@asynccontextmanager
async def sandbox_harness() -> AsyncIterator[SandboxHarness]:
    """The sandbox served for real (in memory, fast delays) behind a fault injector."""
    faults = Faults()

    def app(clock: Any) -> ASGI:
        return faults.wrap(create_sandbox_app(":memory:", clock=clock, config=FAST))

    async with sandbox_on(app, timeout_seconds=5.0) as sandbox:
        yield SandboxHarness(sandbox, faults)
