"""Stripe contract tests beyond the shared suite: the vocabulary translation tables, the customer-present
3-D Secure path, version ordering and the webhook scheme, on recorded HTTP."""

from __future__ import annotations

import json

import pytest
import stripe
from hypothesis import given
from hypothesis import strategies as st

from gateway.payments.port import (
    HARD_DECLINES,
    ChargeRequest,
    ChargeStatus,
    DeclineCode,
    InvalidWebhookSignature,
    ProviderEventType,
    ProviderRejected,
    ProviderUnavailable,
)
from gateway.payments.providers.stripe import PAYMENT_STATUSES, charge_result, decline_code
from tests.payments.contract.harness import STRIPE_WEBHOOK_SECRET, StripeHarness, stripe_signature

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning")


def request(attempt: int, method: str = "pm_1MqLiJLkdIwHu7ixUEgbFdYF", **extra: object) -> ChargeRequest:
    return ChargeRequest(
        idempotency_key=f"invoice:in_contract:attempt:{attempt}",
        provider_customer_id="cus_NffrFeUfNV2Hib",
        provider_method_id=method,
        amount=2000,
        currency="EUR",
        description="Invoice TG-2025-0001",
        metadata={"invoice": "in_contract", "payment": "pay_contract"},
        **extra,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ({"code": "card_declined", "decline_code": "insufficient_funds"}, DeclineCode.INSUFFICIENT_FUNDS),
        ({"code": "card_declined", "decline_code": "lost_card"}, DeclineCode.LOST_CARD),
        ({"code": "card_declined", "decline_code": "stolen_card"}, DeclineCode.STOLEN_CARD),
        ({"code": "card_declined", "decline_code": "do_not_honor"}, DeclineCode.DO_NOT_HONOR),
        ({"code": "card_declined", "decline_code": "fraudulent"}, DeclineCode.FRAUDULENT),
        ({"code": "card_declined", "decline_code": "pickup_card"}, DeclineCode.LOST_CARD),
        ({"code": "card_declined", "decline_code": "generic_decline"}, DeclineCode.GENERIC_DECLINE),
        ({"code": "card_declined", "decline_code": "try_again_later"}, DeclineCode.TRY_AGAIN_LATER),
        (
            {"code": "card_declined", "decline_code": "a_code_stripe_adds_next_year"},
            DeclineCode.GENERIC_DECLINE,
        ),
        ({"code": "expired_card"}, DeclineCode.EXPIRED_CARD),
        ({"code": "processing_error"}, DeclineCode.PROCESSING_ERROR),
        ({"code": "incorrect_number"}, DeclineCode.INVALID_ACCOUNT),
        (
            {"code": "authentication_required", "decline_code": "authentication_required"},
            DeclineCode.AUTHENTICATION_REQUIRED,
        ),
        (None, DeclineCode.GENERIC_DECLINE),
    ],
)
def test_decline_codes_map_onto_the_port(error: dict[str, str] | None, expected: DeclineCode) -> None:
    assert decline_code(error) is expected


def test_hard_declines_are_exactly_the_final_ones() -> None:
    hard = {
        decline_code({"code": "card_declined", "decline_code": c})
        for c in ("lost_card", "stolen_card", "do_not_honor", "fraudulent")
    }
    assert hard <= HARD_DECLINES
    soft = {
        decline_code({"code": "card_declined", "decline_code": c})
        for c in (
            "insufficient_funds",
            "processing_error",
            "try_again_later",
            "authentication_required",
            "expired_card",
        )
    }
    assert not soft & HARD_DECLINES


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("succeeded", ChargeStatus.SUCCEEDED),
        ("processing", ChargeStatus.PROCESSING),
        ("requires_action", ChargeStatus.REQUIRES_ACTION),
        ("requires_payment_method", ChargeStatus.FAILED),
        ("canceled", ChargeStatus.CANCELED),
        ("requires_capture", ChargeStatus.PROCESSING),
    ],
)
def test_payment_intent_statuses_map_onto_the_port(status: str, expected: ChargeStatus) -> None:
    assert PAYMENT_STATUSES[status] is expected
    intent = {"id": "pi_1", "status": status, "amount": 500, "currency": "usd", "created": 1764676800}
    assert charge_result(intent, observed_at=None).status is expected


async def test_customer_present_charge_asks_for_3ds_with_a_redirect() -> None:
    harness = StripeHarness()
    async with harness.scenario("charge_on_session_3ds"):  # asserts: no off_session, the return_url sent
        result = await harness.provider.charge(
            request(9, off_session=False, return_url="https://tiergate.example/portal/pay/done")
        )
    assert result.status is ChargeStatus.REQUIRES_ACTION
    assert result.action_url is not None and result.action_url.startswith(
        "https://hooks.stripe.com/3d_secure_2/"
    )
    assert result.decline_code is None


