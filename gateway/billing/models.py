"""Billing tables. Every row is tenant-owned (`tenant_id` = the customer organisation); amounts are
integer minor units in BigInteger columns, in the row's `currency`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base


class Invoice(Base):
    __tablename__ = "invoices"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    subscription_id: Mapped[str | None] = mapped_column(ForeignKey("subscriptions.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    billing_reason: Mapped[str] = mapped_column(String(24))
    currency: Mapped[str] = mapped_column(String(3))
    # Assigned at finalisation from `number_sequences`; NULL while a draft (rule 21).
    number: Mapped[str | None] = mapped_column(String(40), unique=True)
    period_start: Mapped[datetime | None]
    period_end: Mapped[datetime | None]
    subtotal: Mapped[int] = mapped_column(BigInteger, default=0)
    discount_total: Mapped[int] = mapped_column(BigInteger, default=0)
    tax_total: Mapped[int] = mapped_column(BigInteger, default=0)
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    # Customer credit consumed at finalisation (rule 24); amount_due = total − credit_applied.
    credit_applied: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_due: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_paid: Mapped[int] = mapped_column(BigInteger, default=0)
    # Reduced by credit notes on an open invoice; the invoice is paid when it reaches 0.
    amount_remaining: Mapped[int] = mapped_column(BigInteger, default=0)
    tax_percent: Mapped[str | None] = mapped_column(String(12))
    tax_inclusive: Mapped[bool] = mapped_column(Boolean, default=False)
    tax_rate_id: Mapped[str | None] = mapped_column(String(40))
    tax_label: Mapped[str | None] = mapped_column(String(100))
    reverse_charge: Mapped[bool] = mapped_column(Boolean, default=False)
    legal_mentions: Mapped[list[Any]] = mapped_column(default=list)
    # Who and to whom, frozen at finalisation: a later address change must not rewrite an issued invoice.
    issuer: Mapped[dict[str, Any]] = mapped_column(default=dict)
    customer_details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    discounts: Mapped[list[Any]] = mapped_column(default=list)
    # One invoice per subscription period and reason (rule 3): a rerun or a second worker that builds the
    # same invoice hits this unique key instead of billing twice. NULL for invoices with no natural key.
    period_key: Mapped[str | None] = mapped_column(String(120), unique=True)
    auto_advance: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str | None] = mapped_column(String(500))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    test_clock_id: Mapped[str | None] = mapped_column(String(40))
    # charge_automatically (the default method is charged at finalisation; due at once) or send_invoice
    # (due `days_until_due` days after finalisation, paid by transfer quoting `payment_reference`).
    collection_method: Mapped[str] = mapped_column(
        String(20), default="charge_automatically", server_default="charge_automatically"
    )
    days_until_due: Mapped[int | None] = mapped_column(Integer)
    # ISO 11649 creditor reference ("RF…", from the number) and the bank details, frozen at finalisation.
    payment_reference: Mapped[str | None] = mapped_column(String(40))
    payment_instructions: Mapped[dict[str, Any] | None]
    # When a send_invoice invoice became overdue (its due date): `invoice.overdue` is raised once, here.
    overdue_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    finalized_at: Mapped[datetime | None]
    due_date: Mapped[datetime | None]
    paid_at: Mapped[datetime | None]
    voided_at: Mapped[datetime | None]
    marked_uncollectible_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(Integer, default=1)

    __table_args__ = (
        Index("ix_invoices_tenant_created", "tenant_id", "created_at"),
        # The overdue sweep: open send_invoice invoices by due date.
        Index("ix_invoices_collection_due", "collection_method", "status", "due_date"),
    )


class InvoiceLine(Base):
    __tablename__ = "invoice_lines"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(String(500))
    price_id: Mapped[str | None] = mapped_column(String(40))
    quantity: Mapped[int | None] = mapped_column(BigInteger)
    # Exact per-unit amount in minor units (may hold fractions of a cent: "0.06").
    unit_amount: Mapped[str | None] = mapped_column(String(40))
    amount: Mapped[int] = mapped_column(BigInteger)
    discount_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    tax_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    # amount − discount; it still contains the tax when tax_behavior is inclusive (the API shows `total`
    # and `amount_excluding_tax` instead, which say what they mean).
    net_amount: Mapped[int] = mapped_column(BigInteger)
    # Whether the line's amount contains its tax: from its price's tax_behavior, else the tax rate.
    tax_behavior: Mapped[str] = mapped_column(String(9), default="exclusive", server_default="exclusive")
    period_start: Mapped[datetime | None]
    period_end: Mapped[datetime | None]
    proration: Mapped[bool] = mapped_column(Boolean, default=False)
    invoice_item_id: Mapped[str | None] = mapped_column(String(40))


class InvoiceItem(Base):
    """A pending charge or credit (a proration, a one-time charge) waiting for the customer's next
    invoice; `invoice_id` is set once an invoice takes it."""

    __tablename__ = "invoice_items"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    subscription_id: Mapped[str | None] = mapped_column(ForeignKey("subscriptions.id"), index=True)
    invoice_id: Mapped[str | None] = mapped_column(ForeignKey("invoices.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)
    description: Mapped[str] = mapped_column(String(500))
    price_id: Mapped[str | None] = mapped_column(String(40))
    quantity: Mapped[int | None] = mapped_column(BigInteger)
    unit_amount: Mapped[str | None] = mapped_column(String(40))
    period_start: Mapped[datetime | None]
    period_end: Mapped[datetime | None]
    proration: Mapped[bool] = mapped_column(Boolean, default=False)
    discountable: Mapped[bool] = mapped_column(Boolean, default=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    created_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]


class CreditGrant(Base):
    """Customer credit: a proration credit, a credit note to the balance, or an admin grant. Consumed by
    invoices at finalisation, lowest `priority` first, then earliest expiry (rule 24)."""

    __tablename__ = "credit_grants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime | None]
    source: Mapped[str] = mapped_column(String(20))  # proration | credit_note | manual
    source_id: Mapped[str | None] = mapped_column(String(40))
    description: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime]
    voided_at: Mapped[datetime | None]


class BalanceTransaction(Base):
    """The ledger of customer credit: + when a grant is made, − when an invoice consumes it."""

    __tablename__ = "balance_transactions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    grant_id: Mapped[str] = mapped_column(ForeignKey("credit_grants.id"), index=True)
    invoice_id: Mapped[str | None] = mapped_column(String(40))
    credit_note_id: Mapped[str | None] = mapped_column(String(40))
    type: Mapped[str] = mapped_column(String(24))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime]


class CreditNote(Base):
    __tablename__ = "credit_notes"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), index=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    status: Mapped[str] = mapped_column(String(12))  # issued | void
    currency: Mapped[str] = mapped_column(String(3))
    subtotal: Mapped[int] = mapped_column(BigInteger)  # credited amount before tax
    tax_amount: Mapped[int] = mapped_column(BigInteger)
    total: Mapped[int] = mapped_column(BigInteger)  # subtotal + tax (tax inside subtotal if inclusive)
    # Where the credit went: off the open invoice's remaining amount, onto the customer balance, or
    # refunded outside Tiergate (recorded only).
    credit_to_invoice: Mapped[int] = mapped_column(BigInteger, default=0)
    credit_to_balance: Mapped[int] = mapped_column(BigInteger, default=0)
    out_of_band: Mapped[int] = mapped_column(BigInteger, default=0)
    reason: Mapped[str | None] = mapped_column(String(30))
    memo: Mapped[str | None] = mapped_column(String(500))
    lines: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime]
    voided_at: Mapped[datetime | None]


class NumberSequence(Base):
    """Gapless document numbers per issuer and kind (rule 21). The row is locked by the UPDATE that takes
    a number, so concurrent finalisations queue; a rolled-back finalisation gives its number back."""

    __tablename__ = "number_sequences"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    last_value: Mapped[int] = mapped_column(BigInteger, default=0)


class PeriodUsage(Base):
    """The quantity of a metered price used in one subscription period (the metering issue will feed
    it; until then it is reported through the API). Billed in arrears when the period closes."""

    __tablename__ = "period_usage"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    subscription_id: Mapped[str] = mapped_column(ForeignKey("subscriptions.id"))
    price_id: Mapped[str] = mapped_column(ForeignKey("prices.id"))
    period_start: Mapped[datetime]
    period_end: Mapped[datetime]
    quantity: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("subscription_id", "price_id", "period_start"),)


class Discount(Base):
    """A coupon applied to a subscription (or to every invoice of a customer when subscription_id is
    NULL). The coupon's terms are copied: a coupon edited or deleted later does not change them."""

    __tablename__ = "discounts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    subscription_id: Mapped[str | None] = mapped_column(ForeignKey("subscriptions.id"), index=True)
    coupon_id: Mapped[str] = mapped_column(String(40))
    promotion_code_id: Mapped[str | None] = mapped_column(String(40))
    duration: Mapped[str] = mapped_column(String(12))
    duration_in_months: Mapped[int | None]
    percent_off: Mapped[str | None] = mapped_column(String(12))
    amount_off: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    start: Mapped[datetime]
    # Once-coupons end after their first invoice; set then, so later invoices skip them cheaply.
    ended_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
