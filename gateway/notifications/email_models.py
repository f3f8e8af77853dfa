"""E-mail tables: one message per (outbox event, recipient), suppressed addresses, branding, preferences."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base


class EmailMessage(Base):
    """One e-mail for one recipient because of one outbox event. The unique (event_id, recipient) makes a
    re-relayed event queue it once. Status: `pending` → `sent`, or `failed` after the last attempt,
    `suppressed` (address reported bouncing), `unknown` (handed to the transport, outcome never
    recorded: never resent, see gateway/notifications/email_service.py)."""

    __tablename__ = "email_messages"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str | None] = mapped_column(String(40), index=True)
    event_id: Mapped[str] = mapped_column(String(40))
    event_type: Mapped[str] = mapped_column(String(80))
    template: Mapped[str] = mapped_column(String(60))
    recipient: Mapped[str] = mapped_column(String(320))
    locale: Mapped[str] = mapped_column(String(20))
    subject: Mapped[str] = mapped_column(String(500))
    # The whole RFC 5322 message as sent (the same bytes on every attempt, same Message-ID).
    raw: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    # Set (and committed) just before the message is handed to the transport: a row found with it set
    # and no outcome was possibly sent, so it is never sent again.
    handed_over_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    sent_at: Mapped[datetime | None]
    created_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("event_id", "recipient"),
        Index("ix_email_messages_due", "status", "next_attempt_at"),
    )


class EmailSuppression(Base):
    """An address that bounced or complained: nothing is sent to it. `tenant_id` NULL: reported with a
    platform key, for every tenant."""

    __tablename__ = "email_suppressions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str | None] = mapped_column(String(40), index=True)
    address: Mapped[str] = mapped_column(String(320), index=True)
    reason: Mapped[str] = mapped_column(String(20))  # bounce | complaint | manual
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("tenant_id", "address"),)


class EmailBranding(Base):
    """How e-mails look: `scope` is `platform` (the default) or a tenant id (that tenant's mails)."""

    __tablename__ = "email_branding"

    scope: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str | None] = mapped_column(String(40), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    logo_url: Mapped[str | None] = mapped_column(String(2048))
    color: Mapped[str | None] = mapped_column(String(7))
    reply_to: Mapped[str | None] = mapped_column(String(320))
    updated_at: Mapped[datetime]


class EmailPreference(Base):
    """A customer's choice of non-essential messages (transactional ones always go)."""

    __tablename__ = "email_preferences"

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # Non-essential templates this customer does not want.
    opted_out: Mapped[list[Any]]
    updated_at: Mapped[datetime]

    def as_dict(self) -> dict[str, Any]:
        return {"customer": self.tenant_id, "opted_out": list(self.opted_out)}
