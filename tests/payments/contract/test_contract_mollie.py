"""Mollie contract tests beyond the shared suite: amounts in Mollie's decimal strings, failure reasons,
statuses, mandate ids, the unsigned-webhook flow, and that the blocking SDK never runs on the event loop."""

from __future__ import annotations

import json
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.payments.port import (
    HARD_DECLINES,
    ChargeRequest,
    ChargeStatus,
    DeclineCode,
    ProviderEventType,
    ProviderRejected,
)
from gateway.payments.providers import mollie
from gateway.payments.providers.mollie import (
    charge_result,
    decline_code,
    from_mollie_amount,
    payment_status,
    split_method_id,
    to_mollie_amount,
)
from tests.payments.contract.harness import MOLLIE_CUSTOMER, MollieHarness
from tests.payments.contract.replay import RECORDINGS


def request(attempt: int, method: str, customer: str = MOLLIE_CUSTOMER) -> ChargeRequest:
    return ChargeRequest(
        idempotency_key=f"invoice:in_contract:attempt:{attempt}",
        provider_customer_id=customer,
        provider_method_id=method,
        amount=2000,
        currency="EUR",
        description="Invoice TG-2025-0001",
        metadata={"invoice": "in_contract", "payment": "pay_contract"},
    )


@pytest.mark.parametrize(
    ("amount", "currency", "value"),
    [
        (2000, "EUR", "20.00"),
        (1, "EUR", "0.01"),
        (500, "JPY", "500"),
        (1234, "KWD", "1.234"),
        (0, "GBP", "0.00"),
    ],
)
def test_amounts_are_mollie_decimal_strings_with_the_currency_exponent(
    amount: int, currency: str, value: str
) -> None:
    assert to_mollie_amount(amount, currency) == {"currency": currency, "value": value}


@given(
    amount=st.integers(min_value=0, max_value=10**12),
    currency=st.sampled_from(["EUR", "USD", "JPY", "KWD", "ISK", "GBP", "CHF"]),
)
def test_amounts_round_trip_exactly(amount: int, currency: str) -> None:
    assert from_mollie_amount(to_mollie_amount(amount, currency)) == (amount, currency)


@pytest.mark.parametrize(
    ("details", "expected"),
    [
        ({"failureReason": "insufficient_funds"}, DeclineCode.INSUFFICIENT_FUNDS),
        ({"failureReason": "card_expired"}, DeclineCode.EXPIRED_CARD),
        ({"failureReason": "possible_fraud"}, DeclineCode.FRAUDULENT),
        ({"failureReason": "refused_by_issuer"}, DeclineCode.DO_NOT_HONOR),
        ({"failureReason": "authentication_failed"}, DeclineCode.AUTHENTICATION_REQUIRED),
        ({"failureReason": "something_new"}, DeclineCode.GENERIC_DECLINE),
        ({"bankReasonCode": "AM04"}, DeclineCode.INSUFFICIENT_FUNDS),
        ({"bankReasonCode": "AC04"}, DeclineCode.INVALID_ACCOUNT),
        ({"bankReasonCode": "MD01"}, DeclineCode.DO_NOT_HONOR),
        ({"bankReasonCode": "MS03"}, DeclineCode.GENERIC_DECLINE),
        (None, DeclineCode.GENERIC_DECLINE),
    ],
)
def test_failure_reasons_map_onto_the_port(details: dict[str, str] | None, expected: DeclineCode) -> None:
    assert decline_code({"details": details}) is expected


def test_closed_accounts_and_refusals_are_hard_and_funds_are_soft() -> None:
    assert decline_code({"details": {"bankReasonCode": "AC04"}}) in HARD_DECLINES
    assert decline_code({"details": {"failureReason": "refused_by_issuer"}}) in HARD_DECLINES
    assert decline_code({"details": {"bankReasonCode": "AM04"}}) not in HARD_DECLINES


