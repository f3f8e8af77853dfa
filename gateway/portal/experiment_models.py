"""Tables of price experiments and hosted checkout sessions (platform-level: the vendor's experiments;
a checkout session names its customer once it has one)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base


class Experiment(Base):
    __tablename__ = "experiments"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"), index=True)
    status: Mapped[str] = mapped_column(String(10))  # experiment_domain.ExperimentStatus
    variants: Mapped[list[Any]]  # [Variant.as_dict()], the first is the control
    targeting: Mapped[dict[str, Any]]
    winner: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    stopped_at: Mapped[datetime | None]
    promoted_at: Mapped[datetime | None]


class ExperimentAssignment(Base):
    """A visitor seen by an experiment, with the variant the hash gave it and what it went on to do.
    Unique per (experiment, visitor key): counting rows counts visitors, once each."""

    __tablename__ = "experiment_assignments"
    __table_args__ = (UniqueConstraint("experiment_id", "visitor_key"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    experiment_id: Mapped[str] = mapped_column(ForeignKey("experiments.id"), index=True)
    visitor_key: Mapped[str] = mapped_column(String(200))
    variant: Mapped[str] = mapped_column(String(40))
    assigned_at: Mapped[datetime]
    checkout_started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    customer_id: Mapped[str | None] = mapped_column(String(40))
    subscription_id: Mapped[str | None] = mapped_column(String(40))
    mrr: Mapped[int | None] = mapped_column(BigInteger)  # the converted subscription's monthly value
    currency: Mapped[str | None] = mapped_column(String(3))


class CheckoutSession(Base):
    """A hosted checkout: its link's token is stored hashed (shown once, in the creating response)."""

    __tablename__ = "checkout_sessions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(10))  # open | complete | expired
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"), index=True)
    price_id: Mapped[str | None] = mapped_column(String(40))  # preselected; None: the visitor picks
    currency: Mapped[str | None] = mapped_column(String(3))
    success_url: Mapped[str] = mapped_column(String(2000))
    cancel_url: Mapped[str | None] = mapped_column(String(2000))
    customer_id: Mapped[str | None] = mapped_column(String(40), index=True)
    trial_days: Mapped[int | None] = mapped_column(Integer)
    allow_promotion_codes: Mapped[bool] = mapped_column(Boolean)
    locale: Mapped[str | None] = mapped_column(String(10))
    experiment_id: Mapped[str | None] = mapped_column(String(40))
    visitor_key: Mapped[str | None] = mapped_column(String(200))
    variant: Mapped[str | None] = mapped_column(String(40))
    subscription_id: Mapped[str | None] = mapped_column(String(40))
    promotion_code: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]
