"""The table of e-mailed portal sign-in codes (`gateway/portal/login.py`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base


class PortalLoginCode(Base):
    """One 6-digit code e-mailed to a billing address. Only its HMAC (keyed by the server's secret, bound to
    the row id) is kept, so a copy of the table does not hand out codes, not even by trying all million.
    A code is live while `used_at` is NULL, `expires_at` is ahead and `tries` is below the limit; a newer
    request for the same address ends it by moving `expires_at` to that moment. The rows of the last hour
    are also the throttle's count. After the right code, an address shared by several customers gets a
    one-time choice token (`choice_hash`, SHA-256) that says which customers the page may offer."""

    __tablename__ = "portal_login_codes"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[str] = mapped_column(String(320))  # normalized: trimmed, lower case
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    tries: Mapped[int] = mapped_column(Integer, default=0)
    used_at: Mapped[datetime | None]
    choice_hash: Mapped[str | None] = mapped_column(String(64), unique=True)

    __table_args__ = (Index("ix_portal_login_codes_email_created_at", "email", "created_at"),)