@pytest.mark.parametrize(
    ("payment", "expected"),
    [
        ({"status": "paid"}, ChargeStatus.SUCCEEDED),
        ({"status": "pending"}, ChargeStatus.PROCESSING),
        ({"status": "authorized"}, ChargeStatus.PROCESSING),
        ({"status": "open"}, ChargeStatus.PROCESSING),
        (
            {"status": "open", "_links": {"checkout": {"href": "https://www.mollie.com/checkout/x"}}},
            ChargeStatus.REQUIRES_ACTION,
        ),
        ({"status": "failed"}, ChargeStatus.FAILED),
        ({"status": "canceled"}, ChargeStatus.CANCELED),
        ({"status": "expired"}, ChargeStatus.CANCELED),
    ],
)
def test_statuses_map_onto_the_port(payment: dict[str, object], expected: ChargeStatus) -> None:
    assert payment_status(payment) is expected


def test_a_method_id_names_the_customer_and_the_mandate() -> None:
    assert split_method_id("cst_8wmqcHMN4U:mdt_h3gAaD5zP") == ("cst_8wmqcHMN4U", "mdt_h3gAaD5zP")
    for bad in ("mdt_h3gAaD5zP", "pm_123", "cst_x:", ":mdt_x"):
        with pytest.raises(ProviderRejected) as refused:
            split_method_id(bad)
        assert refused.value.code == "payment_method_not_found"


async def test_a_mandate_of_another_customer_is_refused_without_a_call() -> None:
    harness = MollieHarness()
    async with harness.scenario(None):  # no HTTP at all
        with pytest.raises(ProviderRejected) as refused:
            await harness.provider.charge(request(1, "cst_0therCust0m:mdt_pWUnw6pkBN"))
    assert refused.value.code == "payment_method_not_found"


async def test_a_sepa_recurring_charge_is_processing_until_the_webhook() -> None:
    harness = MollieHarness()
    async with harness.scenario("charge_sepa_pending"):
        result = await harness.provider.charge(request(9, f"{MOLLIE_CUSTOMER}:mdt_h3gAaD5zP"))
    assert result.status is ChargeStatus.PROCESSING
    assert result.provider_payment_id == "tr_S3paP3nd1n"
    assert result.decline_code is None


async def test_the_blocking_sdk_runs_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[threading.Thread] = []
    real = mollie.Client.perform_http_call

    def spy(self: mollie.Client, *args: object, **kwargs: object) -> object:
        threads.append(threading.current_thread())
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(mollie.Client, "perform_http_call", spy)
    harness = MollieHarness()
    async with harness.scenario("charge_succeeds"):
        await harness.provider.charge(request(1, f"{MOLLIE_CUSTOMER}:mdt_pWUnw6pkBN"))
    assert threads and all(thread is not threading.main_thread() for thread in threads)


async def test_a_ping_is_minimal_and_its_completed_id_is_the_state_found() -> None:
    """Mollie pings the same payment id for every change: the dedupe key is the state the fetch found, so
    Mollie's retry of one change dedupes and a later change of the same payment is a new event."""
    harness = MollieHarness()
    first = harness.provider.parse_webhook(*harness.ping("tr_7UhSN1zuXS"))
    retry = harness.provider.parse_webhook(*harness.ping("tr_7UhSN1zuXS"))
    assert first.payment is None and first.refund is None and first.method is None
    assert first.provider_event_id.startswith("tr_7UhSN1zuXS:ping:")
    async with harness.scenario("webhook_paid"):
        paid = await harness.provider.complete_event(first)
    async with harness.scenario("webhook_paid"):
        paid_again = await harness.provider.complete_event(retry)
    assert paid.provider_event_id == paid_again.provider_event_id
    assert paid.provider_event_id.startswith("tr_7UhSN1zuXS:payment.succeeded:")
    async with harness.scenario("webhook_refunded"):
        refunded = await harness.provider.complete_event(
            harness.provider.parse_webhook(*harness.ping("tr_R3fundabl3"))
        )
    async with harness.scenario("refunded_later"):
        later = await harness.provider.complete_event(
            harness.provider.parse_webhook(*harness.ping("tr_R3fundabl3"))
        )
    assert refunded.provider_event_id != later.provider_event_id
    assert refunded.refund is not None and later.refund is not None
    assert (refunded.refund.amount, later.refund.amount) == (800, 1200)


