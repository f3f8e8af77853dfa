from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base


class TenantAccount(Base):
    """A tenant's account as provisioning sees it: provisioned, revoked (deprovisioned) or active."""

    __tablename__ = "tenant_accounts"

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    state: Mapped[str] = mapped_column(String(12))  # active | revoked | purged
    subscription_id: Mapped[str | None] = mapped_column(String(40))
    # Highest subscription version applied: an older snapshot arriving late is ignored.
    subscription_version: Mapped[int] = mapped_column(default=0)
    plan_key: Mapped[str | None] = mapped_column(String(60))
    provisioned_at: Mapped[datetime | None]
    # Domain time (the customer's test clock when it has one) the subscription became past due.
    past_due_since: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(String(40))
    restored_at: Mapped[datetime | None]
    # Deprovisioned data is kept at least until then; after it, the retention purge erases the tenant's
    # personal data (members, invites, credentials) and sets `purged_at` (state "purged").
    retain_until: Mapped[datetime | None]
    purged_at: Mapped[datetime | None]
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime]


class DisabledApiKey(Base):
    """A tenant API key that deprovisioning disabled (set `revoked_at`): exactly these come back on
    restore, never a key someone revoked by hand before."""

    __tablename__ = "provisioning_disabled_keys"

    key_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(40), index=True)
    disabled_at: Mapped[datetime]
