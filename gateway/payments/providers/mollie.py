"""The Mollie adapter: `mollie-api-python` (v4), translated onto the port.

- The SDK speaks HTTP through `requests` (blocking): every call runs in a worker thread
  (`asyncio.to_thread`) so the event loop never waits on Mollie.
- Setup session = a *first* payment (`sequenceType=first`, iDEAL or card) of a token amount: paying it
  creates a mandate, and its checkout URL is where the customer goes. Recurring charges are payments with
  `sequenceType=recurring` and that mandate.
- A saved method is a Mollie **mandate**. Mollie addresses mandates under their customer, so the
  adapter's method id is `"<customer id>:<mandate id>"` (`cst_…:mdt_…`): `get_method` and `detach_method`
  receive only the method id and must find both.
- Creating calls send the port's key as Mollie's `Idempotency-Key` header (the SDK's `idempotency_key`).
- Mollie's webhooks are unsigned and carry only `id=tr_…`: `parse_webhook` accepts a well-formed id and
  returns a *minimal* event; `complete_event` fetches the payment from Mollie's API (that fetch is the
  verification: an id Mollie does not know raises InvalidWebhookSignature) and says what happened.
- Event ids: Mollie pings the same payment id for every change, so the ping's id cannot be the dedupe
  key. A minimal event's id is `tr_…:ping:<random>`; the completed event's id is the state it found,
  `tr_…:<event type>:<version>`: Mollie's retries of one change dedupe, a new change is a new event.
- A minimal event's `type` is a placeholder (`payment.succeeded`, with `payment=None`) until completed;
  nothing may act on it (or store it) before `complete_event`.
- Versions: the newest of the payment's own timestamps (created, authorized, paid, failed, canceled,
  expired, its chargebacks' and refunds') in seconds × 10 plus the state's rank, so an older state never
  overwrites a newer one.
- Needs credentials `api_key` (`test_…`/`live_…`); optional `webhook_url`: Mollie takes the webhook URL per
  payment, so the registry passes Tiergate's `/v1/payment_providers/{account}/webhooks` address here.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs

from mollie.api.client import Client
from mollie.api.error import (
    IdentifierError,
    NotFoundError,
    RequestError,
    RequestSetupError,
    ResponseError,
    ResponseHandlingError,
)
from mollie.api.objects.customer import Customer
from mollie.api.objects.payment import Payment
from mollie.api.resources.mandates import CustomerMandates
from mollie.api.resources.refunds import PaymentRefunds

from gateway.kernel.money import UnknownCurrency, exponent
from gateway.payments.port import (
    ChargeRequest,
    ChargeResult,
    ChargeStatus,
    DeclineCode,
    InvalidWebhookSignature,
    MethodDetails,
    MethodType,
    PaymentProvider,
    ProviderEvent,
    ProviderEventType,
    ProviderKind,
    ProviderRejected,
    ProviderUnavailable,
    RefundRequest,
    RefundResult,
    RefundStatus,
    SetupSession,
)

T = TypeVar("T")

# Mollie's payment currencies (docs: "Multicurrency"). SEPA Direct Debit itself is EUR only.
SUPPORTED_CURRENCIES: frozenset[str] = frozenset(
    """AED AUD BGN BRL CAD CHF CZK DKK EUR GBP HKD HUF ILS ISK JPY MXN MYR NOK NZD PHP PLN RON RUB SEK SGD
    THB TWD USD ZAR""".split()
)

# Card payments: `details.failureReason` (docs: "Handling failed payments").
CARD_FAILURES: Mapping[str, DeclineCode] = {
    "insufficient_funds": DeclineCode.INSUFFICIENT_FUNDS,
    "card_expired": DeclineCode.EXPIRED_CARD,
    "card_declined": DeclineCode.GENERIC_DECLINE,
    "invalid_cvv": DeclineCode.GENERIC_DECLINE,
    "unknown_reason": DeclineCode.PROCESSING_ERROR,
    "temporary_failure": DeclineCode.TRY_AGAIN_LATER,
    "authentication_abandoned": DeclineCode.AUTHENTICATION_REQUIRED,
    "authentication_failed": DeclineCode.AUTHENTICATION_REQUIRED,
    "authentication_required": DeclineCode.AUTHENTICATION_REQUIRED,
    "authentication_unavailable_acs": DeclineCode.AUTHENTICATION_REQUIRED,
    "inactive_card": DeclineCode.DO_NOT_HONOR,
    "refused_by_issuer": DeclineCode.DO_NOT_HONOR,
    "possible_fraud": DeclineCode.FRAUDULENT,
    "invalid_card_number": DeclineCode.INVALID_ACCOUNT,
    "invalid_card_type": DeclineCode.INVALID_ACCOUNT,
    "invalid_card_holder_name": DeclineCode.INVALID_ACCOUNT,
    "card_holder_name_missing": DeclineCode.INVALID_ACCOUNT,
}

# SEPA Direct Debit: `details.bankReasonCode` (the SEPA R-transaction reason codes).
SEPA_REASONS: Mapping[str, DeclineCode] = {
    "AM04": DeclineCode.INSUFFICIENT_FUNDS,
    "AC01": DeclineCode.INVALID_ACCOUNT,  # incorrect account number
    "AC04": DeclineCode.INVALID_ACCOUNT,  # account closed
    "AC06": DeclineCode.DO_NOT_HONOR,  # account blocked
    "AC13": DeclineCode.INVALID_ACCOUNT,  # debtor account is a consumer account
    "AG01": DeclineCode.DO_NOT_HONOR,  # transaction forbidden on this account
    "AG02": DeclineCode.INVALID_ACCOUNT,
    "MD01": DeclineCode.DO_NOT_HONOR,  # no valid mandate
    "MD06": DeclineCode.DO_NOT_HONOR,  # refund requested by the end customer
    "MD07": DeclineCode.INVALID_ACCOUNT,  # end customer deceased
    "MS02": DeclineCode.DO_NOT_HONOR,  # refused by the debtor
    "MS03": DeclineCode.GENERIC_DECLINE,  # reason not specified
    "SL01": DeclineCode.DO_NOT_HONOR,  # blocked by the debtor's bank service
    "RC01": DeclineCode.INVALID_ACCOUNT,  # wrong BIC
    "FF05": DeclineCode.PROCESSING_ERROR,
}

_RANK: Mapping[ChargeStatus, int] = {
    ChargeStatus.REQUIRES_ACTION: 1,
    ChargeStatus.PROCESSING: 2,
    ChargeStatus.FAILED: 3,
    ChargeStatus.CANCELED: 4,
    ChargeStatus.SUCCEEDED: 5,
}
_CHARGED_BACK_RANK = 6
_REFUND_RANK = 7

REFUND_STATUSES: Mapping[str, RefundStatus] = {
    "refunded": RefundStatus.SUCCEEDED,
    "queued": RefundStatus.PENDING,
    "pending": RefundStatus.PENDING,
    "processing": RefundStatus.PENDING,
    "failed": RefundStatus.FAILED,
    "canceled": RefundStatus.FAILED,
}

METHODS: Mapping[MethodType, str] = {
    MethodType.CARD: "creditcard",
    MethodType.IDEAL: "ideal",
    MethodType.SEPA_DEBIT: "directdebit",
}

# The token amount of a first payment that only sets up a mandate (Mollie needs a real payment for it).
SETUP_AMOUNT = Decimal("0.01")
_PAYMENT_ID = re.compile(r"^tr_[A-Za-z0-9]{4,64}$")


def to_mollie_amount(amount: int, currency: str) -> dict[str, str]:
    """Minor units → Mollie's `{"currency", "value"}` with the currency's exact number of decimals."""
    digits = _exponent(currency)
    value = (Decimal(amount) / (Decimal(10) ** digits)).quantize(Decimal(1).scaleb(-digits))
    return {"currency": currency.upper(), "value": f"{value:f}"}


def from_mollie_amount(amount: Mapping[str, str]) -> tuple[int, str]:
    currency = str(amount["currency"]).upper()
    return int(Decimal(str(amount["value"])).scaleb(_exponent(currency))), currency


def _exponent(currency: str) -> int:
    try:
        return exponent(currency)
    except UnknownCurrency:
        return 2  # Mollie will refuse it anyway; the refusal is the answer


def _timestamp(value: Any) -> int:
    return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()) if value else 0


def _embedded(obj: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    return list((obj.get("_embedded") or {}).get(name) or [])


def method_id(customer_id: str, mandate_id: str) -> str:
    return f"{customer_id}:{mandate_id}"


def split_method_id(provider_method_id: str) -> tuple[str, str]:
    customer_id, _, mandate_id = provider_method_id.partition(":")
    if not customer_id.startswith("cst_") or not mandate_id.startswith("mdt_"):
        raise ProviderRejected(
            f"not a Mollie method id (cst_…:mdt_…): {provider_method_id!r}", code="payment_method_not_found"
        )
    return customer_id, mandate_id


def decline_code(payment: Mapping[str, Any]) -> DeclineCode:
    details = payment.get("details") or {}
    if details.get("bankReasonCode"):
        return SEPA_REASONS.get(str(details["bankReasonCode"]), DeclineCode.GENERIC_DECLINE)
    return CARD_FAILURES.get(str(details.get("failureReason") or ""), DeclineCode.GENERIC_DECLINE)


def _decline_message(payment: Mapping[str, Any]) -> str | None:
    details = payment.get("details") or {}
    return details.get("failureMessage") or details.get("bankReason")


def payment_status(payment: Mapping[str, Any]) -> ChargeStatus:
    status = str(payment["status"])
    if status == "paid":
        return ChargeStatus.SUCCEEDED
    if status == "failed":
        return ChargeStatus.FAILED
    if status in {"canceled", "expired"}:
        return ChargeStatus.CANCELED
    if status == "open" and _checkout_url(payment):
        return ChargeStatus.REQUIRES_ACTION  # the customer must go to Mollie's page (3-D Secure, iDEAL)
    return ChargeStatus.PROCESSING  # open, pending, authorized: settles later, the webhook says how


def _checkout_url(payment: Mapping[str, Any]) -> str | None:
    return ((payment.get("_links") or {}).get("checkout") or {}).get("href")


def payment_version(payment: Mapping[str, Any], rank: int) -> int:
    stamps = [
        _timestamp(payment.get(name))
        for name in ("createdAt", "authorizedAt", "paidAt", "failedAt", "canceledAt", "expiredAt")
    ]
    stamps += [_timestamp(item.get("createdAt")) for item in _embedded(payment, "chargebacks")]
    stamps += [_timestamp(item.get("createdAt")) for item in _embedded(payment, "refunds")]
    return max(stamps) * 10 + rank


def _state_version(payment: Mapping[str, Any]) -> int:
    return payment_version(payment, _RANK[payment_status(payment)])


def charge_result(payment: Mapping[str, Any]) -> ChargeResult:
    status = payment_status(payment)
    amount, currency = from_mollie_amount(payment["amount"])
    code = decline_code(payment) if status is ChargeStatus.FAILED else None
    customer, mandate = payment.get("customerId"), payment.get("mandateId")
    return ChargeResult(
        status=status,
        provider_payment_id=str(payment["id"]),
        amount=amount,
        currency=currency,
        decline_code=code,
        decline_message=_decline_message(payment) if code else None,
        action_url=_checkout_url(payment) if status is ChargeStatus.REQUIRES_ACTION else None,
        provider_method_id=method_id(customer, mandate) if customer and mandate else None,
        version=payment_version(payment, _RANK[status]),
    )


def method_details(customer_id: str, mandate: Mapping[str, Any]) -> MethodDetails:
    details = mandate.get("details") or {}
    token = method_id(customer_id, str(mandate["id"]))
    if mandate.get("method") == "creditcard":
        expiry = str(details.get("cardExpiryDate") or "")  # "2029-12-31"
        return MethodDetails(
            provider_method_id=token,
            type=MethodType.CARD,
            brand=str(details.get("cardLabel") or "").lower().replace(" ", "_") or None,
            last4=details.get("cardNumber"),
            exp_month=int(expiry[5:7]) if len(expiry) >= 7 else None,
            exp_year=int(expiry[:4]) if len(expiry) >= 4 else None,
            fingerprint=details.get("cardFingerprint"),
        )
    account = str(details.get("consumerAccount") or "")
    return MethodDetails(
        provider_method_id=token,
        type=MethodType.SEPA_DEBIT,
        last4=account[-4:] or None,
        mandate_reference=mandate.get("mandateReference"),
        bank=details.get("consumerBic"),
    )


def refund_result(refund: Mapping[str, Any]) -> RefundResult:
    amount, currency = from_mollie_amount(refund["amount"])
    return RefundResult(
        provider_refund_id=str(refund["id"]),
        status=REFUND_STATUSES.get(str(refund.get("status")), RefundStatus.PENDING),
        amount=amount,
        currency=currency,
    )


def rejected(error: ResponseError) -> ProviderRejected:
    field = str(error.field or "")
    message = str(error)
    lowered = message.lower()
    if "currency" in field or "currency" in lowered:
        return ProviderRejected(message, code="currency_not_supported")
    if "mandate" in field.lower() or "mandate" in lowered:
        return ProviderRejected(message, code="payment_method_not_found")
    if field == "amount" and ("refund" in lowered or "higher" in lowered):
        return ProviderRejected(message, code="amount_exceeds_refundable")
    if field == "amount" and ("lower" in lowered or "minimum" in lowered):
        return ProviderRejected(message, code="amount_too_small")
    if isinstance(error, NotFoundError):
        return ProviderRejected(message, code="not_found")
    if error.status == 401:
        return ProviderRejected(message, code="provider_credentials_invalid")
    return ProviderRejected(message, code="invalid_request")


class MollieProvider:
    """One Mollie account (an API key; Mollie's webhooks are verified by fetching, not by a secret)."""

    kind = ProviderKind.MOLLIE

    def __init__(self, credentials: Mapping[str, str], *, timeout_seconds: float = 10.0) -> None:
        # No SDK retries: a timeout is ProviderUnavailable at once and reconciliation asks again.
        self._client = Client(timeout=(timeout_seconds, timeout_seconds), retry=0)  # type: ignore[arg-type]
        self._client.set_api_key(credentials["api_key"])
        self._webhook_url = credentials.get("webhook_url") or None

    def supports_currency(self, currency: str) -> bool:
        return currency.upper() in SUPPORTED_CURRENCIES

    async def _call(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one blocking SDK call in a thread; map its errors onto the port's."""
        try:
            return await asyncio.to_thread(call, *args, **kwargs)
        except IdentifierError as error:
            raise ProviderRejected(str(error), code="not_found") from error
        except RequestSetupError as error:
            raise ProviderRejected(str(error), code="invalid_request") from error
        except RequestError as error:  # timeouts, connection errors
            raise ProviderUnavailable(f"Mollie did not answer: {error}") from error
        except ResponseHandlingError as error:  # a non-JSON answer: a proxy's 502 page
            raise ProviderUnavailable(f"Mollie failed: {error}") from error
        except ResponseError as error:
            if error.status is not None and int(error.status) >= 500:
                raise ProviderUnavailable(f"Mollie failed: {error}") from error
            raise rejected(error) from error

    def _with_webhook(self, data: dict[str, Any]) -> dict[str, Any]:
        if self._webhook_url:
            data["webhookUrl"] = self._webhook_url
        return data

    async def create_customer(
        self, *, customer_id: str, name: str, email: str | None, idempotency_key: str
    ) -> str:
        data: dict[str, Any] = {"name": name, "metadata": {"tiergate_customer_id": customer_id}}
        if email:
            data["email"] = email
        customer = await self._call(self._client.customers.create, data, idempotency_key=idempotency_key)
        return str(customer["id"])

    async def create_setup_session(
        self,
        *,
        provider_customer_id: str,
        return_url: str,
        method_types: tuple[MethodType, ...],
        idempotency_key: str,
        currency: str | None = None,
        at: datetime | None = None,
        clock_ref: str | None = None,
    ) -> SetupSession:
        # A first payment: paying it creates the mandate later charges use. SEPA itself cannot be set up
        # directly (no IBAN entry at Mollie), so it is set up through iDEAL, which yields a SEPA mandate.
        methods = sorted({METHODS[kind] for kind in method_types if kind is not MethodType.SEPA_DEBIT})
        if MethodType.SEPA_DEBIT in method_types or not methods:
            methods = sorted({*methods, "ideal"})
        setup_currency = (currency or "EUR").upper()
        data = self._with_webhook(
            {
                "amount": to_mollie_amount(
                    int(SETUP_AMOUNT.scaleb(_exponent(setup_currency))), setup_currency
                ),
                "customerId": provider_customer_id,
                "sequenceType": "first",
                "method": methods if len(methods) > 1 else methods[0],
                "description": "Save a payment method",
                "redirectUrl": return_url,
                "metadata": {"purpose": "setup"},
            }
        )
        payment = await self._call(self._client.payments.create, data, idempotency_key=idempotency_key)
        url = _checkout_url(payment)
        if not url:
            raise ProviderRejected(
                "Mollie returned no checkout URL for the first payment", code="invalid_request"
            )
        expires = payment.get("expiresAt")
        return SetupSession(
            provider_session_id=str(payment["id"]),
            url=url,
            expires_at=datetime.fromtimestamp(_timestamp(expires), UTC) if expires else None,
        )

    def _mandates(self, customer_id: str) -> CustomerMandates:
        # the SDK addresses a customer's mandates through a Customer object; its id is all it reads
        customer = Customer({"id": customer_id}, self._client)  # type: ignore[no-untyped-call]
        return CustomerMandates(self._client, customer)

    async def get_method(self, provider_method_id: str) -> MethodDetails:
        customer_id, mandate_id = split_method_id(provider_method_id)
        try:
            mandate = await self._call(self._mandates(customer_id).get, mandate_id)
        except ProviderRejected as error:
            if error.code == "not_found":
                raise ProviderRejected(str(error), code="payment_method_not_found") from error
            raise
        return method_details(customer_id, mandate)

    async def detach_method(self, provider_method_id: str) -> None:
        customer_id, mandate_id = split_method_id(provider_method_id)
        try:
            await self._call(self._mandates(customer_id).delete, mandate_id)
        except ProviderRejected as error:
            if error.code == "not_found":
                raise ProviderRejected(str(error), code="payment_method_not_found") from error
            raise

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        customer_id, mandate_id = split_method_id(request.provider_method_id)
        if customer_id != request.provider_customer_id:
            raise ProviderRejected("the mandate belongs to another customer", code="payment_method_not_found")
        data = self._with_webhook(
            {
                "amount": to_mollie_amount(request.amount, request.currency),
                "customerId": customer_id,
                "mandateId": mandate_id,
                "sequenceType": "recurring",
                "description": request.description,
                "metadata": dict(request.metadata),
            }
        )
        payment = await self._call(
            self._client.payments.create, data, idempotency_key=request.idempotency_key
        )
        return charge_result(payment)

    async def retrieve_payment(self, provider_payment_id: str) -> ChargeResult:
        payment = await self._call(self._client.payments.get, provider_payment_id)
        return charge_result(payment)

    async def refund(self, request: RefundRequest) -> RefundResult:
        payment = Payment({"id": request.provider_payment_id}, self._client)  # type: ignore[no-untyped-call]
        refunds = PaymentRefunds(self._client, payment)
        data: dict[str, Any] = {"amount": to_mollie_amount(request.amount, request.currency)}
        if request.reason:
            data["description"] = request.reason[:140]
        refund = await self._call(refunds.create, data, idempotency_key=request.idempotency_key)
        return refund_result(refund)

    async def retrieve_refund(self, provider_payment_id: str, provider_refund_id: str) -> RefundResult:
        payment = Payment({"id": provider_payment_id}, self._client)  # type: ignore[no-untyped-call]
        refund = await self._call(PaymentRefunds(self._client, payment).get, provider_refund_id)
        return refund_result(refund)

    # --- webhooks ----------------------------------------------------------------------------------------

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> ProviderEvent:
        """Mollie posts `id=tr_…` and nothing else. Only the shape is checked here; the API fetch in
        `complete_event` is what proves it."""
        try:
            ids = parse_qs(body.decode("ascii"), strict_parsing=True).get("id") or []
        except (UnicodeDecodeError, ValueError) as error:
            raise InvalidWebhookSignature("not a Mollie webhook body") from error
        if len(ids) != 1 or not _PAYMENT_ID.match(ids[0]):
            raise InvalidWebhookSignature("a Mollie webhook carries exactly one payment id (tr_…)")
        return ProviderEvent(
            provider_event_id=f"{ids[0]}:ping:{uuid.uuid4().hex}",
            type=ProviderEventType.PAYMENT_SUCCEEDED,  # placeholder: complete_event says what happened
            occurred_at=datetime.fromtimestamp(0, UTC),
            payment=None,
        )

    async def complete_event(self, event: ProviderEvent) -> ProviderEvent:
        if event.payment is not None or event.refund is not None or event.method is not None:
            return event  # already complete
        payment_id = event.provider_event_id.split(":", 1)[0]
        try:
            payment = await self._call(self._client.payments.get, payment_id, embed="refunds,chargebacks")
        except ProviderRejected as error:
            raise InvalidWebhookSignature(f"Mollie does not know {payment_id}: {error}") from error
        completed = await self._translate(payment)
        # the state found is the event: the same change pinged twice is one event, a new change another
        version = completed.payment.version if completed.payment else _state_version(payment)
        return replace(completed, provider_event_id=f"{payment_id}:{completed.type.value}:{version}")

    async def _translate(self, payment: Mapping[str, Any]) -> ProviderEvent:
        """The newest thing that happened to the payment, as one normalised event (its id set later)."""
        customer_id = payment.get("customerId")
        result = charge_result(payment)
        base: dict[str, Any] = {"provider_event_id": "", "provider_customer_id": customer_id}
        chargebacks = _embedded(payment, "chargebacks")
        if chargebacks:
            latest = max(chargebacks, key=lambda item: _timestamp(item.get("createdAt")))
            charged_back = ChargeResult(
                status=ChargeStatus.SUCCEEDED,  # it had settled; the event type says it was reversed
                provider_payment_id=result.provider_payment_id,
                amount=result.amount,
                currency=result.currency,
                provider_method_id=result.provider_method_id,
                version=payment_version(payment, _CHARGED_BACK_RANK),
            )
            return ProviderEvent(
                type=ProviderEventType.PAYMENT_CHARGED_BACK,
                occurred_at=datetime.fromtimestamp(_timestamp(latest.get("createdAt")), UTC),
                payment=charged_back,
                **base,
            )
        settled_refunds = [
            item
            for item in _embedded(payment, "refunds")
            if REFUND_STATUSES.get(str(item.get("status"))) is not RefundStatus.PENDING
        ]
        if settled_refunds:
            latest = max(settled_refunds, key=lambda item: _timestamp(item.get("createdAt")))
            refund = refund_result(latest)
            return ProviderEvent(
                type=ProviderEventType.REFUND_SUCCEEDED
                if refund.status is RefundStatus.SUCCEEDED
                else ProviderEventType.REFUND_FAILED,
                occurred_at=datetime.fromtimestamp(_timestamp(latest.get("createdAt")), UTC),
                payment=result,
                refund=refund,
                **base,
            )
        occurred_at = datetime.fromtimestamp(result.version // 10, UTC)
        if payment.get("sequenceType") == "first" and result.status is ChargeStatus.SUCCEEDED:
            mandate_id = payment.get("mandateId")
            if not customer_id or not mandate_id:
                raise ProviderRejected(
                    "a paid first payment without a mandate", code="payment_method_not_found"
                )
            method = await self.get_method(method_id(customer_id, mandate_id))
            return ProviderEvent(
                type=ProviderEventType.METHOD_ATTACHED,
                occurred_at=occurred_at,
                method=method,
                setup_session_id=str(payment["id"]),
                **base,
            )
        types = {
            ChargeStatus.SUCCEEDED: ProviderEventType.PAYMENT_SUCCEEDED,
            ChargeStatus.FAILED: ProviderEventType.PAYMENT_FAILED,
            ChargeStatus.CANCELED: ProviderEventType.PAYMENT_CANCELED,
            ChargeStatus.REQUIRES_ACTION: ProviderEventType.PAYMENT_REQUIRES_ACTION,
        }
        if result.status not in types:
            raise ProviderRejected(
                f"Mollie payment still {payment['status']}: nothing to apply", code="event_not_supported"
            )
        return ProviderEvent(type=types[result.status], occurred_at=occurred_at, payment=result, **base)

    async def advance_clock(self, clock_ref: str, to: datetime) -> None:
        """Mollie has no test clocks: nothing to do."""


if TYPE_CHECKING:  # mypy proves the adapter implements the whole port
    _IMPLEMENTS_THE_PORT: type[PaymentProvider] = MollieProvider
