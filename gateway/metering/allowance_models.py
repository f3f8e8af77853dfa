"""Tables of a metered feature's allowance: prepaid usage credits, the reconciled usage of each period
(one truth from ingested events and check-time consumption, with the drift the hot path showed), and the
threshold alerts already sent. See allowance.py for the rules."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base


class UsageCredit(Base):
    """Prepaid units of one metered feature (buy 100k API calls), drawn down before overage is billed.

    `remaining` only falls, through `UsageCreditDraw` rows written when a period is invoiced; a credit
    counts for a period that closes before `expires_at`."""

    __tablename__ = "usage_credits"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    feature_key: Mapped[str] = mapped_column(String(100))
    units: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    effective_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class UsageCreditDraw(Base):
    """Units of a credit used by one subscription period: written once (unique), so a rerun of the
    period's invoice never draws twice."""

    __tablename__ = "usage_credit_draws"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    credit_id: Mapped[str] = mapped_column(ForeignKey("usage_credits.id"), index=True)
    subscription_id: Mapped[str] = mapped_column(String(40))
    period_start: Mapped[datetime]
    units: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("credit_id", "subscription_id", "period_start"),)


class UsagePeriod(Base):
    """One truth per (subscription, metered feature, period): `metered` (the meter's total over the
    period) + `consumed` (units taken through `/v1/check` with `consume`, the highest counter reading
    seen) = `used`. `drift` is how far the hot path's figure stood from `used` at the last
    reconciliation (positive: it under-counted)."""

    __tablename__ = "usage_periods"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    subscription_id: Mapped[str] = mapped_column(String(40))
    feature_key: Mapped[str] = mapped_column(String(100))
    meter: Mapped[str | None] = mapped_column(String(100))
    period_start: Mapped[datetime]
    period_end: Mapped[datetime]
    metered: Mapped[int] = mapped_column(BigInteger, default=0)
    consumed: Mapped[int] = mapped_column(BigInteger, default=0)
    used: Mapped[int] = mapped_column(BigInteger, default=0)
    allowance: Mapped[int | None] = mapped_column(BigInteger)
    overage: Mapped[int] = mapped_column(BigInteger, default=0)
    drift: Mapped[int] = mapped_column(BigInteger, default=0)
    reconciled_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("subscription_id", "feature_key", "period_start"),)


class UsageThresholdAlert(Base):
    """A `usage.threshold_reached` already sent: the unique key makes it once per threshold per period,
    however often usage crosses it again (a void and a new event, two reconcilers at once)."""

    __tablename__ = "usage_threshold_alerts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    subscription_id: Mapped[str] = mapped_column(String(40))
    feature_key: Mapped[str] = mapped_column(String(100))
    period_start: Mapped[datetime]
    threshold: Mapped[int] = mapped_column(Integer)
    used: Mapped[int] = mapped_column(BigInteger)
    allowance: Mapped[int] = mapped_column(BigInteger)
    reached_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("subscription_id", "feature_key", "period_start", "threshold"),)
