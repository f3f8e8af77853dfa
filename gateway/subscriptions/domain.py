"""Subscription rules without I/O: statuses and their transition table, what happens next and when.

Invariants:
- A status changes only through `transition()`, which consults `TRANSITIONS` and stamps the matching
  `*_at` column; anything else is a 409 `invalid_transition`.
- `canceled` and `expired` are terminal: a new subscription is needed to come back.
- Periods are half-open `[current_period_start, current_period_end)`; during a trial the period is the
  trial itself and the billing anchor is the trial end (billing-rules rule 15).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from gateway.kernel.errors import InvalidTransition, ValidationFailed


class Status(StrEnum):
    TRIALING = "trialing"
    ACTIVE = "active"
    PAST_DUE = "past_due"
    PAUSED = "paused"
    CANCELED = "canceled"  # ended by a cancellation (now, or at the period end it was scheduled for)
    EXPIRED = "expired"  # ended without a cancellation: a trial that did not convert, unpaid after dunning
    # The first invoice (creation or trial end) of a charge_automatically subscription failed: no access
    # until it is paid (-> active); unpaid 23 hours after activation -> incomplete_expired (terminal).
    INCOMPLETE = "incomplete"
    INCOMPLETE_EXPIRED = "incomplete_expired"
    # Dunning ran out with the final action `unpaid`: the subscription is kept (and keeps renewing, so
    # paying catches up) but grants no access until its open invoices are paid (-> active).
    UNPAID = "unpaid"


LIVE_STATUSES = frozenset(
    {Status.TRIALING, Status.ACTIVE, Status.PAST_DUE, Status.PAUSED, Status.INCOMPLETE, Status.UNPAID}
)
TERMINAL_STATUSES = frozenset({Status.CANCELED, Status.EXPIRED, Status.INCOMPLETE_EXPIRED})
# Statuses whose periods roll over (and are billed): a paused subscription's time stands still.
RUNNING_STATUSES = frozenset({Status.ACTIVE, Status.PAST_DUE, Status.UNPAID})

TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.TRIALING: frozenset(
        {Status.ACTIVE, Status.PAST_DUE, Status.PAUSED, Status.CANCELED, Status.EXPIRED}
    ),
    Status.ACTIVE: frozenset({Status.PAST_DUE, Status.PAUSED, Status.CANCELED, Status.INCOMPLETE}),
    Status.PAST_DUE: frozenset(
        {Status.ACTIVE, Status.PAUSED, Status.CANCELED, Status.EXPIRED, Status.UNPAID}
    ),
    Status.UNPAID: frozenset({Status.ACTIVE, Status.CANCELED}),
    Status.PAUSED: frozenset({Status.ACTIVE, Status.CANCELED}),
    Status.CANCELED: frozenset(),
    Status.EXPIRED: frozenset(),
    Status.INCOMPLETE: frozenset({Status.ACTIVE, Status.INCOMPLETE_EXPIRED, Status.CANCELED}),
    Status.INCOMPLETE_EXPIRED: frozenset(),
}

# Column stamped when a status is entered. Entering `active` from `paused` stamps `resumed_at` instead.
STAMPS: dict[Status, tuple[str, ...]] = {
    Status.ACTIVE: ("activated_at",),
    Status.PAST_DUE: ("past_due_at",),
    Status.PAUSED: ("paused_at",),
    Status.CANCELED: ("ended_at",),
    Status.EXPIRED: ("ended_at",),
    Status.TRIALING: (),
    Status.INCOMPLETE: (),
    Status.INCOMPLETE_EXPIRED: ("ended_at",),
    Status.UNPAID: (),
}

# Stripe's window: a subscription whose first invoice is still unpaid this long after it started expires.
INCOMPLETE_EXPIRY = timedelta(hours=23)


class TrialEndBehavior(StrEnum):
    """What happens at trial end when the customer has no payment method (rule 17)."""

    CREATE_INVOICE = "create_invoice"  # convert; the invoice then goes through dunning (default)
    CANCEL = "cancel"  # the subscription expires
    PAUSE = "pause"  # the subscription pauses until resumed


class CollectionMethod(StrEnum):
    """How an invoice is paid: charged off-session at finalisation, or sent to be paid by transfer."""

    CHARGE_AUTOMATICALLY = "charge_automatically"
    SEND_INVOICE = "send_invoice"  # due `days_until_due` days after finalisation; overdue after that


MAX_DAYS_UNTIL_DUE = 365


class InvalidCollection(ValidationFailed):
    code = "invalid_collection_method"


def collection_terms(
    method: str | None, days_until_due: int | None, *, default_method: CollectionMethod
) -> tuple[CollectionMethod, int | None]:
    """A (method, days) pair as given by a caller: `days_until_due` only with `send_invoice`, 0..365.
    None days with `send_invoice` means "the setting's default" (resolved when the invoice is made)."""
    try:
        chosen = CollectionMethod(method) if method is not None else default_method
    except ValueError:
        raise InvalidCollection(f"unknown collection_method {method!r}", field="collection_method") from None
    if days_until_due is not None:
        if isinstance(days_until_due, bool) or not 0 <= days_until_due <= MAX_DAYS_UNTIL_DUE:
            raise InvalidCollection(
                f"days_until_due must be between 0 and {MAX_DAYS_UNTIL_DUE}", field="days_until_due"
            )
        if chosen is not CollectionMethod.SEND_INVOICE:
            raise InvalidCollection(
                "days_until_due applies only to collection_method send_invoice", field="days_until_due"
            )
    return chosen, days_until_due


class ChangeTiming(StrEnum):
    NOW = "now"
    PERIOD_END = "period_end"
    INCOMPLETE_EXPIRES = "incomplete_expires"


class ProrationBehavior(StrEnum):
    """Where a mid-period change's proration lines go (billing-rules rule 11); billing applies it."""

    CREATE_PRORATIONS = "create_prorations"  # default: pending items, billed on the next invoice
    ALWAYS_INVOICE = "always_invoice"  # invoice the lines now (interval changes always do, rule 13)
    NONE = "none"  # change without prorating: the new price starts at the next period


