"""Payment rules without I/O: the payment state machine as a declared transition table, how a provider's
answer maps onto it, decline classification and the idempotency keys sent to providers.

Invariants:
- A payment's status changes only through `transition()`; `succeeded` may still move to `refunded`-like
  bookkeeping (amount_refunded) but never back; `failed` and `canceled` are terminal.
- `unknown` means the provider gave no answer: the payment may or may not exist there. Only the provider
  can settle it (reconciliation asks again with the same idempotency key).
- Idempotency keys derive from domain ids only (`invoice:{id}:attempt:{n}`), so a retry after a crash sends
  the same key and the provider returns the first charge instead of making a second one.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Protocol

from gateway.kernel.errors import InvalidTransition

from .port import HARD_DECLINES, ChargeStatus, DeclineCode


class PaymentStatus(StrEnum):
    REQUIRES_PAYMENT_METHOD = "requires_payment_method"
    PROCESSING = "processing"  # sent (or being sent) to the provider; settles by answer, webhook or job
    REQUIRES_ACTION = "requires_action"  # the customer must complete a challenge (3-D Secure)
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    UNKNOWN = "unknown"  # the provider did not answer: reconciliation asks again


_SETTLING = frozenset(
    {
        PaymentStatus.PROCESSING,
        PaymentStatus.SUCCEEDED,
        PaymentStatus.FAILED,
        PaymentStatus.REQUIRES_ACTION,
        PaymentStatus.CANCELED,
        PaymentStatus.UNKNOWN,
    }
)

PAYMENT_TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    PaymentStatus.REQUIRES_PAYMENT_METHOD: frozenset({PaymentStatus.PROCESSING, PaymentStatus.CANCELED}),
    PaymentStatus.PROCESSING: _SETTLING - {PaymentStatus.PROCESSING},
    PaymentStatus.UNKNOWN: _SETTLING - {PaymentStatus.UNKNOWN},
    PaymentStatus.REQUIRES_ACTION: frozenset(
        {PaymentStatus.PROCESSING, PaymentStatus.SUCCEEDED, PaymentStatus.FAILED, PaymentStatus.CANCELED}
    ),
    # A succeeded payment can still fail afterwards: a SEPA debit returned, a chargeback (recorded as
    # failed with decline code `charged_back` by the service, the invoice reopened).
    PaymentStatus.SUCCEEDED: frozenset({PaymentStatus.FAILED}),
    PaymentStatus.FAILED: frozenset(),
    PaymentStatus.CANCELED: frozenset(),
}

TERMINAL = frozenset(s for s, targets in PAYMENT_TRANSITIONS.items() if not targets)
# Statuses reconciliation looks at once they are old enough.
UNSETTLED = frozenset({PaymentStatus.PROCESSING, PaymentStatus.UNKNOWN})

PAYMENT_STAMPS: dict[PaymentStatus, str | None] = {
    PaymentStatus.SUCCEEDED: "settled_at",
    PaymentStatus.FAILED: "settled_at",
    PaymentStatus.CANCELED: "settled_at",
}


class HasStatus(Protocol):
    status: str


def can_transition(current: PaymentStatus, to: PaymentStatus) -> bool:
    return to in PAYMENT_TRANSITIONS[current]


def transition(payment: HasStatus, to: PaymentStatus, at: datetime) -> PaymentStatus:
    current = PaymentStatus(payment.status)
    if to not in PAYMENT_TRANSITIONS[current]:
        raise InvalidTransition(
            f"a {current.value} payment cannot become {to.value}",
            current_status=current.value,
            requested_status=to.value,
        )
    stamp = PAYMENT_STAMPS.get(to)
    if stamp is not None:
        setattr(payment, stamp, at)
    payment.status = to.value
    return current


def status_of(answer: ChargeStatus) -> PaymentStatus:
    """The payment status a provider's normalised answer means."""
    return {
        ChargeStatus.SUCCEEDED: PaymentStatus.SUCCEEDED,
        ChargeStatus.PROCESSING: PaymentStatus.PROCESSING,
        ChargeStatus.REQUIRES_ACTION: PaymentStatus.REQUIRES_ACTION,
        ChargeStatus.FAILED: PaymentStatus.FAILED,
        ChargeStatus.CANCELED: PaymentStatus.CANCELED,
    }[answer]


def is_hard_decline(code: str | None) -> bool:
    """Hard declines (lost, stolen, do not honor, fraud, invalid account) must never be retried on the
    same method (billing-rules rule 27); unknown codes count as soft."""
    if code is None:
        return False
    try:
        return DeclineCode(code) in HARD_DECLINES
    except ValueError:
        return False


def invoice_attempt_key(invoice_id: str, attempt: int) -> str:
    return f"invoice:{invoice_id}:attempt:{attempt}"


def refund_key(payment_id: str, n: int) -> str:
    return f"payment:{payment_id}:refund:{n}"


def refundable(amount: int, refunded: int) -> int:
    """What can still be refunded of a payment: what was paid minus what went back already."""
    return max(amount - refunded, 0)


class MethodStatus(StrEnum):
    ACTIVE = "active"
    DETACHED = "detached"
    EXPIRED = "expired"


def expires_before(exp_month: int | None, exp_year: int | None, at: datetime) -> bool:
    """A card is valid through the last day of its expiry month."""
    if exp_month is None or exp_year is None:
        return False
    return (exp_year, exp_month) < (at.year, at.month)
