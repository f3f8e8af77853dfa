"""Request and response types of the subscriptions, test-clock and events APIs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from gateway.db.outbox import OutboxEvent
from gateway.subscriptions.migrations import MigrationResult
from gateway.subscriptions.models import Subscription as SubscriptionRow
from gateway.subscriptions.models import SubscriptionAddon
from gateway.subscriptions.models import TestClock as TestClockRow
from gateway.web.schemas import Metadata
from gateway.web.timestamps import AwareTimestamp

Ref = Annotated[str, Meta(min_length=1, max_length=200)]
Quantity = Annotated[int, Meta(ge=1, le=1_000_000)]


ProrationBehaviorIn = Literal["create_prorations", "always_invoice", "none"]
Code = Annotated[str, Meta(min_length=1, max_length=100)]
CollectionMethodIn = Annotated[
    Literal["charge_automatically", "send_invoice"],
    Meta(
        description="charge_automatically: the default method is charged at finalisation; send_invoice: "
        "the invoice is sent with bank-transfer instructions and falls due `days_until_due` days later"
    ),
]
DaysUntilDue = Annotated[
    int,
    Meta(ge=0, le=365, description="send_invoice only: days from finalisation to the due date"),
]


class AddonIn(Struct, forbid_unknown_fields=True):
    price: Ref
    quantity: Quantity = 1
    # Where the proration of a mid-period add-on goes (ignored at subscription creation).
    proration_behavior: ProrationBehaviorIn | None = None


class SubscriptionCreate(Struct, forbid_unknown_fields=True):
    customer: Ref
    price: Ref
    quantity: Quantity = 1
    currency: Annotated[str, Meta(min_length=3, max_length=3, pattern=r"^[A-Za-z]{3}$")] | None = None
    trial_days: Annotated[int, Meta(ge=0, le=730)] | None = None
    trial_end_behavior: Literal["create_invoice", "cancel", "pause"] = "create_invoice"
    alignment: Literal["anniversary", "calendar"] | None = None
    addons: Annotated[list[AddonIn], Meta(max_length=20)] = msgspec.field(default_factory=list)
    metadata: Metadata | None = None
    # A coupon id or a customer-facing promotion code, redeemed with the subscription (one of them).
    coupon: Code | None = None
    promotion_code: Code | None = None
    # An admin's override of "one trial per customer per product" (billing-rules rule 17).
    allow_repeat_trial: bool = False
    collection_method: CollectionMethodIn | None = None  # default charge_automatically
    days_until_due: DaysUntilDue | None = None  # default: the `days_until_due` setting


class SubscriptionUpdate(Struct, forbid_unknown_fields=True):
    """Fields left out stay as they are. Changing `collection_method` drops the old `days_until_due`
    unless one is given; invoices already finalised keep their terms."""

    collection_method: CollectionMethodIn | None = None
    days_until_due: DaysUntilDue | None = None
    trial_end_behavior: Literal["create_invoice", "cancel", "pause"] | None = None


class PlanChange(Struct, forbid_unknown_fields=True):
    price: Ref
    quantity: Quantity | None = None
    timing: Literal["now", "period_end"] | None = None
    # Default: the plan's setting, else `create_prorations` (billing-rules rule 11).
    proration_behavior: ProrationBehaviorIn | None = None


class QuantityChange(Struct, forbid_unknown_fields=True):
    """Either `quantity` (the new seat count) or `quantity_delta` (seats to add, or remove when negative,
    applied to the count at the moment of the change, so concurrent additions all count)."""

    quantity: Quantity | None = None
    quantity_delta: Annotated[int, Meta(ge=-1_000_000, le=1_000_000)] | None = None
    proration_behavior: ProrationBehaviorIn | None = None


class PauseRequest(Struct, forbid_unknown_fields=True):
    resumes_at: AwareTimestamp | None = None


class ExtendTrialRequest(Struct, forbid_unknown_fields=True):
    trial_end: AwareTimestamp


class ResumeRequest(Struct, forbid_unknown_fields=True):
    billing_cycle_anchor: Literal["now", "unchanged"] = "now"


# domain.CancellationFeedback's values (a Literal so the OpenAPI document lists them).
CancellationFeedbackValue = Literal[
    "too_expensive", "missing_features", "switched_service", "unused", "technical_issues", "other"
]


class CancelRequest(Struct, forbid_unknown_fields=True):
    at_period_end: bool = True
    reason: Annotated[str, Meta(max_length=200)] | None = None
    # Why the customer cancels, and their own words (the portal's cancel form asks both).
    feedback: CancellationFeedbackValue | None = None
    comment: Annotated[str, Meta(max_length=500)] | None = None
    # With `at_period_end: false` only: credit the unused part of the paid period to the customer balance
    # (`prorate`), and invoice at once what is left (usage so far, pending items, that credit).
    prorate: bool = False
    invoice_now: bool = False


class CancellationDetails(Struct):
    reason: str | None
    feedback: str | None
    comment: str | None

    @classmethod
    def of(cls, row: SubscriptionRow) -> CancellationDetails | None:
        if (
            row.cancellation_reason is None
            and row.cancellation_feedback is None
            and row.cancellation_comment is None
        ):
            return None
        return cls(row.cancellation_reason, row.cancellation_feedback, row.cancellation_comment)


class Addon(Struct):
    id: str
    plan: str
    price: str
    quantity: int
    created_at: datetime
    removed_at: datetime | None

    @classmethod
    def of(cls, row: SubscriptionAddon) -> Addon:
        return cls(row.id, row.plan_id, row.price_id, row.quantity, row.created_at, row.removed_at)


class ScheduledChange(Struct):
    price: str
    quantity: int | None
    effective_at: datetime | None


class Subscription(Struct):
    id: str
    object: Literal["subscription"]
    customer: str
    status: str
    plan: str
    plan_version: str
    price: str
    quantity: int
    currency: str
    interval: str
    alignment: str
    billing_cycle_anchor: datetime
    current_period_start: datetime
    current_period_end: datetime
    started_at: datetime
    trial_start: datetime | None
    trial_end: datetime | None
    trial_end_behavior: str
    collection_method: str
    days_until_due: int | None
    cancel_at_period_end: bool
    cancel_at: datetime | None
    canceled_at: datetime | None
    cancellation_details: CancellationDetails | None
    ended_at: datetime | None
    paused_at: datetime | None
    resumes_at: datetime | None
    scheduled_change: ScheduledChange | None
    addons: list[Addon]
    test_clock: str | None
    metadata: dict[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: SubscriptionRow, addons: list[SubscriptionAddon]) -> Subscription:
        scheduled = (
            ScheduledChange(row.scheduled_price_id, row.scheduled_quantity, row.scheduled_change_at)
            if row.scheduled_price_id
            else None
        )
        return cls(
            row.id,
            "subscription",
            row.tenant_id,
            row.status,
            row.plan_id,
            row.plan_version_id,
            row.price_id,
            row.quantity,
            row.currency,
            row.interval,
            row.alignment,
            row.billing_cycle_anchor,
            row.current_period_start,
            row.current_period_end,
            row.started_at,
            row.trial_start,
            row.trial_end,
            row.trial_end_behavior,
            row.collection_method,
            row.days_until_due,
            row.cancel_at_period_end,
            row.cancel_at,
            row.canceled_at,
            CancellationDetails.of(row),
            row.ended_at,
            row.paused_at,
            row.resumes_at,
            scheduled,
            [Addon.of(a) for a in addons],
            row.test_clock_id,
            row.metadata_,
            row.version,
            row.created_at,
            row.updated_at,
        )


class SubscriptionList(Struct):
    data: list[Subscription]
    has_more: bool
    next_cursor: str | None


class TestClockCreate(Struct, forbid_unknown_fields=True):
    __test__ = False
    frozen_time: AwareTimestamp | None = None
    name: Annotated[str, Meta(max_length=200)] | None = None


class TestClockAdvance(Struct, forbid_unknown_fields=True):
    __test__ = False
    frozen_time: AwareTimestamp


class TestClockAttach(Struct, forbid_unknown_fields=True):
    __test__ = False
    customer: Ref


class TestClock(Struct):
    __test__ = False
    id: str
    object: Literal["test_clock"]
    name: str | None
    frozen_time: datetime
    status: str
    created_at: datetime
    steps_applied: int | None = None

    @classmethod
    def of(cls, row: TestClockRow, steps: int | None = None) -> TestClock:
        return cls(row.id, "test_clock", row.name, row.frozen_time, row.status, row.created_at, steps)


class TestClockList(Struct):
    __test__ = False
    data: list[TestClock]
    has_more: bool
    next_cursor: str | None


class Event(Struct):
    id: str
    object: Literal["event"]
    seq: int
    type: str
    aggregate_type: str
    aggregate_id: str
    customer: str | None
    occurred_at: datetime
    data: dict[str, Any]

    @classmethod
    def of(cls, row: OutboxEvent) -> Event:
        return cls(
            row.event_id,
            "event",
            row.seq,
            row.type,
            row.aggregate_type,
            row.aggregate_id,
            row.tenant_id,
            row.occurred_at,
            row.data,
        )


class EventList(Struct):
    data: list[Event]
    has_more: bool
    next_cursor: str | None


class VersionMigrationRequest(Struct, forbid_unknown_fields=True):
    """Which live subscriptions of the plan move to the version in the path. Omitted filters match all."""

    from_versions: (
        Annotated[
            list[Annotated[int, Meta(ge=1, le=1_000_000)]],
            Meta(min_length=1, max_length=100, description="Versions to move from (default: all older)"),
        ]
        | None
    ) = None
    currency: (
        Annotated[
            str,
            Meta(min_length=3, max_length=3, pattern=r"^[A-Z]{3}$", description="Only subscriptions in it"),
        ]
        | None
    ) = None
    interval: Literal["month", "quarter", "year"] | None = None
    customers: (
        Annotated[
            list[Annotated[str, Meta(min_length=1, max_length=40)]],
            Meta(min_length=1, max_length=100, description="Only these customers' subscriptions"),
        ]
        | None
    ) = None
    dry_run: bool = False


class MigratedSubscription(Struct):
    id: str
    customer: str
    from_version: int


class VersionMigration(Struct):
    """A migration's outcome. `matched`: live subscriptions the rule matched; `migrated`: moved by this
    call (at most 1,000; 0 in a dry run); `remaining`: still matching (call again to move them);
    `subscriptions`: the first 100 that would move (dry run) or that moved."""

    object: Literal["plan_version_migration"]
    plan: str
    to_version: int
    from_versions: list[int]
    dry_run: bool
    matched: int
    migrated: int
    remaining: int
    subscriptions: list[MigratedSubscription]
    has_more: bool

    @classmethod
    def of(cls, result: MigrationResult) -> VersionMigration:
        return cls(
            "plan_version_migration",
            result.plan,
            result.to_version,
            result.from_versions,
            result.dry_run,
            result.matched,
            result.migrated,
            result.remaining,
            [MigratedSubscription(m.id, m.customer, m.from_version) for m in result.subscriptions],
            result.has_more,
        )
