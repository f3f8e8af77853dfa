"""SSO connection tables. A connection with `tenant_id` belongs to that tenant; `tenant_id` NULL is a
platform-level IdP (the SaaS vendor's own)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
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
    two connections can never both claim `acme.com` (the second insert fails, 409). A claim is first come,
    first served until the platform verifies the domain for a connection (`verified_at`): that moves the
    claim to it, and nobody else can claim the domain afterwards."""

    __tablename__ = "sso_domains"

    domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    connection_id: Mapped[str] = mapped_column(
        ForeignKey("sso_connections.id", ondelete="CASCADE"), index=True
    )
    # The connection's tenant, NULL for platform connections (kept here so a tenant's rows are findable).
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("customers.id"), index=True)
    # Set when the platform confirmed that the tenant owns the domain (`POST …/verify_domain`).
    verified_at: Mapped[datetime | None]


class SsoIdentity(Base):
    """An external identity: the IdP's subject (`iss`, `sub`) as seen through one connection, bound to one
    Tiergate user. A sign-in finds its user here, never by e-mail once bound; binding a new identity to an
    existing user by e-mail happens only inside the connection's own tenant (see the sso README)."""

    __tablename__ = "sso_identities"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    connection_id: Mapped[str] = mapped_column(
        ForeignKey("sso_connections.id", ondelete="CASCADE"), index=True
    )
    issuer: Mapped[str] = mapped_column(String(500))
    subject: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    # The connection's tenant (NULL: a platform connection), for tenant-scoped reads and deletes.
    tenant_id: Mapped[str | None] = mapped_column(String(40), index=True)
    created_at: Mapped[datetime]
    last_sign_in_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("connection_id", "issuer", "subject"),)
