"""Customer organisations (tenants), their users and memberships. `customers.id` *is* the tenant id
that every tenant-owned row elsewhere carries as `tenant_id`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    # Fixed by the first invoice (billing-rules rule 23); NULL until then unless set explicitly.
    currency: Mapped[str | None] = mapped_column(String(3))
    country: Mapped[str | None] = mapped_column(String(2))
    tax_ids: Mapped[list[Any]] = mapped_column(default=list)
    # Billing details printed on invoices. address_region is an ISO 3166-2 subdivision code without the
    # country prefix ("CA" for US-CA): tax rates are looked up by (country, region).
    address_line1: Mapped[str | None] = mapped_column(String(200))
    address_line2: Mapped[str | None] = mapped_column(String(200))
    address_city: Mapped[str | None] = mapped_column(String(100))
    address_postal_code: Mapped[str | None] = mapped_column(String(20))
    address_region: Mapped[str | None] = mapped_column(String(3))
    # "none" | "exempt" (no tax, "Tax exempt" on invoices) | "reverse" (reverse charge).
    tax_exempt: Mapped[str] = mapped_column(String(10), default="none", server_default="none")
    default_role: Mapped[str] = mapped_column(String(60), default="viewer")
    # Language of invoices, credit notes and e-mails, as gateway.i18n.normalize_locale stores it ("nl",
    # "nl_BE"); NULL = English.
    preferred_locale: Mapped[str | None] = mapped_column(String(16))
    # Customers on a test clock live on that clock's time (subscriptions domain owns the table).
    test_clock_id: Mapped[str | None] = mapped_column(ForeignKey("test_clocks.id"), index=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    # The payment provider account that collects from this customer (payments domain); NULL = the default.
    payment_provider_account_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Membership(Base):
    __tablename__ = "memberships"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    role: Mapped[str] = mapped_column(String(60))
    status: Mapped[str] = mapped_column(String(12), default="active")
    created_at: Mapped[datetime]
    removed_at: Mapped[datetime | None]

    __table_args__ = (UniqueConstraint("tenant_id", "user_id"),)