class CancellationFeedback(StrEnum):
    """Why a customer cancels (asked by the portal's cancel flow, or passed by the app). Stripe's
    `cancellation_details.feedback` values where they fit, so churn reports read the same."""

    TOO_EXPENSIVE = "too_expensive"
    MISSING_FEATURES = "missing_features"
    SWITCHED_SERVICE = "switched_service"
    UNUSED = "unused"
    TECHNICAL_ISSUES = "technical_issues"
    OTHER = "other"


# The longest free-text comment kept with a cancellation.
CANCELLATION_COMMENT_MAX = 500


class ResumeAnchor(StrEnum):
    NOW = "now"  # a new period starts at the resume (Stripe's default)
    UNCHANGED = "unchanged"  # keep the anchor; the paused stretch is simply not billed


class Stateful(Protocol):
    status: str


def transition(subject: Stateful, to: Status, at: datetime) -> Status:
    """Move `subject` to `to` if the table allows it, stamping the `*_at` columns; return the old status."""
    current = Status(subject.status)
    if to not in TRANSITIONS[current]:
        raise InvalidTransition(
            f"a {current.value} subscription cannot become {to.value}",
            current_status=current.value,
            requested_status=to.value,
        )
    stamps = ("resumed_at",) if current is Status.PAUSED and to is Status.ACTIVE else STAMPS[to]
    for column in stamps:
        # `activated_at` records the *first* activation; later ones are resumes or recoveries.
        if column == "activated_at" and getattr(subject, column, None) is not None:
            continue
        setattr(subject, column, at)
    subject.status = to.value
    return current


def require(subject: Stateful, allowed: frozenset[Status], action: str) -> Status:
    """Refuse an action (not a status change as such) in the wrong status, with the same 409 code."""
    current = Status(subject.status)
    if current not in allowed:
        raise InvalidTransition(
            f"cannot {action} a {current.value} subscription",
            current_status=current.value,
            allowed_statuses=sorted(s.value for s in allowed),
        )
    return current


class Due(StrEnum):
    """Time-driven steps, in the order they apply when several fall on the same instant."""

    TRIAL_WILL_END = "trial_will_end"
    AUTO_RESUME = "auto_resume"
    TRIAL_END = "trial_end"
    PERIOD_END = "period_end"
    INCOMPLETE_EXPIRES = "incomplete_expires"


TRIAL_WILL_END_NOTICE = timedelta(days=3)


class Timeline(Protocol):
    status: str
    trial_end: datetime | None
    trial_will_end_notified_at: datetime | None
    current_period_end: datetime
    resumes_at: datetime | None
    activated_at: datetime | None


def next_due(sub: Timeline) -> tuple[datetime, Due] | None:
    """The next time-driven step of `sub`, or None if nothing will happen on its own."""
    status = Status(sub.status)
    candidates: list[tuple[datetime, int, Due]] = []
    order = list(Due)
    if status is Status.TRIALING and sub.trial_end is not None:
        if sub.trial_will_end_notified_at is None:
            # Fires 3 days before the end, or immediately for shorter trials (rule 16): the caller
            # handles "immediately" by the step time being in the past.
            candidates.append(
                (sub.trial_end - TRIAL_WILL_END_NOTICE, order.index(Due.TRIAL_WILL_END), Due.TRIAL_WILL_END)
            )
        candidates.append((sub.trial_end, order.index(Due.TRIAL_END), Due.TRIAL_END))
    if status is Status.PAUSED and sub.resumes_at is not None:
        candidates.append((sub.resumes_at, order.index(Due.AUTO_RESUME), Due.AUTO_RESUME))
    if status in RUNNING_STATUSES:
        candidates.append((sub.current_period_end, order.index(Due.PERIOD_END), Due.PERIOD_END))
    if status is Status.INCOMPLETE and sub.activated_at is not None:
        candidates.append(
            (
                sub.activated_at + INCOMPLETE_EXPIRY,
                order.index(Due.INCOMPLETE_EXPIRES),
                Due.INCOMPLETE_EXPIRES,
            )
        )
    if not candidates:
        return None
    at, _, step = min(candidates)
    return at, step


def is_upgrade(old_monthly: Decimal, new_monthly: Decimal, old_rank: int, new_rank: int) -> bool:
    """Price decides (normalised monthly amounts); equal prices fall back to the tier rank."""
    if new_monthly != old_monthly:
        return new_monthly > old_monthly
    return new_rank > old_rank