async def test_off_session_charge_needing_authentication_is_a_soft_decline() -> None:
    harness = StripeHarness()
    async with harness.scenario("charge_authentication_required"):
        result = await harness.provider.charge(request(10, method="pm_1Qauth3dsRequired0000000"))
    assert result.status is ChargeStatus.FAILED
    assert result.decline_code is DeclineCode.AUTHENTICATION_REQUIRED
    assert result.provider_payment_id == "pi_3QauthRequiredOffSess00"


async def test_unreachable_stripe_is_provider_unavailable() -> None:
    harness = StripeHarness()
    async with harness.scenario("charge_connection_refused"):
        with pytest.raises(ProviderUnavailable):
            await harness.provider.charge(request(11))


async def test_a_late_older_webhook_has_a_lower_version_than_the_answer() -> None:
    """The API answer is versioned by Stripe's `Date` header, an event by its `created`: a
    `requires_action` event created before the succeeded answer was observed never wins over it."""
    harness = StripeHarness()
    async with harness.scenario("charge_succeeds"):
        answered = await harness.provider.charge(request(1))
    payload = json.loads(harness._event("payment_intent.requires_action"))
    payload["data"]["object"]["id"] = answered.provider_payment_id
    payload["created"] = 1764676801  # 12:00:01, before Stripe answered "succeeded" (Date: 12:00:05)
    body = json.dumps(payload).encode()
    late = harness.provider.parse_webhook(
        body, {"Stripe-Signature": stripe_signature(body, STRIPE_WEBHOOK_SECRET)}
    )
    assert late.payment is not None
    assert late.payment.version < answered.version
    succeeded = harness.provider.parse_webhook(*harness.signed("payment_intent.succeeded"))
    assert succeeded.payment is not None and succeeded.payment.version > answered.version  # created later


def test_the_signature_made_the_documented_way_verifies_with_the_sdk() -> None:
    body, headers = StripeHarness().signed("payment_intent.succeeded")
    assert stripe.WebhookSignature.verify_header(
        body.decode(), headers["Stripe-Signature"], STRIPE_WEBHOOK_SECRET
    )
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(body.decode(), headers["Stripe-Signature"], "whsec_other")


def test_the_signature_header_name_is_case_insensitive() -> None:
    harness = StripeHarness()
    body, headers = harness.signed("payment_intent.succeeded")
    event = harness.provider.parse_webhook(body, {"stripe-signature": headers["Stripe-Signature"]})
    assert event.type is ProviderEventType.PAYMENT_SUCCEEDED


def test_an_event_tiergate_does_not_use_is_refused_as_not_supported_after_verification() -> None:
    harness = StripeHarness()
    with pytest.raises(ProviderRejected) as refused:
        harness.provider.parse_webhook(*harness.signed("customer.created"))
    assert refused.value.code == "event_not_supported"
    body, _ = harness.signed("customer.created")
    with pytest.raises(InvalidWebhookSignature):  # unsigned: the signature is checked first
        harness.provider.parse_webhook(body, {})


@given(
    first=st.integers(min_value=1_600_000_000, max_value=2_000_000_000),
    later_by=st.integers(min_value=1, max_value=10**6),
    a=st.sampled_from(list(ChargeStatus)),
    b=st.sampled_from(list(ChargeStatus)),
)
def test_a_later_second_always_wins_and_within_a_second_the_later_state(
    first: int, later_by: int, a: ChargeStatus, b: ChargeStatus
) -> None:
    def version(at: int, status: ChargeStatus) -> int:
        intent = {
            "id": "pi_1",
            "status": _STRIPE_STATUS[status],
            "amount": 1,
            "currency": "eur",
            "created": 0,
        }
        return charge_result(intent, observed_at=at).version

    assert version(first, a) < version(first + later_by, b)
    assert version(first, ChargeStatus.REQUIRES_ACTION) < version(first, ChargeStatus.SUCCEEDED)
    assert version(first, ChargeStatus.PROCESSING) < version(first, ChargeStatus.FAILED)


_STRIPE_STATUS = {
    ChargeStatus.SUCCEEDED: "succeeded",
    ChargeStatus.PROCESSING: "processing",
    ChargeStatus.REQUIRES_ACTION: "requires_action",
    ChargeStatus.FAILED: "requires_payment_method",
    ChargeStatus.CANCELED: "canceled",
}


async def test_reading_an_unknown_method_is_payment_method_not_found() -> None:
    harness = StripeHarness()
    async with harness.scenario("method_not_found"):
        with pytest.raises(ProviderRejected) as refused:
            await harness.provider.get_method("pm_1NoSuchMethod000000000")
    assert refused.value.code == "payment_method_not_found"
