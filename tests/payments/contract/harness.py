"""One harness per provider adapter: what the contract suite needs to drive it.

The suite (`test_contract_provider.py`) is written once against `Harness`; each provider supplies:
- `provider`: the adapter, built the way the registry builds it (`Adapter(credentials, timeout_seconds=…)`);
- `scenario(name)`: the provider's side of one story. Recorded providers (Stripe, Mollie) replay
  `recordings/<provider>/<name>.json` and assert every outgoing request; a served provider (the sandbox)
  needs nothing (it is the real thing) and returns a no-op context;
- `customer()` / `method(behaviour)`: a provider customer and a saved method that behaves as asked
  (`ok`, `soft_decline`, `hard_decline`, `timeout`);
- the webhooks it can send, signed with its own scheme, and forged ones it must refuse.

Adding a provider = one more harness class + its `HARNESSES` entry (see `conftest.py`).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import stripe

from gateway.payments.port import DeclineCode, PaymentProvider, ProviderEventType
from gateway.payments.providers.mollie import MollieProvider
from gateway.payments.providers.stripe import StripeProvider
from tests.payments.contract.replay import RECORDINGS, Recording, replay_httpx, replay_requests

Behaviour = Literal["ok", "soft_decline", "hard_decline", "timeout", "unknown"]


@dataclass(frozen=True)
class WebhookCase:
    """One inbound webhook and what the adapter must make of it. `expected` maps dotted attribute paths
    of the completed ProviderEvent to values (`"payment.decline_code": DeclineCode.INSUFFICIENT_FUNDS`)."""

    name: str
    body: bytes
    headers: dict[str, str]
    type: ProviderEventType
    expected: dict[str, Any] = field(default_factory=dict)
    scenario: str | None = None  # recorded HTTP that completing the event needs (Mollie fetches the payment)


@dataclass(frozen=True)
class ForgedWebhook:
    name: str
    body: bytes
    headers: dict[str, str]
    scenario: str | None = None


class Harness(Protocol):
    name: str
    provider: PaymentProvider
    soft_decline: DeclineCode  # what `method("soft_decline")` is declined with
    hard_decline: DeclineCode

    def scenario(self, name: str | None) -> AbstractAsyncContextManager[object]: ...

    async def customer(self) -> str: ...

    async def method(self, behaviour: Behaviour) -> str: ...

    async def webhook_cases(self) -> list[WebhookCase]: ...

    async def forged_webhooks(self) -> list[ForgedWebhook]: ...


# --- Stripe ------------------------------------------------------------------------------------------------

STRIPE_SECRET_KEY = "sk_test_51ContractTiergate0000000000000000"
STRIPE_WEBHOOK_SECRET = "whsec_contract_0123456789abcdef0123456789abcdef"


def stripe_signature(payload: bytes, secret: str, *, at: int | None = None) -> str:
    """A `Stripe-Signature` header made the documented way, with the SDK's own HMAC helper:
    `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<payload>")>`."""
    timestamp = int(time.time()) if at is None else at
    signed = f"{timestamp}.{payload.decode()}"
    return f"t={timestamp},v1={stripe.WebhookSignature._compute_signature(signed, secret)}"


class StripeHarness:
    name = "stripe"
    soft_decline = DeclineCode.INSUFFICIENT_FUNDS
    hard_decline = DeclineCode.LOST_CARD
    METHODS: dict[str, str] = {
        "ok": "pm_1MqLiJLkdIwHu7ixUEgbFdYF",
        "soft_decline": "pm_1QdeclInsufficientFunds0",
        "hard_decline": "pm_1QdeclLostCard000000000",
        "timeout": "pm_1MqLiJLkdIwHu7ixUEgbFdYF",
        "unknown": "pm_1NoSuchMethod000000000",
    }

    def __init__(self) -> None:
        self.provider = StripeProvider(
            {"secret_key": STRIPE_SECRET_KEY, "webhook_secret": STRIPE_WEBHOOK_SECRET}, timeout_seconds=5.0
        )

    def scenario(self, name: str | None) -> AbstractAsyncContextManager[object]:
        return replay_httpx(Recording.load("stripe", name))

    async def customer(self) -> str:
        return "cus_NffrFeUfNV2Hib"

    async def method(self, behaviour: Behaviour) -> str:
        return self.METHODS[behaviour]

    def _event(self, kind: str) -> bytes:
        return (RECORDINGS / "stripe" / "webhooks" / f"{kind}.json").read_bytes()

    def signed(self, kind: str) -> tuple[bytes, dict[str, str]]:
        body = self._event(kind)
        return body, {"Stripe-Signature": stripe_signature(body, STRIPE_WEBHOOK_SECRET)}

    async def webhook_cases(self) -> list[WebhookCase]:
        def case(
            kind: str, type_: ProviderEventType, scenario: str | None = None, **expected: Any
        ) -> WebhookCase:
            body, headers = self.signed(kind)
            return WebhookCase(kind, body, headers, type_, _dotted(expected), scenario)

        return [
            case(
                "payment_intent.succeeded",
                ProviderEventType.PAYMENT_SUCCEEDED,
                provider_event_id="evt_3MtwBwLkdIwHu7ix0TPpyq5N",
                provider_customer_id="cus_NffrFeUfNV2Hib",
                payment__provider_payment_id="pi_3MtwBwLkdIwHu7ix28a3tqPa",
                payment__amount=2000,
                payment__currency="EUR",
                payment__decline_code=None,
            ),
            case(
                "payment_intent.payment_failed",
                ProviderEventType.PAYMENT_FAILED,
                payment__provider_payment_id="pi_3QsoftDeclineInsuffFunds",
                payment__decline_code=DeclineCode.INSUFFICIENT_FUNDS,
                payment__decline_message="Your card has insufficient funds.",
            ),
            case(
                "payment_intent.requires_action",
                ProviderEventType.PAYMENT_REQUIRES_ACTION,
                payment__provider_payment_id="pi_3Q3dsChallengeRequired0",
                payment__action_url=(
                    "https://hooks.stripe.com/3d_secure_2/hosted?merchant=acct_1Contract&payment_intent="
                    "pi_3Q3dsChallengeRequired0&payment_intent_client_secret=pi_3Q3dsChallengeRequired0_secret_x"
                    "&publishable_key=pk_test_x&source=payatt_3Q3ds"
                ),
            ),
            case(
                "refund.updated",
                ProviderEventType.REFUND_SUCCEEDED,
                refund__provider_refund_id="re_3RrefundPartial00000000",
                refund__amount=800,
                refund__currency="EUR",
            ),
            case(
                "charge.refunded",
                ProviderEventType.REFUND_SUCCEEDED,
                refund__provider_refund_id="re_3RrefundRest00000000000",
                refund__amount=1200,
            ),
            case(
                "charge.dispute.created",
                ProviderEventType.PAYMENT_CHARGED_BACK,
                payment__provider_payment_id="pi_3MtwBwLkdIwHu7ix28a3tqPa",
                payment__amount=2000,
            ),
            case(
                "checkout.session.completed",
                ProviderEventType.METHOD_ATTACHED,
                "webhook_checkout_completed",
                setup_session_id="cs_test_c1WTzjNvNQhZbS8eNmUMsfZ4PSfbnnASYdSMfAhn8nY7ZkW3tQWmDHB0cw",
                provider_customer_id="cus_NffrFeUfNV2Hib",
                method__provider_method_id="pm_1QsavedByCheckout0000000",
                method__brand="mastercard",
                method__last4="4444",
                method__exp_month=3,
                method__exp_year=2030,
            ),
            case(
                "setup_intent.succeeded",
                ProviderEventType.METHOD_ATTACHED,
                "webhook_setup_intent",
                method__provider_method_id="pm_1QsavedBySetupIntent000",
                method__last4="1881",
            ),
            case(
                "payment_method.automatically_updated",
                ProviderEventType.METHOD_UPDATED,
                method__provider_method_id="pm_1MqLiJLkdIwHu7ixUEgbFdYF",
                method__exp_month=8,
                method__exp_year=2030,
            ),
            case(
                "customer.source.expiring",
                ProviderEventType.METHOD_EXPIRING,
                provider_customer_id="cus_NffrFeUfNV2Hib",
                method__provider_method_id="card_1QexpiringCard0000000",
                method__brand="visa",
                method__last4="0341",
                method__exp_month=1,
                method__exp_year=2026,
            ),
            case(
                "payment_method.detached",
                ProviderEventType.METHOD_DETACHED,
                method__provider_method_id="pm_1MqLiJLkdIwHu7ixUEgbFdYF",
            ),
        ]

    async def forged_webhooks(self) -> list[ForgedWebhook]:
        body = self._event("payment_intent.succeeded")
        tampered = body.replace(b'"amount": 2000', b'"amount": 1', 1)
        assert tampered != body
        now = int(time.time())
        return [
            ForgedWebhook("no signature", body, {}),
            ForgedWebhook(
                "signed with another secret", body, {"Stripe-Signature": stripe_signature(body, "whsec_x")}
            ),
            ForgedWebhook(
                "body changed after signing",
                tampered,
                {"Stripe-Signature": stripe_signature(body, STRIPE_WEBHOOK_SECRET, at=now)},
            ),
            ForgedWebhook(
                "replayed an hour later (outside the 5-minute tolerance)",
                body,
                {"Stripe-Signature": stripe_signature(body, STRIPE_WEBHOOK_SECRET, at=now - 3600)},
            ),
            ForgedWebhook("garbage header", body, {"Stripe-Signature": "v1=abc"}),
        ]


# --- Mollie ------------------------------------------------------------------------------------------------

MOLLIE_API_KEY = "test_dHar4XY7LxsDOtmnkVtjNVWXLSlXsM"
MOLLIE_WEBHOOK_URL = "https://tiergate.example/v1/payment_providers/ppa_mollie/webhooks"
MOLLIE_CUSTOMER = "cst_8wmqcHMN4U"


class MollieHarness:
    name = "mollie"
    soft_decline = DeclineCode.INSUFFICIENT_FUNDS
    hard_decline = DeclineCode.DO_NOT_HONOR
    METHODS: dict[str, str] = {
        "ok": f"{MOLLIE_CUSTOMER}:mdt_pWUnw6pkBN",
        "soft_decline": f"{MOLLIE_CUSTOMER}:mdt_3Gq7nVk2Lb",
        "hard_decline": f"{MOLLIE_CUSTOMER}:mdt_9rT4xWp8Hc",
        "timeout": f"{MOLLIE_CUSTOMER}:mdt_pWUnw6pkBN",
        "unknown": f"{MOLLIE_CUSTOMER}:mdt_N0SuchMndt",
    }

    def __init__(self) -> None:
        self.provider = MollieProvider(
            {"api_key": MOLLIE_API_KEY, "webhook_url": MOLLIE_WEBHOOK_URL}, timeout_seconds=5.0
        )

    def scenario(self, name: str | None) -> AbstractAsyncContextManager[object]:
        return replay_requests(Recording.load("mollie", name))

    async def customer(self) -> str:
        return MOLLIE_CUSTOMER

    async def method(self, behaviour: Behaviour) -> str:
        return self.METHODS[behaviour]

    @staticmethod
    def ping(payment_id: str) -> tuple[bytes, dict[str, str]]:
        """What Mollie posts: a form with the payment id, nothing else (no signature)."""
        return f"id={payment_id}".encode(), {"Content-Type": "application/x-www-form-urlencoded"}

    async def webhook_cases(self) -> list[WebhookCase]:
        def case(payment_id: str, type_: ProviderEventType, scenario: str, **expected: Any) -> WebhookCase:
            body, headers = self.ping(payment_id)
            return WebhookCase(scenario, body, headers, type_, _dotted(expected), scenario)

        return [
            case(
                "tr_7UhSN1zuXS",
                ProviderEventType.PAYMENT_SUCCEEDED,
                "webhook_paid",
                provider_customer_id=MOLLIE_CUSTOMER,
                payment__provider_payment_id="tr_7UhSN1zuXS",
                payment__amount=2000,
                payment__currency="EUR",
                payment__provider_method_id=f"{MOLLIE_CUSTOMER}:mdt_pWUnw6pkBN",
            ),
            case(
                "tr_S3paF41led",
                ProviderEventType.PAYMENT_FAILED,
                "webhook_failed",
                payment__provider_payment_id="tr_S3paF41led",
                payment__decline_code=DeclineCode.INSUFFICIENT_FUNDS,
                payment__decline_message="Insufficient funds",
            ),
            case(
                "tr_WDqYK6vllg",
                ProviderEventType.METHOD_ATTACHED,
                "webhook_first_paid",
                setup_session_id="tr_WDqYK6vllg",
                provider_customer_id=MOLLIE_CUSTOMER,
                method__provider_method_id=f"{MOLLIE_CUSTOMER}:mdt_h3gAaD5zP",
                method__mandate_reference="TIERGATE-MD13804",
                method__bank="INGBNL2A",
                method__last4="0000",
            ),
            case(
                "tr_R3fundabl3",
                ProviderEventType.REFUND_SUCCEEDED,
                "webhook_refunded",
                refund__provider_refund_id="re_4qqhO89gsT",
                refund__amount=800,
                refund__currency="EUR",
            ),
            case(
                "tr_S3paOkCb4k",
                ProviderEventType.PAYMENT_CHARGED_BACK,
                "webhook_chargeback",
                payment__provider_payment_id="tr_S3paOkCb4k",
                payment__amount=2000,
            ),
            case(
                "tr_Exp1r3dPay",
                ProviderEventType.PAYMENT_CANCELED,
                "webhook_canceled",
                payment__provider_payment_id="tr_Exp1r3dPay",
            ),
        ]

    async def forged_webhooks(self) -> list[ForgedWebhook]:
        return [
            ForgedWebhook("not a payment id", b"id=cst_8wmqcHMN4U", {}),
            ForgedWebhook("two ids", b"id=tr_7UhSN1zuXS&id=tr_S3paF41led", {}),
            ForgedWebhook("JSON instead of a form", json.dumps({"id": "tr_7UhSN1zuXS"}).encode(), {}),
            ForgedWebhook(
                "an id Mollie does not know", *self.ping("tr_F0rg3dXXXX"), scenario="webhook_unknown_id"
            ),
        ]


def _dotted(expected: dict[str, Any]) -> dict[str, Any]:
    return {key.replace("__", "."): value for key, value in expected.items()}


@asynccontextmanager
async def no_recording() -> AsyncIterator[None]:
    """For a served provider: the scenario is whatever the real service does."""
    yield


def recordings_of(provider: str) -> list[Path]:
    return sorted((RECORDINGS / provider).glob("*.json"))
