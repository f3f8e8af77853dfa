"""Payment tables. Tokens and display data only: no card number or CVC is ever stored (or received).
Amounts are integer minor units in BigInteger columns, in the row's `currency`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base


class PaymentProviderAccount(Base):
    """One provider account (a sandbox, a Stripe account, a Mollie profile). `credentials` is a JSON object
    sealed with the secret box (context `payment_provider_accounts.credentials:<id>`); never returned."""

    __tablename__ = "payment_provider_accounts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    credentials: Mapped[str] = mapped_column(Text)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ProviderCustomer(Base):
    """A Tiergate customer as one provider account knows it (created once, on first need)."""

    __tablename__ = "payment_provider_customers"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("payment_provider_accounts.id"))
    provider_customer_id: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("tenant_id", "account_id"),
        UniqueConstraint("account_id", "provider_customer_id"),
    )


class PaymentMethod(Base):
    __tablename__ = "payment_methods"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("payment_provider_accounts.id"))
    provider_method_id: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(16))
    brand: Mapped[str | None] = mapped_column(String(40))
    last4: Mapped[str | None] = mapped_column(String(4))
    exp_month: Mapped[int | None] = mapped_column(Integer)
    exp_year: Mapped[int | None] = mapped_column(Integer)
    mandate_reference: Mapped[str | None] = mapped_column(String(100))
    bank: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(12))  # active | detached | expired
    # 0 = the default; then the fallback order. Detached methods keep their last priority (unused).
    priority: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("account_id", "provider_method_id"),)


class Payment(Base):
    __tablename__ = "payments"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    invoice_id: Mapped[str | None] = mapped_column(ForeignKey("invoices.id"), index=True)
    # 1, 2, … per invoice: with the unique key below and the invoice's row lock, two workers never make
    # two attempts of the same number (and so never two charges under two keys).
    attempt: Mapped[int] = mapped_column(Integer)
    idempotency_key: Mapped[str] = mapped_column(String(120), unique=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("payment_provider_accounts.id"))
    method_id: Mapped[str | None] = mapped_column(ForeignKey("payment_methods.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(24))
    decline_code: Mapped[str | None] = mapped_column(String(40))
    decline_message: Mapped[str | None] = mapped_column(String(500))
    action_url: Mapped[str | None] = mapped_column(String(2000))
    provider_payment_id: Mapped[str | None] = mapped_column(String(200), index=True)
    provider_version: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    off_session: Mapped[bool] = mapped_column(Boolean, default=True)
    test_clock_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    settled_at: Mapped[datetime | None]
    # When reconciliation should look at it next (processing / unknown), on the wall clock.
    reconcile_after: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("invoice_id", "attempt"),
        Index("ix_payments_status_reconcile", "status", "reconcile_after"),
        Index("ix_payments_tenant_created", "tenant_id", "created_at"),
    )


class Refund(Base):
    __tablename__ = "refunds"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"), index=True)
    credit_note_id: Mapped[str | None] = mapped_column(String(40))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(12))  # pending | succeeded | failed
    provider_refund_id: Mapped[str | None] = mapped_column(String(200))
    idempotency_key: Mapped[str] = mapped_column(String(120), unique=True)
    reason: Mapped[str | None] = mapped_column(String(30))
    created_at: Mapped[datetime]
    # A refund left `pending`: when reconciliation should ask the provider about it (wall clock).
    reconcile_after: Mapped[datetime | None]


class ProviderEventRecord(Base):
    """An inbound provider webhook, stored once per (account, provider event id) and applied by the
    `payments` outbox consumer."""

    __tablename__ = "provider_events"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("payment_provider_accounts.id"))
    provider_event_id: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(40))
    # The provider object it is about (payment, refund or method id): an event that arrives before the
    # charge's own answer is committed is `unmatched`, and applied again once the payment knows its id.
    object_id: Mapped[str | None] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    received_at: Mapped[datetime]
    processed_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(40))

    __table_args__ = (
        UniqueConstraint("account_id", "provider_event_id"),
        Index("ix_provider_events_object", "account_id", "object_id"),
    )


class SetupSessionRecord(Base):
    __tablename__ = "setup_sessions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("payment_provider_accounts.id"))
    provider_session_id: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(String(2000))
    return_url: Mapped[str] = mapped_column(String(2000))
    status: Mapped[str] = mapped_column(String(12))  # open | complete | expired
    created_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]
