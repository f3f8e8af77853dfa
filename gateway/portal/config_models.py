"""The portal configuration table: which actions each customer's portal offers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base


class PortalConfiguration(Base):
    """What a customer may do in the portal. `scope` is `platform` (the default for every customer) or a
    customer id (that customer's own configuration, replacing the default as a whole, as Stripe's
    per-customer portal configurations do)."""

    __tablename__ = "portal_configurations"

    scope: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str | None] = mapped_column(String(40), index=True)
    # config.ACTIONS the portal offers.
    actions: Mapped[list[Any]] = mapped_column(JSON)
    # Plan keys a customer may switch to (empty: any active plan of the catalog).
    plans: Mapped[list[Any]] = mapped_column(JSON)
    # Offered once in the cancel flow, before the cancellation is confirmed (NULL: no offer).
    retention_coupon_id: Mapped[str | None] = mapped_column(ForeignKey("coupons.id"))
    # Where "return to app" leads when the portal session gave no return URL.
    default_return_url: Mapped[str | None] = mapped_column(String(2048))
    updated_at: Mapped[datetime]
