"""Subscription tables. Every row is tenant-owned (`tenant_id` = the customer organisation)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base


class TestClock(Base):
    """A clock that customers can be attached to; their subscriptions live on its `frozen_time`."""

    __tablename__ = "test_clocks"
    __test__ = False  # not a pytest test class, despite the name

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    frozen_time: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(12), default="ready")
    created_at: Mapped[datetime]


class Subscription(Base):
    __tablename__ = "subscriptions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    status: Mapped[str] = mapped_column(String(24))  # up to "incomplete_expired"
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"))
    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"))
    # The grants this subscriber bought: a later plan version does not change them (grandfathering), until
    # a migration moves the subscription to it (migrations.py; the price stays).
    plan_version_id: Mapped[str] = mapped_column(ForeignKey("plan_versions.id"))
    price_id: Mapped[str] = mapped_column(ForeignKey("prices.id"))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    currency: Mapped[str] = mapped_column(String(3))
    interval: Mapped[str] = mapped_column(String(10))
    alignment: Mapped[str] = mapped_column(String(12))
    billing_cycle_anchor: Mapped[datetime]
    current_period_start: Mapped[datetime]
    current_period_end: Mapped[datetime]
    started_at: Mapped[datetime]
    trial_start: Mapped[datetime | None]
    trial_end: Mapped[datetime | None]
    trial_end_behavior: Mapped[str] = mapped_column(String(16))
    # How its invoices are paid (charge_automatically | send_invoice) and, for send_invoice, the days from
    # finalisation to the due date (NULL: the `days_until_due` setting).
    collection_method: Mapped[str] = mapped_column(
        String(20), default="charge_automatically", server_default="charge_automatically"
    )
    days_until_due: Mapped[int | None] = mapped_column(Integer)
    trial_will_end_notified_at: Mapped[datetime | None]
    activated_at: Mapped[datetime | None]
    past_due_at: Mapped[datetime | None]
    # While a renewal is in dunning (gateway/dunning), what its campaign leaves of access: NULL = keep,
    # "read_only:<role>" (members act with that policy role alone) or "revoke"; features switched off.
    dunning_access: Mapped[str | None] = mapped_column(String(64))
    dunning_revoked_features: Mapped[list[str] | None] = mapped_column(JSON)
    paused_at: Mapped[datetime | None]
    resumes_at: Mapped[datetime | None]
    resumed_at: Mapped[datetime | None]
    cancel_at_period_end: Mapped[bool] = mapped_column(default=False)
    cancel_at: Mapped[datetime | None]
    canceled_at: Mapped[datetime | None]
    cancellation_reason: Mapped[str | None] = mapped_column(String(200))
    # The customer's answer to "why?" (domain.CancellationFeedback) and their own words, if any.
    cancellation_feedback: Mapped[str | None] = mapped_column(String(32))
    cancellation_comment: Mapped[str | None] = mapped_column(String(500))
    ended_at: Mapped[datetime | None]
    # A change that takes effect at the period end (a downgrade by default).
    scheduled_price_id: Mapped[str | None] = mapped_column(ForeignKey("prices.id"))
    scheduled_quantity: Mapped[int | None]
    scheduled_change_at: Mapped[datetime | None]
    # When the next time-driven step is due (trial end, rollover, auto-resume); NULL = nothing pending.
    # Denormalised from the fields above by the service so the scheduler finds due rows with an index.
    next_action_at: Mapped[datetime | None]
    test_clock_id: Mapped[str | None] = mapped_column(ForeignKey("test_clocks.id"), index=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    # Incremented on every change; events carry it so consumers can discard stale ones (rule 31).
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    # In the order of the billing run's claim query (SubscriptionRepository.due): clock, then due time, then
    # id. With next_action_at alone, every batch sorted all due rows to find its first 200.
    __table_args__ = (Index("ix_subscriptions_due", "test_clock_id", "next_action_at", "id"),)


class SubscriptionAddon(Base):
    __tablename__ = "subscription_addons"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    subscription_id: Mapped[str] = mapped_column(ForeignKey("subscriptions.id"), index=True)
    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"))
    plan_version_id: Mapped[str] = mapped_column(ForeignKey("plan_versions.id"))
    price_id: Mapped[str] = mapped_column(ForeignKey("prices.id"))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    removed_at: Mapped[datetime | None]
