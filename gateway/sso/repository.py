"""All SSO SQL. Tenant-owned queries filter by `tenant_id`; `scope` None is a platform caller."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import column, delete, select, table, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import TableClause

from gateway.kernel.ids import new_id
from gateway.sso.models import SsoConnection, SsoDomain, SsoIdentity

_customers = table("customers", column("id"), column("updated_at"))


class SsoRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, row: object) -> None:
        self.session.add(row)

    async def flush(self) -> None:
        await self.session.flush()

    async def get(self, connection_id: str, *, scope: str | None) -> SsoConnection | None:
        row = await self.session.get(SsoConnection, connection_id)
        if row is None or (scope is not None and row.tenant_id != scope):
            return None
        return row

    async def list(self, *, scope: str | None, after: str | None, limit: int) -> Sequence[SsoConnection]:
        query = select(SsoConnection).order_by(SsoConnection.id).limit(limit + 1)
        if after:
            query = query.where(SsoConnection.id > after)
        if scope is not None:
            query = query.where(SsoConnection.tenant_id == scope)
        return (await self.session.scalars(query)).all()

    async def all_connections(self) -> Sequence[SsoConnection]:
        return (await self.session.scalars(select(SsoConnection).order_by(SsoConnection.id))).all()

    async def domain_owners(self, domains: Sequence[str]) -> dict[str, str]:
        if not domains:
            return {}
        rows = await self.session.execute(
            select(SsoDomain.domain, SsoDomain.connection_id).where(SsoDomain.domain.in_(list(domains)))
        )
        return {domain: owner for domain, owner in rows.all()}

    async def replace_domains(self, connection: SsoConnection, domains: Sequence[str]) -> None:
        """Make the connection's claims exactly `domains`; claims it keeps keep their verification."""
        await self.session.execute(
            delete(SsoDomain).where(
                SsoDomain.connection_id == connection.id, SsoDomain.domain.not_in(list(domains))
            )
        )
        kept = set(
            (
                await self.session.scalars(
                    select(SsoDomain.domain).where(SsoDomain.connection_id == connection.id)
                )
            ).all()
        )
        for domain in domains:
            if domain not in kept:
                self.session.add(
                    SsoDomain(domain=domain, connection_id=connection.id, tenant_id=connection.tenant_id)
                )
        await self.session.flush()

    async def verified_domains(self, connection_ids: Sequence[str]) -> dict[str, builtins.list[str]]:
        rows = await self.session.execute(
            select(SsoDomain.connection_id, SsoDomain.domain)
            .where(SsoDomain.connection_id.in_(list(connection_ids)), SsoDomain.verified_at.is_not(None))
            .order_by(SsoDomain.domain)
        )
        found: dict[str, builtins.list[str]] = {}
        for connection_id, domain in rows.all():
            found.setdefault(connection_id, []).append(domain)
        return found

    async def claim_verified(self, connection: SsoConnection, domain: str, at: datetime) -> None:
        """The platform verified that `connection`'s tenant owns `domain`: the claim is this connection's,
        marked verified, whoever held it before."""
        claim = await self.session.get(SsoDomain, domain)
        if claim is None:
            self.session.add(
                SsoDomain(
                    domain=domain, connection_id=connection.id, tenant_id=connection.tenant_id, verified_at=at
                )
            )
        else:
            claim.connection_id, claim.tenant_id, claim.verified_at = connection.id, connection.tenant_id, at
        await self.session.flush()

    async def remove(self, connection: SsoConnection) -> None:
        await self.session.execute(delete(SsoDomain).where(SsoDomain.connection_id == connection.id))
        await self.session.execute(delete(SsoIdentity).where(SsoIdentity.connection_id == connection.id))
        await self.session.delete(connection)
        await self.session.flush()

    # -- external identities ----------------------------------------------------------------------
    async def identity(self, connection_id: str, issuer: str, subject: str) -> SsoIdentity | None:
        query = select(SsoIdentity).where(
            SsoIdentity.connection_id == connection_id,
            SsoIdentity.issuer == issuer,
            SsoIdentity.subject == subject,
        )
        return (await self.session.scalars(query)).first()

    async def bind_identity(
        self, connection: SsoConnection, issuer: str, subject: str, user_id: str, at: datetime
    ) -> None:
        """Bind (connection, iss, sub) to the user. A concurrent first sign-in that bound it already wins
        (the unique constraint), which is the same binding."""
        try:
            async with self.session.begin_nested():
                self.session.add(
                    SsoIdentity(
                        id=new_id("ssoid"),
                        connection_id=connection.id,
                        issuer=issuer,
                        subject=subject,
                        user_id=user_id,
                        tenant_id=connection.tenant_id,
                        created_at=at,
                        last_sign_in_at=at,
                    )
                )
        except IntegrityError:
            pass

    async def bound_to_another_tenant(self, user_id: str, tenant_id: str) -> bool:
        """Is the user bound to an identity of another tenant's own connection?"""
        query = select(SsoIdentity.id).where(
            SsoIdentity.user_id == user_id,
            SsoIdentity.tenant_id.is_not(None),
            SsoIdentity.tenant_id != tenant_id,
        )
        return (await self.session.scalar(query.limit(1))) is not None

    async def member_of_another_tenant(self, user_id: str, tenant_id: str) -> bool:
        """A membership (not removed) in any other tenant."""
        members = _memberships()
        query = select(members.c.tenant_id).where(
            members.c.user_id == user_id, members.c.tenant_id != tenant_id, members.c.status != "removed"
        )
        return (await self.session.scalar(query.limit(1))) is not None

    # -- routing ----------------------------------------------------------------------------------
    async def for_domain(self, domain: str) -> SsoConnection | None:
        query = (
            select(SsoConnection)
            .join(SsoDomain, SsoDomain.connection_id == SsoConnection.id)
            .where(SsoDomain.domain == domain, SsoConnection.enabled.is_(True))
        )
        return (await self.session.scalars(query)).first()

    async def for_tenant(self, tenant_id: str) -> SsoConnection | None:
        """The tenant's own enabled connection (the oldest when it has several)."""
        query = (
            select(SsoConnection)
            .where(SsoConnection.tenant_id == tenant_id, SsoConnection.enabled.is_(True))
            .order_by(SsoConnection.created_at, SsoConnection.id)
        )
        return (await self.session.scalars(query)).first()

    async def tenant_has_own(self, tenant_id: str) -> bool:
        query = select(SsoConnection.id).where(
            SsoConnection.tenant_id == tenant_id, SsoConnection.enabled.is_(True)
        )
        return (await self.session.scalar(query)) is not None

    async def platform_default(self) -> SsoConnection | None:
        query = (
            select(SsoConnection)
            .where(SsoConnection.tenant_id.is_(None), SsoConnection.enabled.is_(True))
            .order_by(SsoConnection.created_at, SsoConnection.id)
        )
        return (await self.session.scalars(query)).first()

    async def lock_tenant(self, tenant_id: str) -> bool:
        """Serialise first sign-ins into one tenant, so two of them cannot both take the last seat. A no-op
        UPDATE rather than SELECT … FOR UPDATE because it locks on both databases: a row lock on PostgreSQL,
        the write lock on SQLite (whose driver starts the transaction only at the first write, so a plain
        read would let every concurrent sign-in count the same members). Call it first in the unit of work.
        False if the tenant is gone."""
        result = await self.session.execute(
            update(_customers).where(_customers.c.id == tenant_id).values(updated_at=_customers.c.updated_at)
        )
        return bool(getattr(result, "rowcount", 0))

    # -- members (the customers domain's tables, read bare to keep the import direction) -----------
    async def user_id_by_email(self, email: str) -> str | None:
        users = table("users", column("id"), column("email"))
        return await self.session.scalar(select(users.c.id).where(users.c.email == email.lower()))

    async def membership_status(self, tenant_id: str, user_id: str) -> str | None:
        members = _memberships()
        query = select(members.c.status).where(members.c.tenant_id == tenant_id, members.c.user_id == user_id)
        return await self.session.scalar(query)

    async def active_tenants_of(self, user_id: str) -> Sequence[str]:
        members = _memberships()
        query = (
            select(members.c.tenant_id)
            .where(members.c.user_id == user_id, members.c.status == "active")
            .order_by(members.c.tenant_id)
        )
        return [str(t) for t in (await self.session.scalars(query)).all()]


def _memberships() -> TableClause:
    return table("memberships", column("tenant_id"), column("user_id"), column("status"))
