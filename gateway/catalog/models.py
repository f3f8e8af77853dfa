"""Catalog tables. Products, features and plans are the platform's (not tenant-owned): every tenant
subscribes to the same catalog. Prices are immutable once created except for `active` (Stripe's rule),
and plan grants are versioned, so existing subscribers keep the terms they bought (grandfathering)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base


class Product(Base):
    __tablename__ = "products"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
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


class Plan(Base):
    __tablename__ = "plans"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"), index=True)
    key: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(10))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Ordering of tiers (basic 1 < pro 2 < enterprise 3) for upgrade/downgrade when prices can't tell.
    rank: Mapped[int] = mapped_column(Integer, default=0)
    trial_days: Mapped[int | None]
    custom_pricing: Mapped[bool] = mapped_column(Boolean, default=False)
    # Add-ons only: plan keys they may be attached to (empty = any base plan).
    compatible_plans: Mapped[list[Any]] = mapped_column(default=list)
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
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
