"""SSO connection tables. A connection with `tenant_id` belongs to that tenant; `tenant_id` NULL is a
platform-level IdP (the SaaS vendor's own)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base


class SsoConnection(Base):
    __tablename__ = "sso_connections"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    issuer: Mapped[str] = mapped_column(String(500))
    # Explicit endpoints; any left NULL comes from the issuer's discovery document.
    authorization_endpoint: Mapped[str | None] = mapped_column(String(500))
    token_endpoint: Mapped[str | None] = mapped_column(String(500))
    jwks_uri: Mapped[str | None] = mapped_column(String(500))
    end_session_endpoint: Mapped[str | None] = mapped_column(String(500))
    client_id: Mapped[str] = mapped_column(String(300))
    # The IdP client secret, sealed by the secret box (`tgs1.<key id>.…`, bound to this row's id): it must
    # be sent to the IdP, so it is encrypted rather than hashed, and it is never returned by the API.
    client_secret: Mapped[str] = mapped_column(Text)
    scopes: Mapped[list[Any]]
    # Lower-case e-mail domains routed to this connection (also listed in sso_domains, which is unique).
    allowed_domains: Mapped[list[Any]]
    # NULL: the tenant's own default_role.
    default_role: Mapped[str | None] = mapped_column(String(60))
    enabled: Mapped[bool]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class SsoDomain(Base):
    """One row per routed e-mail domain. The primary key is what makes routing by domain unambiguous:
    two connections can never both claim `acme.com` (the second insert fails, 409)."""

    __tablename__ = "sso_domains"

    domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    connection_id: Mapped[str] = mapped_column(
        ForeignKey("sso_connections.id", ondelete="CASCADE"), index=True
    )
    # The connection's tenant, NULL for platform connections (kept here so a tenant's rows are findable).
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id"), index=True)