async def test_completing_a_refund_ping_reports_the_payment_too() -> None:
    harness = MollieHarness()
    async with harness.scenario("webhook_refunded"):
        event = await harness.provider.complete_event(
            harness.provider.parse_webhook(*harness.ping("tr_R3fundabl3"))
        )
    assert event.type is ProviderEventType.REFUND_SUCCEEDED
    assert event.payment is not None and event.payment.provider_payment_id == "tr_R3fundabl3"
    assert event.refund is not None and event.refund.amount == 800


async def test_the_chargeback_outranks_the_paid_state_it_reverses() -> None:
    harness = MollieHarness()
    async with harness.scenario("webhook_chargeback"):
        event = await harness.provider.complete_event(
            harness.provider.parse_webhook(*harness.ping("tr_S3paOkCb4k"))
        )
    assert event.type is ProviderEventType.PAYMENT_CHARGED_BACK
    assert event.payment is not None
    recorded = json.loads((RECORDINGS / "mollie" / "webhook_chargeback.json").read_text())
    before = dict(recorded["interactions"][0]["response"]["body"])
    before.pop("_embedded"), before.pop("amountChargedBack")  # the same payment as it was when paid
    assert charge_result(before).status is ChargeStatus.SUCCEEDED
    assert event.payment.version > charge_result(before).version
    assert event.occurred_at.isoformat() == "2025-12-09T12:00:00+00:00"


async def test_reading_an_unknown_method_is_payment_method_not_found() -> None:
    harness = MollieHarness()
    async with harness.scenario("method_not_found"):
        with pytest.raises(ProviderRejected) as refused:
            await harness.provider.get_method("cst_8wmqcHMN4U:mdt_N0SuchMndt")
    assert refused.value.code == "payment_method_not_found"


async def test_the_registry_derives_the_webhook_url_from_the_public_base_url() -> None:
    """An account whose credentials hold only the API key: the registry names
    `<public_base_url>/v1/payment_providers/<account id>/webhooks`, and the recorded charge (whose request
    body the replay checks) carries exactly that `webhookUrl`."""
    import os
    from datetime import UTC, datetime

    from gateway.config import Settings
    from gateway.payments.models import PaymentProviderAccount
    from gateway.payments.providers.registry import seal_credentials
    from gateway.payments.service import PaymentSettings
    from gateway.security.secretbox import SecretBox
    from tests.payments.contract.harness import MOLLIE_API_KEY, MOLLIE_WEBHOOK_URL

    box = SecretBox(keys=(("k1", os.urandom(32)),))
    at = datetime(2026, 12, 1, tzinfo=UTC)
    account = PaymentProviderAccount(
        id="ppa_mollie",
        kind="mollie",
        name="NL",
        credentials=seal_credentials(box, "ppa_mollie", {"api_key": MOLLIE_API_KEY}),
        is_default=True,
        created_at=at,
        updated_at=at,
    )
    settings = PaymentSettings.from_settings(Settings(public_base_url="https://tiergate.example/"))
    registry = settings.registry(box)
    assert registry.credentials(account) == {"api_key": MOLLIE_API_KEY, "webhook_url": MOLLIE_WEBHOOK_URL}
    provider = registry.provider(account)
    async with MollieHarness().scenario("charge_sepa_pending"):
        result = await provider.charge(request(9, f"{MOLLIE_CUSTOMER}:mdt_h3gAaD5zP"))
    assert result.provider_payment_id == "tr_S3paP3nd1n"
    # Credentials that name their own URL keep it; without a public base URL nothing is derived.
    own = PaymentProviderAccount(
        id="ppa_own",
        kind="mollie",
        name="own",
        credentials=seal_credentials(
            box, "ppa_own", {"api_key": MOLLIE_API_KEY, "webhook_url": "https://hooks.example/m"}
        ),
        is_default=False,
        created_at=at,
        updated_at=at,
    )
    assert registry.credentials(own)["webhook_url"] == "https://hooks.example/m"
    bare = PaymentSettings(public_base_url="").registry(box)
    assert bare.credentials(account) == {"api_key": MOLLIE_API_KEY}
