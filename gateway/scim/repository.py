"""All SCIM SQL. Every query filters by `tenant_id`.

It reads the customers domain's `memberships` and `users` tables (a SCIM User is a membership seen from
the IdP) and writes them in exactly one place, `repoint_membership`, for a userName change, which
`CustomerService` has no use case for. Everything else that changes a membership goes through
`CustomerService`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.customers.models import Membership, User
from gateway.scim.models import ScimGroup, ScimGroupMember, ScimToken, ScimUser

UserRow = tuple[Membership, User, ScimUser | None]


class ScimRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, row: object) -> None:
        self.session.add(row)

    async def flush(self) -> None:
        await self.session.flush()

    async def delete_row(self, row: object) -> None:
        await self.session.delete(row)
        await self.session.flush()

    # tokens -------------------------------------------------------------------------------------
    async def token_by_hash(self, secret_hash: str) -> ScimToken | None:
        query = select(ScimToken).where(ScimToken.secret_hash == secret_hash)
        return (await self.session.scalars(query)).first()

    async def token(self, tenant_id: str, token_id: str) -> ScimToken | None:
        query = select(ScimToken).where(ScimToken.tenant_id == tenant_id, ScimToken.id == token_id)
        return (await self.session.scalars(query)).first()

    async def tokens(self, tenant_id: str, *, after: str | None, limit: int) -> Sequence[ScimToken]:
        query = (
            select(ScimToken).where(ScimToken.tenant_id == tenant_id).order_by(ScimToken.id).limit(limit + 1)
        )
        if after:
            query = query.where(ScimToken.id > after)
        return (await self.session.scalars(query)).all()

    async def disable_tokens(self, tenant_id: str, at: datetime, reason: str) -> int:
        result = await self.session.execute(
            update(ScimToken)
            .where(ScimToken.tenant_id == tenant_id, ScimToken.disabled_at.is_(None))
            .values(disabled_at=at, disabled_reason=reason)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def retire_tokens(self, tenant_id: str, from_reason: str, to_reason: str) -> int:
        result = await self.session.execute(
            update(ScimToken)
            .where(ScimToken.tenant_id == tenant_id, ScimToken.disabled_reason == from_reason)
            .values(disabled_reason=to_reason)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def restore_tokens(self, tenant_id: str, reason: str) -> int:
        result = await self.session.execute(
            update(ScimToken)
            .where(ScimToken.tenant_id == tenant_id, ScimToken.disabled_reason == reason)
            .values(disabled_at=None, disabled_reason=None)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    # users --------------------------------------------------------------------------------------
    async def users(
        self,
        tenant_id: str,
        *,
        ids: Collection[str] | None = None,
        email: str | None = None,
        external_id: str | None = None,
    ) -> list[UserRow]:
        """Visible SCIM users: active members, plus removed ones the IdP still has (a ScimUser row)."""
        query = (
            select(Membership, User, ScimUser)
            .join(User, User.id == Membership.user_id)
            .outerjoin(ScimUser, ScimUser.membership_id == Membership.id)
            .where(Membership.tenant_id == tenant_id)
            .where(or_(Membership.status == "active", ScimUser.membership_id.is_not(None)))
            .order_by(Membership.id)
        )
        if ids is not None:
            query = query.where(Membership.id.in_(list(ids)))
        if email is not None:
            query = query.where(User.email == email.lower())
        if external_id is not None:
            query = query.where(ScimUser.external_id == external_id)
        return [(m, u, s) for m, u, s in (await self.session.execute(query)).all()]

    async def membership_of_email(self, tenant_id: str, email: str) -> UserRow | None:
        query = (
            select(Membership, User, ScimUser)
            .join(User, User.id == Membership.user_id)
            .outerjoin(ScimUser, ScimUser.membership_id == Membership.id)
            .where(Membership.tenant_id == tenant_id, User.email == email.lower())
        )
        row = (await self.session.execute(query)).first()
        return (row[0], row[1], row[2]) if row else None

    async def scim_user(self, membership_id: str) -> ScimUser | None:
        return await self.session.get(ScimUser, membership_id)

    async def user_by_email(self, email: str) -> User | None:
        return (await self.session.scalars(select(User).where(User.email == email.lower()))).first()

    async def repoint_membership(self, membership: Membership, user: User) -> None:
        """A userName change: the same seat (membership id, roles, groups) now belongs to `user`."""
        membership.user_id = user.id
        await self.session.flush()

    # groups -------------------------------------------------------------------------------------
    async def groups(
        self,
        tenant_id: str,
        *,
        ids: Collection[str] | None = None,
        display_name: str | None = None,
        external_id: str | None = None,
    ) -> Sequence[ScimGroup]:
        query = select(ScimGroup).where(ScimGroup.tenant_id == tenant_id).order_by(ScimGroup.id)
        if ids is not None:
            query = query.where(ScimGroup.id.in_(list(ids)))
        if display_name is not None:
            query = query.where(func.lower(ScimGroup.display_name) == display_name.lower())
        if external_id is not None:
            query = query.where(ScimGroup.external_id == external_id)
        return (await self.session.scalars(query)).all()

    async def group(self, tenant_id: str, group_id: str) -> ScimGroup | None:
        query = select(ScimGroup).where(ScimGroup.tenant_id == tenant_id, ScimGroup.id == group_id)
        return (await self.session.scalars(query)).first()

    async def group_members(self, tenant_id: str, group_ids: Collection[str]) -> dict[str, list[str]]:
        """group id → membership ids of its members."""
        return {
            g: [m.membership_id for m in ms]
            for g, ms in (await self.group_member_rows(tenant_id, group_ids)).items()
        }

    async def group_member_rows(
        self, tenant_id: str, group_ids: Collection[str]
    ) -> dict[str, list[ScimGroupMember]]:
        query = (
            select(ScimGroupMember)
            .where(ScimGroupMember.tenant_id == tenant_id, ScimGroupMember.group_id.in_(list(group_ids)))
            .order_by(ScimGroupMember.membership_id)
        )
        out: dict[str, list[ScimGroupMember]] = defaultdict(list)
        for row in (await self.session.scalars(query)).all():
            out[row.group_id].append(row)
        return out

    async def groups_of(self, tenant_id: str, membership_ids: Collection[str]) -> dict[str, list[ScimGroup]]:
        """membership id → the groups it is in."""
        query = (
            select(ScimGroupMember.membership_id, ScimGroup)
            .join(ScimGroup, ScimGroup.id == ScimGroupMember.group_id)
            .where(
                ScimGroupMember.tenant_id == tenant_id,
                ScimGroupMember.membership_id.in_(list(membership_ids)),
            )
            .order_by(ScimGroup.id)
        )
        out: dict[str, list[ScimGroup]] = defaultdict(list)
        for membership_id, group in (await self.session.execute(query)).all():
            out[membership_id].append(group)
        return out

    async def set_group_members(
        self,
        tenant_id: str,
        group_id: str,
        add: Collection[str],
        remove: Collection[str],
        displays: dict[str, str | None] | None = None,
    ) -> None:
        displays = displays or {}
        if remove:
            await self.session.execute(
                delete(ScimGroupMember).where(
                    ScimGroupMember.group_id == group_id, ScimGroupMember.membership_id.in_(list(remove))
                )
            )
        for membership_id in add:
            self.session.add(
                ScimGroupMember(
                    group_id=group_id,
                    membership_id=membership_id,
                    tenant_id=tenant_id,
                    display=displays.get(membership_id),
                )
            )
        await self.session.flush()
        if displays:
            for row in (await self.group_member_rows(tenant_id, [group_id])).get(group_id, []):
                if row.membership_id in displays:
                    row.display = displays[row.membership_id]
            await self.session.flush()

    async def leave_all_groups(self, tenant_id: str, membership_id: str) -> None:
        await self.session.execute(
            delete(ScimGroupMember).where(
                ScimGroupMember.tenant_id == tenant_id, ScimGroupMember.membership_id == membership_id
            )
        )

    async def delete_group(self, group: ScimGroup) -> None:
        await self.session.execute(delete(ScimGroupMember).where(ScimGroupMember.group_id == group.id))
        await self.session.delete(group)
        await self.session.flush()
