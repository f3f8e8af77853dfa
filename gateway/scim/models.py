"""SCIM tables. Users and memberships belong to customers; these only add what SCIM needs on top."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base


class ScimToken(Base):
    """A tenant's SCIM bearer token. Only the SHA-256 of the secret is stored; it is shown once."""

    __tablename__ = "scim_tokens"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(20))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]
    # "revoked" (an admin disabled it: final) or "deprovisioned" (the subscription ended: restorable).
    disabled_reason: Mapped[str | None] = mapped_column(String(20))
    last_used_at: Mapped[datetime | None]


class ScimUser(Base):
    """The SCIM face of a membership: the SCIM User id *is* the membership id.

    A membership without a row here is still a SCIM User (members added through the API are visible to
    the IdP). A row whose membership is removed is a User with `active: false`; DELETE removes the row
    (the membership stays removed and the user row is kept), after which the User is gone (404).
    """

    __tablename__ = "scim_users"

    membership_id: Mapped[str] = mapped_column(ForeignKey("memberships.id"), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    external_id: Mapped[str | None] = mapped_column(String(200))
    # name, displayName and emails as the IdP sent them (per tenant: the shared user row is not touched).
    profile: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (Index("ix_scim_users_tenant_external", "tenant_id", "external_id"),)


class ScimGroup(Base):
    __tablename__ = "scim_groups"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    display_name: Mapped[str] = mapped_column(String(256))
    external_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ScimGroupMember(Base):
    __tablename__ = "scim_group_members"

    group_id: Mapped[str] = mapped_column(ForeignKey("scim_groups.id", ondelete="CASCADE"), primary_key=True)
    membership_id: Mapped[str] = mapped_column(ForeignKey("memberships.id"), primary_key=True, index=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    display: Mapped[str | None] = mapped_column(String(256))  # as the IdP labelled the member
