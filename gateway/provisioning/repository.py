"""All SQL of provisioning. API keys are identity's table: only `revoked_at` of tenant-scoped keys is
touched, through a bare table clause (the documented deprovisioning contract), never deleted."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import column, delete, func, select, table, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.customers.models import Customer
from gateway.identity.invites import Invite
from gateway.kernel.clock import ensure_utc
from gateway.provisioning.models import DisabledApiKey, TenantAccount
from gateway.subscriptions.models import TestClock

_api_keys = table("api_keys", column("id"), column("tenant_id"), column("revoked_at"))


class ProvisioningRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def account(self, tenant_id: str) -> TenantAccount | None:
        return await self.session.get(TenantAccount, tenant_id)

    def add(self, row: TenantAccount | DisabledApiKey) -> None:
        self.session.add(row)

    async def flush(self) -> None:
        await self.session.flush()

    async def past_due_accounts(self, limit: int = 500) -> Sequence[TenantAccount]:
        query = (
            select(TenantAccount)
            .where(TenantAccount.past_due_since.is_not(None), TenantAccount.state == "active")
            .order_by(TenantAccount.past_due_since)
            .limit(limit)
        )
        return (await self.session.scalars(query)).all()

    async def accounts_to_purge(self, now: datetime, limit: int = 100) -> list[tuple[str, datetime]]:
        """(tenant, its time now) of revoked accounts whose retention has run out on the customer's own
        time: the wall clock's `now`, or its test clock's frozen time. Due ones only, so a tick with
        tenants in retention but none due costs this one query."""
        own_now = func.coalesce(TestClock.frozen_time, now)
        query = (
            select(TenantAccount.tenant_id, own_now)
            .join(Customer, Customer.id == TenantAccount.tenant_id)
            .outerjoin(TestClock, TestClock.id == Customer.test_clock_id)
            .where(
                TenantAccount.state == "revoked",
                TenantAccount.purged_at.is_(None),
                TenantAccount.retain_until.is_not(None),
                TenantAccount.retain_until <= own_now,
            )
            .order_by(TenantAccount.retain_until)
            .limit(limit)
        )
        return [(tenant, ensure_utc(at)) for tenant, at in (await self.session.execute(query)).all()]

    async def forget_disabled_keys(self, tenant_id: str) -> int:
        """The purge: the tenant's disabled API keys stay disabled for good (a restore brings none back)."""
        result = await self.session.execute(
            delete(DisabledApiKey).where(DisabledApiKey.tenant_id == tenant_id)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def delete_pending_invites(self, tenant_id: str) -> int:
        """The purge: invites nobody accepted carry an e-mail address and nothing else of use."""
        result = await self.session.execute(
            delete(Invite).where(Invite.tenant_id == tenant_id, Invite.accepted_at.is_(None))
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def disable_tenant_keys(self, tenant_id: str, at: datetime) -> list[str]:
        ids = list(
            (
                await self.session.scalars(
                    select(_api_keys.c.id).where(
                        _api_keys.c.tenant_id == tenant_id, _api_keys.c.revoked_at.is_(None)
                    )
                )
            ).all()
        )
        if ids:
            await self.session.execute(update(_api_keys).where(_api_keys.c.id.in_(ids)).values(revoked_at=at))
            for key_id in ids:
                existing = await self.session.get(DisabledApiKey, key_id)
                if existing is None:
                    self.session.add(DisabledApiKey(key_id=key_id, tenant_id=tenant_id, disabled_at=at))
                else:
                    existing.disabled_at = at
            await self.session.flush()
        return ids

    async def restore_tenant_keys(self, tenant_id: str) -> list[str]:
        ids = list(
            (
                await self.session.scalars(
                    select(DisabledApiKey.key_id).where(DisabledApiKey.tenant_id == tenant_id)
                )
            ).all()
        )
        if ids:
            await self.session.execute(
                update(_api_keys)
                .where(_api_keys.c.id.in_(ids), _api_keys.c.tenant_id == tenant_id)
                .values(revoked_at=None)
            )
            await self.session.execute(delete(DisabledApiKey).where(DisabledApiKey.tenant_id == tenant_id))
        return ids


# customers owns these tables and has no erasure use case: privacy reads users/memberships and
# pseudonymises the two personal fields through bare table clauses, nothing else.
_users = table(
    "users", column("id"), column("email"), column("name"), column("created_at"), column("updated_at")
)
_memberships = table(
    "memberships",
    column("id"),
    column("tenant_id"),
    column("user_id"),
    column("role"),
    column("status"),
    column("created_at"),
    column("removed_at"),
)


class PrivacyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def user(self, user_id: str) -> dict[str, object] | None:
        row = (await self.session.execute(select(_users).where(_users.c.id == user_id))).mappings().first()
        return dict(row) if row is not None else None

    async def memberships(self, user_id: str) -> list[dict[str, object]]:
        query = select(_memberships).where(_memberships.c.user_id == user_id).order_by(_memberships.c.id)
        return [dict(r) for r in (await self.session.execute(query)).mappings().all()]

    async def pseudonymise(self, user_id: str, email: str, at: datetime) -> None:
        await self.session.execute(
            update(_users).where(_users.c.id == user_id).values(email=email, name=None, updated_at=at)
        )
        # The IdP subjects bound to the user (sso_identities) are personal data too (often an address).
        _identities = table("sso_identities", column("user_id"))
        await self.session.execute(delete(_identities).where(_identities.c.user_id == user_id))
