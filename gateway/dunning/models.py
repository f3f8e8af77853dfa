"""Dunning's tables: campaigns (the vendor's rules), which campaign a plan or a customer uses, and one
run per invoice in dunning (where its retries stand)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base


class DunningCampaign(Base):
    """A retry schedule, the e-mails of its steps, what access stays during it and what happens when it
    runs out. Platform data (like coupons): a tenant never sets its own dunning."""

    __tablename__ = "dunning_campaigns"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    # Hours after the first failure at which each retry is due (strictly increasing).
    retry_offsets_hours: Mapped[list[int]] = mapped_column(JSON)
    # "<n>" → template: sent when attempt n has failed (0 = the failure that started dunning).
    emails: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    final_action: Mapped[str] = mapped_column(String(16))  # cancel | unpaid | pause | keep_past_due
    access: Mapped[str] = mapped_column(String(12))  # keep | read_only | revoke
    read_only_role: Mapped[str | None] = mapped_column(String(64))
    revoked_features: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class DunningOverride(Base):
    """A plan's or a customer's campaign instead of the default (a customer's wins over its plan's)."""

    __tablename__ = "dunning_overrides"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    plan_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id"), unique=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("dunning_campaigns.id"), index=True)
    created_at: Mapped[datetime]


class DunningRun(Base):
    """One invoice in dunning. `slots_done` counts the campaign's scheduled retries taken (charged, or
    skipped for want of a usable method); `attempts` every charge dunning made (fallbacks and the retry
    a new method triggers included). Unique per invoice: one run, whatever races."""

    __tablename__ = "dunning_runs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"))
    subscription_id: Mapped[str | None] = mapped_column(ForeignKey("subscriptions.id"), index=True)
    campaign_id: Mapped[str | None] = mapped_column(ForeignKey("dunning_campaigns.id"))
    # The campaign's rules as they were when the run started (a later edit does not move its retries).
    rules: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(12))  # active | recovered | exhausted | stopped
    # Whether this invoice may narrow access (a renewal of the current period; never an add-on's).
    narrows_access: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime]
    slots_done: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    # The next attempt is an immediate one (a fallback method, a new method), not a scheduled slot.
    immediate: Mapped[bool] = mapped_column(Boolean, default=False)
    excluded_methods: Mapped[list[str]] = mapped_column(JSON, default=list)
    waiting_for: Mapped[str | None] = mapped_column(String(24))  # new_payment_method | account_updater
    last_decline_code: Mapped[str | None] = mapped_column(String(40))
    last_payment_id: Mapped[str | None] = mapped_column(String(40))
    amount_due: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    recovered_amount: Mapped[int] = mapped_column(Integer, default=0)
    stop_reason: Mapped[str | None] = mapped_column(String(40))
    final_action: Mapped[str | None] = mapped_column(String(16))
    ended_at: Mapped[datetime | None]
    test_clock_id: Mapped[str | None] = mapped_column(ForeignKey("test_clocks.id"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(Integer, default=1)

    __table_args__ = (
        UniqueConstraint("invoice_id", name="uq_dunning_runs_invoice"),
        Index("ix_dunning_runs_due", "status", "next_attempt_at"),
    )
