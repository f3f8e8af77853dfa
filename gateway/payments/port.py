"""The payment-provider port: what Tiergate asks of a provider, and the normalised answers it gets back.

Three adapters implement it (`sandbox`, `stripe`, `mollie`) and pass one contract test suite
(`tests/payments/contract/`). Nothing outside an adapter sees a provider's own vocabulary: statuses,
decline codes and webhook event types are translated here, at the edge.

Rules every adapter keeps:
- **Idempotency.** Every call that creates something at the provider carries `idempotency_key` and sends
  it as the provider's own idempotency key. Calling `charge` twice with the same key charges once and
  returns the same payment: that is how a retry after a crash (the call went out, the commit did not)
  finds the first charge instead of making a second one (ARCHITECTURE: `invoice:{id}:attempt:{n}`).
- **Unknown is an answer.** A timeout, a connection error or a 5xx raises `ProviderUnavailable`: the
  caller records the payment as `unknown` and reconciliation asks again later with the same key.
- **Tokens only.** Payment methods are the provider's token plus display data; no card number or CVC
  ever reaches Tiergate.
- **Money** is integer minor units with an ISO 4217 currency, as everywhere in Tiergate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from gateway.kernel.errors import DomainError


class ProviderKind(StrEnum):
    SANDBOX = "sandbox"
    STRIPE = "stripe"
    MOLLIE = "mollie"


class ChargeStatus(StrEnum):
    """A provider's answer about one payment, normalised. (`unknown` is not here: it is what Tiergate
    records when the provider gave no answer at all; see `ProviderUnavailable`.)"""

    SUCCEEDED = "succeeded"
    PROCESSING = "processing"  # accepted, settles later by webhook (SEPA, async card networks)
    REQUIRES_ACTION = "requires_action"  # the customer must act (3-D Secure): see `action_url`
    FAILED = "failed"  # declined: see `decline_code`
    CANCELED = "canceled"


class DeclineCode(StrEnum):
    """Normalised decline codes (Stripe's names). Adapters map their provider's codes onto these."""

    # soft: worth retrying later on the same method
    INSUFFICIENT_FUNDS = "insufficient_funds"
    PROCESSING_ERROR = "processing_error"
    TRY_AGAIN_LATER = "try_again_later"
    GENERIC_DECLINE = "generic_decline"
    AUTHENTICATION_REQUIRED = "authentication_required"  # off-session charge needs the customer (3DS)
    # hard: never retry on the same method; ask for a new one (billing-rules rule 27)
    LOST_CARD = "lost_card"
    STOLEN_CARD = "stolen_card"
    DO_NOT_HONOR = "do_not_honor"
    FRAUDULENT = "fraudulent"
    INVALID_ACCOUNT = "invalid_account"
    # waits for the account updater (a new expiry) or a new method
    EXPIRED_CARD = "expired_card"


HARD_DECLINES: frozenset[DeclineCode] = frozenset(
    {
        DeclineCode.LOST_CARD,
        DeclineCode.STOLEN_CARD,
        DeclineCode.DO_NOT_HONOR,
        DeclineCode.FRAUDULENT,
        DeclineCode.INVALID_ACCOUNT,
    }
)


class MethodType(StrEnum):
    CARD = "card"
    SEPA_DEBIT = "sepa_debit"
    IDEAL = "ideal"  # a first iDEAL payment creates a SEPA mandate (Mollie); recurring charges use it


class ProviderUnavailable(DomainError):
    """No answer: timeout, connection error, 5xx. The outcome is unknown; ask again with the same key.
    A domain error so that a call made for a request (a setup session, a detach) that meets it is
    answered 503 `provider_unavailable` (a page shows it), never a 500; the collector and the reconcilers
    catch it themselves."""

    code = "provider_unavailable"
    status = 503
    title = "Payment provider unavailable"


class ProviderRejected(Exception):
    """The provider refused the request itself (bad parameters, unsupported currency, unknown method).
    Nothing was charged. `code` is a stable, normalised reason (`currency_not_supported`,
    `payment_method_not_found`, `amount_too_small`, ...)."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


class InvalidWebhookSignature(Exception):
    """A webhook whose signature (the provider's own scheme) does not verify: answered 400, ignored."""


@dataclass(frozen=True, slots=True)
class MethodDetails:
    """A saved payment method as the provider describes it: a token and what a person may see."""

    provider_method_id: str
    type: MethodType
    brand: str | None = None  # visa, mastercard, amex, ...
    last4: str | None = None  # card or IBAN last four
    exp_month: int | None = None
    exp_year: int | None = None
    mandate_reference: str | None = None  # SEPA
    bank: str | None = None  # iDEAL issuer / SEPA bank name
    fingerprint: str | None = None


@dataclass(frozen=True, slots=True)
class SetupSession:
    """Where the customer goes to save a method; the method arrives later by webhook."""

    provider_session_id: str
    url: str
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ChargeRequest:
    idempotency_key: str  # `invoice:{invoice_id}:attempt:{n}`
    provider_customer_id: str
    provider_method_id: str
    amount: int  # minor units, > 0
    currency: str  # ISO 4217, upper case
    description: str
    metadata: Mapping[str, str] = field(default_factory=dict)  # tiergate ids: invoice, payment, customer
    off_session: bool = True  # False when the customer is present (pay-now in a browser)
    return_url: str | None = None  # where the 3-D Secure page sends the customer back
    at: datetime | None = None  # the customer's time (its test clock's) — the sandbox schedules by it
    clock_ref: str | None = None  # the customer's test clock id, if any (sandbox only)


@dataclass(frozen=True, slots=True)
class ChargeResult:
    status: ChargeStatus
    provider_payment_id: str
    amount: int
    currency: str
    decline_code: DeclineCode | None = None
    decline_message: str | None = None
    action_url: str | None = None  # requires_action: the page the customer completes
    provider_method_id: str | None = None
    # Monotonic version of the provider object (a timestamp or counter), so a late, older webhook never
    # overwrites a newer state (providers do not guarantee order).
    version: int = 0


@dataclass(frozen=True, slots=True)
class RefundRequest:
    idempotency_key: str  # `payment:{payment_id}:refund:{n}`
    provider_payment_id: str
    amount: int
    currency: str
    reason: str | None = None


class RefundStatus(StrEnum):
    SUCCEEDED = "succeeded"
    PENDING = "pending"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class RefundResult:
    provider_refund_id: str
    status: RefundStatus
    amount: int
    currency: str


class ProviderEventType(StrEnum):
    """Normalised inbound webhook events."""

    PAYMENT_SUCCEEDED = "payment.succeeded"
    PAYMENT_FAILED = "payment.failed"
    PAYMENT_REQUIRES_ACTION = "payment.requires_action"
    PAYMENT_CANCELED = "payment.canceled"
    PAYMENT_CHARGED_BACK = "payment.charged_back"  # a settled payment reversed (SEPA chargeback, dispute)
    REFUND_SUCCEEDED = "refund.succeeded"
    REFUND_FAILED = "refund.failed"
    METHOD_ATTACHED = "payment_method.attached"  # a setup session completed
    METHOD_UPDATED = "payment_method.updated"  # account updater: new expiry / number behind the token
    METHOD_EXPIRING = "payment_method.expiring"  # cannot be updated; expires within 30 days
    METHOD_DETACHED = "payment_method.detached"


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    provider_event_id: str  # dedupe key (with the provider account)
    type: ProviderEventType
    occurred_at: datetime
    provider_customer_id: str | None = None
    payment: ChargeResult | None = None  # payment.* events
    refund: RefundResult | None = None  # refund.* events
    method: MethodDetails | None = None  # payment_method.* events
    setup_session_id: str | None = None  # payment_method.attached from a setup session
    # Some providers (Mollie) send only an id: the adapter fetches the object before answering.


class PaymentProvider(Protocol):
    """One provider account's client. Built from the account's (decrypted) credentials."""

    kind: ProviderKind

    def supports_currency(self, currency: str) -> bool: ...

    async def create_customer(
        self, *, customer_id: str, name: str, email: str | None, idempotency_key: str
    ) -> str:
        """The provider's customer id for a Tiergate customer (created once; the caller stores it)."""
        ...

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
    ) -> SetupSession: ...

    async def get_method(self, provider_method_id: str) -> MethodDetails: ...

    async def detach_method(self, provider_method_id: str) -> None: ...

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        """Idempotent under `request.idempotency_key`. Raises ProviderUnavailable or ProviderRejected."""
        ...

    async def retrieve_payment(self, provider_payment_id: str) -> ChargeResult: ...

    async def refund(self, request: RefundRequest) -> RefundResult:
        """Idempotent under `request.idempotency_key`."""
        ...

    async def retrieve_refund(self, provider_payment_id: str, provider_refund_id: str) -> RefundResult:
        """A refund as the provider sees it now (reconciliation polls refunds left `pending`). The payment
        id is passed too because Mollie addresses refunds under their payment."""
        ...

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> ProviderEvent:
        """Verify the signature with the provider's own scheme, then translate. Raises
        InvalidWebhookSignature. (Async lookups a provider needs, Mollie's, go in `complete_event`.)"""
        ...

    async def complete_event(self, event: ProviderEvent) -> ProviderEvent:
        """Fetch whatever the webhook did not carry (Mollie sends only an id). Others return it as is."""
        ...

    async def advance_clock(self, clock_ref: str, to: datetime) -> None:
        """Test clocks: the sandbox settles what falls due up to `to` on that clock (asynchronous
        settlements, chargebacks, account-updater events) and sends their webhooks. Real providers:
        nothing to do."""
        ...
