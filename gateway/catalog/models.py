"""Catalog tables. Products, features and plans are the platform's (not tenant-owned): every tenant
subscribes to the same catalog. Prices are immutable once created except for `active` (Stripe's rule),
and plan grants are versioned, so existing subscribers keep the terms they bought (grandfathering)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base


class Product(Base):
    __tablename__ = "products"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # {locale: name} shown to customers who read that language (catalog.display_name); NULL = `name` only.
    name_translations: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    description: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Feature(Base):
    __tablename__ = "features"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    unit: Mapped[str | None] = mapped_column(String(40))
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    # Metered features only: the meter (key) whose events are the feature's usage, and the percentages of
    # the period's allowance at which `usage.threshold_reached` fires (NULL = the setting's default).
    meter: Mapped[str | None] = mapped_column(String(100))
    alert_thresholds: Mapped[list[Any] | None] = mapped_column(default=None)


class Plan(Base):
    __tablename__ = "plans"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"), index=True)
    key: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # {locale: name} of the tier for customers who read that language (catalog.display_name).
    name_translations: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    description: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(10))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Ordering of tiers (basic 1 < pro 2 < enterprise 3) for upgrade/downgrade when prices can't tell.
    rank: Mapped[int] = mapped_column(Integer, default=0)
    trial_days: Mapped[int | None]
    custom_pricing: Mapped[bool] = mapped_column(Boolean, default=False)
    # Add-ons only: plan keys they may be attached to (empty = any base plan).
    compatible_plans: Mapped[list[Any]] = mapped_column(default=list)
    # Where this plan's mid-period changes put their proration (billing-rules rule 11); NULL = the
    # `proration_behavior` setting. A request's own `proration_behavior` overrides both.
    proration_behavior: Mapped[str | None] = mapped_column(String(20))
    current_version: Mapped[int] = mapped_column(Integer, default=1)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class PlanVersion(Base):
    __tablename__ = "plan_versions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("plan_id", "version"),)


class PlanGrant(Base):
    __tablename__ = "plan_grants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    plan_version_id: Mapped[str] = mapped_column(ForeignKey("plan_versions.id"), index=True)
    feature_id: Mapped[str] = mapped_column(ForeignKey("features.id"))
    # NULL = unlimited (gauge/metered); always NULL for boolean features.
    limit: Mapped[int | None] = mapped_column("limit_value", BigInteger)
    soft: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (UniqueConstraint("plan_version_id", "feature_id"),)


class Price(Base):
    __tablename__ = "prices"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"), index=True)
    lookup_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    nickname: Mapped[str | None] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(20))
    interval: Mapped[str] = mapped_column(String(10))
    usage_type: Mapped[str] = mapped_column(String(10))
    alignment: Mapped[str] = mapped_column(String(12))
    # {"USD": {"unit_amount": "900"}, "EUR": {...}} or {"USD": {"tiers": [...]}}, amounts in minor units.
    currency_options: Mapped[dict[str, Any]]
    package_size: Mapped[int | None]
    package_rounding: Mapped[str] = mapped_column(String(4), default="up")
    metered_feature: Mapped[str | None] = mapped_column(String(100))
    # Metered prices: the meter (key) whose usage the price rates, and the event properties whose groups
    # are billed on lines of their own (NULL = one line for the meter).
    meter: Mapped[str | None] = mapped_column(String(100))
    usage_group_by: Mapped[list[Any] | None] = mapped_column(default=None)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    # inclusive / exclusive (the amounts contain the tax, or tax is added); None follows the tax rate.
    tax_behavior: Mapped[str | None] = mapped_column(String(9))


class Coupon(Base):
    """Platform-wide like the rest of the catalog. Money terms are immutable after creation; DELETE only
    clears `active`, so discounts already redeemed keep working."""

    __tablename__ = "coupons"

    # "cpn_…" or a caller-chosen id such as "SUMMER20" (case-sensitive, like Stripe's).
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    # A decimal string ("12.5"): exact, and the same on SQLite and PostgreSQL.
    percent_off: Mapped[str | None] = mapped_column(String(8))
    amount_off: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    # Amounts off in further currencies, minor units: {"EUR": 900}. Never repeats `currency`.
    currency_options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    duration: Mapped[str] = mapped_column(String(10))
    duration_in_months: Mapped[int | None] = mapped_column(Integer)
    max_redemptions: Mapped[int | None] = mapped_column(Integer)
    # Only ever changed by the conditional UPDATEs in CatalogRepository.claim_coupon/release_coupon.
    times_redeemed: Mapped[int] = mapped_column(Integer, default=0)
    redeem_by: Mapped[datetime | None]
    # Plan keys the coupon is restricted to; NULL = every plan.
    applies_to_plans: Mapped[list[Any] | None] = mapped_column(default=None)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        CheckConstraint("(percent_off IS NULL) <> (amount_off IS NULL)", name="one_kind_of_discount"),
        CheckConstraint("(amount_off IS NULL) = (currency IS NULL)", name="amount_has_currency"),
        # The database's own guard behind the conditional UPDATE: a limit can never be exceeded.
        CheckConstraint(
            "times_redeemed >= 0 AND (max_redemptions IS NULL OR times_redeemed <= max_redemptions)",
            name="redemptions_within_limit",
        ),
    )


class PromotionCode(Base):
    __tablename__ = "promotion_codes"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # Customer-facing, stored upper case; unique across all codes, active or not, so a code printed
    # on a flyer always means the same coupon.
    code: Mapped[str] = mapped_column(String(40), unique=True)
    coupon_id: Mapped[str] = mapped_column(ForeignKey("coupons.id"), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    max_redemptions: Mapped[int | None] = mapped_column(Integer)
    times_redeemed: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime | None]
    # Only this customer may redeem the code (NULL = anyone).
    customer_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id"), index=True)
    first_time_transaction: Mapped[bool] = mapped_column(Boolean, default=False)
    minimum_amount: Mapped[int | None] = mapped_column(BigInteger)
    minimum_amount_currency: Mapped[str | None] = mapped_column(String(3))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        CheckConstraint(
            "times_redeemed >= 0 AND (max_redemptions IS NULL OR times_redeemed <= max_redemptions)",
            name="redemptions_within_limit",
        ),
        CheckConstraint(
            "(minimum_amount IS NULL) = (minimum_amount_currency IS NULL)", name="minimum_has_currency"
        ),
    )
