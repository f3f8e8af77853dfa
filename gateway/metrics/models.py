"""Metrics tables, written only by the metrics relay consumer (`recorder.py`) from subscription events.

`mrr_changes` is the history: one row each time a subscription's MRR changes, at the event's domain time
(the customer's test clock time when it has one). MRR at any instant is the last change at or before it,
so windows in the past are answered exactly, and no subscription state has to be kept per day.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base


class MrrChange(Base):
    __tablename__ = "mrr_changes"

    # Insert order breaks ties between changes at the same instant (a signup and a change in one second).
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    # The outbox event that caused it: at-least-once delivery applies each event once.
    event_id: Mapped[str] = mapped_column(String(40), unique=True)
    tenant_id: Mapped[str] = mapped_column(String(40), index=True)
    subscription_id: Mapped[str] = mapped_column(String(40))  # ix_mrr_changes_subscription_at
    test_clock_id: Mapped[str | None] = mapped_column(String(40))
    currency: Mapped[str] = mapped_column(String(3))
    at: Mapped[datetime]
    # Minor units per month: before discounts, and what the discounts take off (rule 32's setting
    # chooses at read time whether MRR is gross - discount or gross).
    gross: Mapped[int] = mapped_column(BigInteger)
    discount: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(20))
    event_type: Mapped[str] = mapped_column(String(60))
    # The plan and billing interval the subscription is on after the change (segments, plan flows). A
    # change of plan is a row even when the MRR stays the same. Null on rows recorded before they were.
    plan_id: Mapped[str | None] = mapped_column(String(40))
    interval: Mapped[str | None] = mapped_column(String(10))

    __table_args__ = (
        Index("ix_mrr_changes_currency_at", "currency", "at"),
        Index("ix_mrr_changes_subscription_at", "subscription_id", "at"),
    )


class MetricsSubscription(Base):
    """The recorder's view of each subscription: its last applied version and MRR, and its trial."""

    __tablename__ = "metrics_subscriptions"

    subscription_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(40), index=True)
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    currency: Mapped[str] = mapped_column(String(3))
    gross: Mapped[int] = mapped_column(BigInteger, default=0)
    discount: Mapped[int] = mapped_column(BigInteger, default=0)
    # When the trial ended (domain time) and whether it became paid (rule 37).
    trial_ended_at: Mapped[datetime | None]
    trial_converted: Mapped[bool | None]
    test_clock_id: Mapped[str | None] = mapped_column(String(40))
    plan_id: Mapped[str | None] = mapped_column(String(40))
    interval: Mapped[str | None] = mapped_column(String(10))
    updated_at: Mapped[datetime]


class MetricsMonthRollup(Base):
    """A closed month's MRR-side report, computed once (gateway/metrics/rollups.py). `fingerprint` sums
    up what it was computed from; a roll-up whose inputs have changed since is computed again."""

    __tablename__ = "metrics_month_rollups"

    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    clock_key: Mapped[str] = mapped_column(String(40), primary_key=True)  # "" for the wall clock
    subtract_discounts: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    month_start: Mapped[datetime] = mapped_column(primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(200))
    report: Mapped[dict[str, Any]]
    computed_at: Mapped[datetime]
