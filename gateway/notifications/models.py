from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base


class WebhookEndpoint(Base):
    """Where the SaaS platform wants events. `tenant_id` NULL: a platform endpoint (every tenant's
    events); set: created with a tenant-scoped key, it receives only that tenant's events."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str | None] = mapped_column(String(40), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    # The signing secret (`whsec_…`), sealed by the secret box (`tgs1.<key id>.…`, AES-GCM bound to this
    # row's id): the receiver needs the same bytes to verify the HMAC, so it is encrypted, not hashed.
    secret: Mapped[str] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(String(500))
    # Event types (exact, or a prefix ending in ".*", or "*").
    enabled_events: Mapped[list[Any]]
    enabled: Mapped[bool]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class WebhookDelivery(Base):
    """One event for one endpoint, and the log of trying to deliver it."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id"), index=True)
    tenant_id: Mapped[str | None] = mapped_column(String(40), index=True)
    event_id: Mapped[str] = mapped_column(String(40))
    event_type: Mapped[str] = mapped_column(String(80))
    # The event's outbox `seq`: deliveries to one endpoint go out in this order (see README, "Ordering").
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), default=0)
    # The exact bytes signed and sent on every attempt (the signature covers them).
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12))  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    last_attempt_at: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint_seq", "endpoint_id", "status", "seq"),
    )
