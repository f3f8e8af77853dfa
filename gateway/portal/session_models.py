"""The portal session table: a one-time portal link and the browser session it opens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base


class PortalSession(Base):
    """A portal link and, once opened, the browser session it became. Both tokens are random and only
    their SHA-256 is stored: the link (`tgportal_…`) opens once within `link_expires_at`, the session
    cookie (`tgps_…`) lasts until `expires_at`."""

    __tablename__ = "portal_sessions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    link_hash: Mapped[str] = mapped_column(String(64), unique=True)
    session_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    return_url: Mapped[str | None] = mapped_column(String(2048))
    locale: Mapped[str | None] = mapped_column(String(10))
    created_at: Mapped[datetime]
    link_expires_at: Mapped[datetime]
    opened_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
