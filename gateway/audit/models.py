from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base


class AuditEntry(Base):
    """One audited action. Append-only: nothing updates or deletes a row (erasure keeps them too)."""

    __tablename__ = "audit_log"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # NULL for platform-wide actions (a policy edit); else the tenant the action concerned.
    tenant_id: Mapped[str | None] = mapped_column(String(40), index=True)
    # "key:<api key id>", "user:<user id>" or "system".
    actor: Mapped[str] = mapped_column(String(60))
    action: Mapped[str] = mapped_column(String(80))
    # What the action was about: "user:usr_…", "membership:mem_…", "customer:cus_…", "policy:7".
    target: Mapped[str | None] = mapped_column(String(80), index=True)
    # The user the entry is about, when there is one (privacy export finds entries by it).
    subject_user_id: Mapped[str | None] = mapped_column(String(40), index=True)
    data: Mapped[dict[str, Any]]
    at: Mapped[datetime]
    # The outbox event this entry was derived from: a relayed event is recorded once.
    source_event_id: Mapped[str | None] = mapped_column(String(40), unique=True)

    __table_args__ = (Index("ix_audit_log_tenant_at", "tenant_id", "at"),)
