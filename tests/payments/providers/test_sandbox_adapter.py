"""The sandbox adapter against the sandbox served for real over HTTP: every test method's exact outcome,
idempotency, the timeout that leaves one charge, refusals that charge nothing, refunds, webhooks."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from gateway.payments.port import (
    ChargeRequest,
    ChargeStatus,
    DeclineCode,
    InvalidWebhookSignature,
    MethodType,
    PaymentProvider,
    ProviderEventType,
    ProviderRejected,
    ProviderUnavailable,
    RefundRequest,
    RefundStatus,
)
from gateway.payments.providers.sandbox import SandboxProvider
from tests.conftest import START
from tests.sandbox.harness import Sandbox

OUTCOMES = {
    "card_ok": (ChargeStatus.SUCCEEDED, None),
    "card_insufficient_funds": (ChargeStatus.FAILED, DeclineCode.INSUFFICIENT_FUNDS),
    "card_processing_error": (ChargeStatus.FAILED, DeclineCode.PROCESSING_ERROR),
    "card_try_again_later": (ChargeStatus.FAILED, DeclineCode.TRY_AGAIN_LATER),
    "card_lost": (ChargeStatus.FAILED, DeclineCode.LOST_CARD),
    "card_stolen": (ChargeStatus.FAILED, DeclineCode.STOLEN_CARD),
    "card_do_not_honor": (ChargeStatus.FAILED, DeclineCode.DO_NOT_HONOR),
    "card_expired": (ChargeStatus.FAILED, DeclineCode.EXPIRED_CARD),
    "card_3ds": (ChargeStatus.REQUIRES_ACTION, None),
    "card_async": (ChargeStatus.PROCESSING, None),
    "sepa_ok": (ChargeStatus.PROCESSING, None),
    "sepa_chargeback": (ChargeStatus.PROCESSING, None),
    "card_updatable": (ChargeStatus.SUCCEEDED, None),
    "card_expiring": (ChargeStatus.SUCCEEDED, None),
}


def charge(customer: str, method: str, key: str, amount: int = 2500, **kw: object) -> ChargeRequest:
    return ChargeRequest(
        idempotency_key=key,
        provider_customer_id=customer,
        provider_method_id=method,
        amount=amount,
        currency=str(kw.pop("currency", "EUR")),
        description="Invoice TG-2026-000001",
        metadata={"invoice": "in_1", "payment": "pay_1"},
        **kw,  # type: ignore[arg-type]
    )


def test_the_adapter_is_a_payment_provider() -> None:
    provider: PaymentProvider = SandboxProvider(
        {"base_url": "http://x", "api_key": "k", "webhook_secret": "s"}
    )
    assert provider.kind == "sandbox"
    assert [provider.supports_currency(c) for c in ("EUR", "usd", "GBP", "JPY", "CHF")] == [
        True,
        True,
        True,
        False,
        False,
    ]
    with pytest.raises(ValueError, match="api_key"):
        SandboxProvider({"base_url": "http://x"})


@pytest.mark.parametrize("test_method", sorted(OUTCOMES))
async def test_each_test_method_has_its_exact_outcome_and_decline_code(
    sandbox: Sandbox, test_method: str
) -> None:
    customer = await sandbox.customer()
    method = await sandbox.method(customer, test_method)
    result = await sandbox.provider.charge(charge(customer, method, f"invoice:in_1:attempt:{test_method}"))
    status, decline = OUTCOMES[test_method]
    assert (result.status, result.decline_code) == (status, decline)
    assert (result.amount, result.currency, result.provider_method_id) == (2500, "EUR", method)
    assert result.version == 1
    if status is ChargeStatus.FAILED:
        assert result.decline_message
    if test_method == "card_3ds":
        assert result.action_url == f"{sandbox.base_url}/challenge/{result.provider_payment_id}"
    else:
        assert result.action_url is None
    retrieved = await sandbox.provider.retrieve_payment(result.provider_payment_id)
    assert retrieved == result


async def test_method_details_are_tokens_and_display_data(sandbox: Sandbox) -> None:
    customer = await sandbox.customer()
    card = await sandbox.provider.get_method(
        await sandbox.method(customer, "card_ok", at="2026-01-15T00:00:00Z")
    )
    assert (card.type, card.brand, card.last4, card.exp_month, card.exp_year) == (
        MethodType.CARD,
        "visa",
        "4242",
        12,
        2030,  # saved in 2026 (the sandbox's own clock): valid four years
    )
    sepa = await sandbox.provider.get_method(await sandbox.method(customer, "sepa_ok"))
    assert (sepa.type, sepa.last4, sepa.bank, sepa.exp_year) == (
        MethodType.SEPA_DEBIT,
        "3000",
        "Sandbox Bank",
        None,
    )
    assert sepa.mandate_reference is not None and sepa.mandate_reference.startswith("SBX-MANDATE-")
    with pytest.raises(ProviderRejected) as missing:
        await sandbox.provider.get_method("sbpm_nope")
    assert missing.value.code == "resource_missing"


async def test_the_same_idempotency_key_charges_once_and_answers_the_same_payment(sandbox: Sandbox) -> None:
    customer = await sandbox.customer()
    method = await sandbox.method(customer, "card_ok")
    first = await sandbox.provider.charge(charge(customer, method, "invoice:in_1:attempt:1"))
    again = await sandbox.provider.charge(charge(customer, method, "invoice:in_1:attempt:1", at=START))
    assert again == first
    second_attempt = await sandbox.provider.charge(charge(customer, method, "invoice:in_1:attempt:2"))
    assert second_attempt.provider_payment_id != first.provider_payment_id
    assert [p["id"] for p in await sandbox.payments_of(customer)] == sorted(
        [first.provider_payment_id, second_attempt.provider_payment_id]
    )
    # The same key with another amount is a programming error, never a second charge.
    with pytest.raises(ProviderRejected) as reused:
        await sandbox.provider.charge(charge(customer, method, "invoice:in_1:attempt:1", amount=9999))
    assert reused.value.code == "idempotency_key_reused"
    assert len(await sandbox.payments_of(customer)) == 2


async def test_a_timeout_is_unavailable_and_the_retry_with_the_same_key_finds_the_one_charge(
    sandbox: Sandbox,
) -> None:
    customer = await sandbox.customer()
    method = await sandbox.method(customer, "card_timeout")
    impatient = SandboxProvider(sandbox.credentials, timeout_seconds=0.3)
    with pytest.raises(ProviderUnavailable):
        await impatient.charge(charge(customer, method, "invoice:in_9:attempt:1"))
    # The charge went through at the sandbox although the client heard nothing.
    [payment] = await sandbox.payments_of(customer)
    assert (payment["status"], payment["amount"], payment["metadata"]["invoice"]) == (
        "succeeded",
        2500,
        "in_1",
    )
    # Reconciliation re-sends the same charge with the same key: answered at once, the same payment.
    found = await impatient.charge(charge(customer, method, "invoice:in_9:attempt:1"))
    assert (found.provider_payment_id, found.status) == (payment["id"], ChargeStatus.SUCCEEDED)
    assert (await impatient.retrieve_payment(payment["id"])).status is ChargeStatus.SUCCEEDED
    assert len(await sandbox.payments_of(customer)) == 1
    # ... and the merchant also heard of it by webhook (signed, with the Tiergate ids in metadata).
    received = await sandbox.receiver.wait_for(1)
    event = sandbox.provider.parse_webhook(received[0].body, received[0].headers)
    assert event.type is ProviderEventType.PAYMENT_SUCCEEDED
    assert event.payment is not None and event.payment.provider_payment_id == payment["id"]


async def test_an_unreachable_sandbox_is_unavailable() -> None:
    provider = SandboxProvider(
        {"base_url": "http://127.0.0.1:9", "api_key": "k", "webhook_secret": "s"}, timeout_seconds=1
    )
    with pytest.raises(ProviderUnavailable):
        await provider.retrieve_payment("sbpay_1")


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"currency": "JPY"}, "currency_not_supported"),
        ({"amount": 0}, "amount_too_small"),
        ({"amount": 100_000_000}, "amount_too_large"),
        ({"method": "other_customer"}, "payment_method_not_found"),
        ({"method": "detached"}, "payment_method_detached"),
        ({"customer": "sbcus_unknown"}, "customer_not_found"),
    ],
)
async def test_refused_charges_are_rejected_with_their_code_and_charge_nothing(
    sandbox: Sandbox, change: dict[str, object], code: str
) -> None:
    customer = await sandbox.customer("a")
    method = await sandbox.method(customer, "card_ok")
    if change.get("method") == "other_customer":
        method = await sandbox.method(await sandbox.customer("b"), "card_ok")
    if change.get("method") == "detached":
        await sandbox.provider.detach_method(method)
    request = charge(
        str(change.get("customer", customer)),
        method,
        "invoice:in_1:attempt:1",
        amount=int(change.get("amount", 2500)),  # type: ignore[call-overload]
        currency=change.get("currency", "EUR"),
    )
    with pytest.raises(ProviderRejected) as refused:
        await sandbox.provider.charge(request)
    assert refused.value.code == code
    assert await sandbox.payments_of(customer) == []
    # Nothing was remembered under the key either: a corrected request with it goes through.
    if code not in {"customer_not_found"}:
        good = await sandbox.method(customer, "card_ok")
        ok = await sandbox.provider.charge(charge(customer, good, "invoice:in_1:attempt:1"))
        assert ok.status is ChargeStatus.SUCCEEDED


async def test_refunds_never_exceed_the_payment(sandbox: Sandbox) -> None:
    customer = await sandbox.customer()
    method = await sandbox.method(customer, "card_ok")
    paid = await sandbox.provider.charge(charge(customer, method, "invoice:in_1:attempt:1", amount=5000))

    def refund(key: str, amount: int, currency: str = "EUR") -> RefundRequest:
        return RefundRequest(key, paid.provider_payment_id, amount, currency, reason="requested_by_customer")

    half = await sandbox.provider.refund(refund("payment:p:refund:1", 2500))
    assert (half.status, half.amount, half.currency) == (RefundStatus.SUCCEEDED, 2500, "EUR")
    assert await sandbox.provider.refund(refund("payment:p:refund:1", 2500)) == half  # idempotent
    with pytest.raises(ProviderRejected) as too_much:
        await sandbox.provider.refund(refund("payment:p:refund:2", 2501))
    assert too_much.value.code == "amount_exceeds_refundable"
    rest = await sandbox.provider.refund(refund("payment:p:refund:3", 2500))
    assert rest.amount == 2500
    with pytest.raises(ProviderRejected) as nothing_left:
        await sandbox.provider.refund(refund("payment:p:refund:4", 1))
    assert nothing_left.value.code == "amount_exceeds_refundable"
    payment = await sandbox.get(f"/v1/payments/{paid.provider_payment_id}")
    assert (payment["amount_refunded"], payment["version"]) == (5000, 3)
    # A payment that did not succeed has nothing to refund.
    declined_method = await sandbox.method(customer, "card_lost")
    declined = await sandbox.provider.charge(charge(customer, declined_method, "invoice:in_2:attempt:1"))
    with pytest.raises(ProviderRejected) as not_paid:
        await sandbox.provider.refund(
            RefundRequest("payment:q:refund:1", declined.provider_payment_id, 100, "EUR")
        )
    assert not_paid.value.code == "payment_not_refundable"


async def test_webhooks_are_signed_and_the_adapter_refuses_tampering_and_replays(sandbox: Sandbox) -> None:
    customer = await sandbox.customer()
    method = await sandbox.method(customer, "card_insufficient_funds")
    failed = await sandbox.provider.charge(charge(customer, method, "invoice:in_1:attempt:1"))
    [webhook] = await sandbox.receiver.wait_for(1)
    assert webhook.headers["sandbox-signature"].startswith("t=")
    event = sandbox.provider.parse_webhook(webhook.body, webhook.headers)
    assert event.type is ProviderEventType.PAYMENT_FAILED
    assert event.provider_customer_id == customer
    assert event.payment == failed
    assert event.occurred_at == START  # the sandbox's own clock (frozen in these tests)
    assert event.provider_event_id == json.loads(webhook.body)["id"]

    tampered = webhook.body.replace(b'"amount":2500', b'"amount":1')
    assert tampered != webhook.body
    with pytest.raises(InvalidWebhookSignature, match="does not match"):
        sandbox.provider.parse_webhook(tampered, webhook.headers)
    with pytest.raises(InvalidWebhookSignature, match="no Sandbox-Signature"):
        sandbox.provider.parse_webhook(webhook.body, {"content-type": "application/json"})
    sent_at = int(webhook.headers["sandbox-signature"].split(",")[0].removeprefix("t="))
    for skew, accepted in [(299, True), (301, False), (-301, False)]:
        later = SandboxProvider(sandbox.credentials, wall_time=lambda s=skew: sent_at + s)
        if accepted:
            assert later.parse_webhook(webhook.body, webhook.headers) == event
        else:
            with pytest.raises(InvalidWebhookSignature, match="tolerance"):
                later.parse_webhook(webhook.body, webhook.headers)
    other_secret = SandboxProvider({**sandbox.credentials, "webhook_secret": "whsec_other"})
    with pytest.raises(InvalidWebhookSignature):
        other_secret.parse_webhook(webhook.body, webhook.headers)


async def test_a_failing_receiver_gets_the_webhook_again(sandbox: Sandbox) -> None:
    sandbox.receiver.fail_first = 2
    customer = await sandbox.customer()
    method = await sandbox.method(customer, "card_ok")
    await sandbox.provider.charge(charge(customer, method, "invoice:in_1:attempt:1"))
    [webhook] = await sandbox.receiver.wait_for(1)
    assert sandbox.receiver.refused == 2
    [logged] = (await sandbox.get("/v1/events"))["data"]
    assert (logged["type"], logged["attempts"], logged["delivered"]) == ("payment.succeeded", 3, True)
    assert (
        sandbox.provider.parse_webhook(webhook.body, webhook.headers).type
        is ProviderEventType.PAYMENT_SUCCEEDED
    )


async def test_a_setup_session_page_saves_a_method_announced_by_webhook(sandbox: Sandbox) -> None:
    customer = await sandbox.customer()
    session = await sandbox.provider.create_setup_session(
        provider_customer_id=customer,
        return_url=f"{sandbox.receiver.url}/return?from=setup",
        method_types=(MethodType.CARD, MethodType.SEPA_DEBIT),
        idempotency_key="setup:1",
        currency="EUR",
    )
    assert session.url == f"{sandbox.base_url}/setup/{session.provider_session_id}"
    assert session.expires_at == START + timedelta(hours=24)
    page = await sandbox.http.get(session.url)
    assert page.status_code == 200 and '<html lang="en">' in page.text
    assert 'value="sepa_chargeback"' in page.text and "<label" in page.text
    submitted = await sandbox.http.post(
        session.url,
        content="test_method=card_updatable",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert submitted.status_code == 303
    assert submitted.headers["location"] == (
        f"{sandbox.receiver.url}/return?from=setup&setup_session={session.provider_session_id}&status=complete"
    )
    [webhook] = await sandbox.receiver.wait_for(1)
    event = sandbox.provider.parse_webhook(webhook.body, webhook.headers)
    assert event.type is ProviderEventType.METHOD_ATTACHED
    assert event.setup_session_id == session.provider_session_id
    assert event.provider_customer_id == customer
    assert event.method is not None
    assert (event.method.brand, event.method.last4, event.method.exp_month, event.method.exp_year) == (
        "mastercard",
        "4444",
        4,
        2026,
    )
    # Completed once: a second submission changes nothing.
    again = await sandbox.http.post(
        session.url,
        content="test_method=card_ok",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert again.status_code == 409
    assert len(await sandbox.get(f"/v1/customers/{customer}/payment_methods")) == 2  # object + data
    assert len((await sandbox.get(f"/v1/customers/{customer}/payment_methods"))["data"]) == 1
